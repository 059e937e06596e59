"""End-to-end throughput: ONNX Runtime alone, Triton alone and Hilum end to end, with what each process costs.

Everything is measured in one run on the same machine and the same kind of input, so the ratios stay meaningful
on a shared, noisy host. Studies are single-view PA, 2500x2000 pixels, 12-bit, one patient each (no priors to
wait for). Phases, in order: ONNX Runtime alone (before the stack starts), Triton alone (the stack's Triton, idle
stack), N studies submitted at once, M studies one a second, and 4N fresh studies submitted at once.

    .venv/bin/python bench/e2e_throughput.py --studies 48 --concurrency 2 [--light 10] [--no-4n] [--json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import repeat
from pathlib import Path

import grpc
import httpx
import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import tritonclient.grpc as triton_grpc
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

# bench/ is on sys.path when this file runs as a script.
from stack_meter import RssSampler, StackMeter, cpu_delta, own_cpu_ms, stack_roots

from hilum.common import study_state
from hilum.common.connections import open_sessions
from hilum.common.db.models import ReportRow, StudyRow
from hilum.common.db.session import upgrade_database
from hilum.common.dicom.pixels import read_radiograph
from hilum.common.preprocessing import WHOLE_IMAGE_INPUT_SIZE, to_model_input, whole_image_input
from hilum.common.settings import HilumSettings
from hilum.inference.devices_export import ensure_devices_model
from hilum.inference.model_export import WeightsManifest, ensure_findings_model
from hilum.ingestion.client import IngestionClient
from hilum.runtime.ports import loopback_settings
from hilum.runtime.stack import EmbeddedStack
from hilum.samples.dicom_files import write_study
from hilum.samples.sample_studies import SAMPLE_STUDIES

REPO_ROOT = Path(__file__).resolve().parent.parent
ORT_BATCHES = (1, 4, 8, 16)
# Triton alone: (requests in flight, images per request).
TRITON_RUNS = ((1, 1), (4, 1), (8, 1), (1, 8))
TIMED_IMAGES = 64  # images per ONNX Runtime / Triton measurement (the preprocessed inputs, cycled)
ALONE_ROUNDS = 2  # interleaved rounds of ORT alone and Triton alone
DEVICES_BATCHES = (1, 4)  # cxr_devices in ONNX Runtime alone (the inference engine sends it up to 8 at a time)
DEVICES_IMAGES = 16  # images per cxr_devices measurement: a 512 x 512 input costs several findings inputs
PAIRED_CALLS = 48  # batch-1 calls to ORT and Triton in turn, per round, for Triton's overhead per call
# Triton's counters read around the paired calls, to split the overhead: requests, their time in Triton, the model's.
PAIRED_COUNTERS = ("nv_inference_request_success", "nv_inference_request_duration_us",
                   "nv_inference_compute_infer_duration_us")
WARMUP_STUDIES = 4  # sent through the stack before anything is timed: first calls import and connect
SUBMIT_THREADS = 8  # concurrent Submit calls for a burst
LIGHT_INTERVAL_S = 1.0
POLL_S = 0.25
IDLE_WINDOW_S = 2.0
QUIET_WINDOW_S = 0.5
QUIET_MAX_S = 15.0
QUIET_FLOOR_MS_S = 50.0  # stack CPU (ms per s) under which it counts as quiet, whatever its idle rate
MODEL_ROLE = "triton"


@dataclass(frozen=True)
class Rate:
    """One throughput measurement: images per second and the mean latency of one call."""

    label: str
    images_s: float
    call_ms: float


@dataclass(frozen=True)
class Batching:
    """Triton's batching over a phase, from its metrics counters: images per model execution, compute time per
    image and queue wait per request.
    """

    images_per_execution: float
    compute_ms_per_image: float
    queue_ms_per_request: float


@dataclass(frozen=True)
class Submitted:
    """A study accepted by the gRPC Submit: when its call started and when it returned (the study complete)."""

    uid: str
    started_at: datetime
    complete_at: datetime


@dataclass(frozen=True)
class PhaseResult:
    """What one phase of studies gave: counts, rate, latency from complete to report stored, and CPU per study."""

    name: str
    studies: int
    reported: int
    failures: int
    studies_s: float
    p50_s: float
    p95_s: float
    cpu_ms_per_study: dict[str, float]  # by role
    client_cpu_ms_per_study: float  # this process (submitting and polling), not counted in the stack's
    batching: Batching

    @property
    def total_cpu_ms(self) -> float:
        """CPU ms per study of the whole stack."""
        return sum(self.cpu_ms_per_study.values())

    @property
    def non_model_cpu_ms(self) -> float:
        """CPU ms per study of the stack without Triton (the model's CPU)."""
        return self.total_cpu_ms - self.cpu_ms_per_study.get(MODEL_ROLE, 0.0)


@dataclass(frozen=True)
class Summary:
    """The figures the performance work is judged by (the N run); the --json line, key for key."""

    ort_img_s: float
    triton_img_s: float
    e2e_studies_s: float
    ratio_e2e_ort: float
    # ONNX Runtime alone running a study's models (Alone.ort_study_s), and Hilum end to end over it.
    ort_study_s: float
    ratio_e2e_ort_study: float
    ratio_triton_ort: float
    triton_overhead_ms: float
    cpu_ms_per_study: float
    cpu_ms_per_study_non_model: float
    light_p50_s: float
    light_p95_s: float
    burst_p95_s: float
    peak_rss_mib: float
    peak_pss_mib: float  # the same stack's peak summed Pss: shared pages counted once
    failures: int
    cost_ratio_4n_over_n: float | None

    def to_json(self) -> str:
        """One JSON object; a figure that could not be measured (NaN) is null."""
        values = {key: (None if isinstance(value, float) and not math.isfinite(value) else value)
                  for key, value in dataclasses.asdict(self).items()}
        return json.dumps(values)


@dataclass
class StackProbe:
    """What the phases need of a running stack: its settings, a gRPC client, database sessions, the meter, and
    a check that raises if a part of the stack has stopped.
    """

    settings: HilumSettings
    client: IngestionClient
    sessions: sessionmaker[Session]
    meter: StackMeter
    check_alive: Callable[[], None]
    idle_ms_s: float = 0.0


# --- inputs ---------------------------------------------------------------------------------------------------


def write_studies(out_dir: Path, first: int, count: int) -> list[Path]:
    """count single-view PA studies of distinct fictional patients (numbered from first), at the realistic
    size, written by two processes.
    """
    template = SAMPLE_STUDIES[2]
    specs = [dataclasses.replace(template, patient_id=f"BENCH-{i:05d}", seed=10_000 + i, label=f"bench-{i:05d}",
                                 study_started=template.study_started + timedelta(minutes=i))
             for i in range(first, first + count)]
    out_dir.mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(max_workers=2) as pool:
        return list(pool.map(write_study, specs, repeat(out_dir)))


def preprocess(files: Sequence[Path]) -> tuple[npt.NDArray[np.float32], float]:
    """The model inputs (N, 1, 224, 224) of the files, and the seconds per image it took (read + resize)."""
    start = time.perf_counter()
    inputs = np.stack([to_model_input(read_radiograph(p)) for p in files]).astype(np.float32)
    return inputs, (time.perf_counter() - start) / len(files)


def devices_inputs(files: Sequence[Path]) -> npt.NDArray[np.float32]:
    """cxr_devices' inputs (N, 1, 512, 512) of the files: the whole image, as inference makes them."""
    return np.stack([whole_image_input(read_radiograph(p), WHOLE_IMAGE_INPUT_SIZE) for p in files]).astype(np.float32)


def cycled(inputs: npt.NDArray[np.float32], count: int) -> npt.NDArray[np.float32]:
    """count images taken from inputs in turn (the same inputs for every measurement)."""
    return np.resize(inputs, (count, *inputs.shape[1:]))


# --- ONNX Runtime and Triton alone ----------------------------------------------------------------------------


def ort_session(model_path: Path) -> ort.InferenceSession:
    """onnxruntime on CPU with the served model's options (model_repository/cxr_findings/1/model.py: intra-op
    threads one per core, one inter-op thread, no spinning), so that ORT alone and Triton compute alike.
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = 0
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(model_path), sess_options=options, providers=["CPUExecutionProvider"])


def ort_rate(session: ort.InferenceSession, inputs: npt.NDArray[np.float32], batch: int,
             count: int = TIMED_IMAGES) -> Rate:
    """Images/s and mean call latency of onnxruntime over count images at the given batch size."""
    name = session.get_inputs()[0].name
    images = cycled(inputs, count)
    session.run(None, {name: images[:batch]})  # warm-up at this shape
    latencies = []
    start = time.perf_counter()
    for first in range(0, len(images), batch):
        call_start = time.perf_counter()
        session.run(None, {name: images[first:first + batch]})
        latencies.append((time.perf_counter() - call_start) * 1000)
    return Rate(f"batch {batch:2d}", len(images) / (time.perf_counter() - start), float(np.mean(latencies)))


def triton_call(client: triton_grpc.InferenceServerClient, model: str, batch: npt.NDArray[np.float32]) -> float:
    """One inference request of batch to Triton; its latency in ms."""
    image = triton_grpc.InferInput("image", list(batch.shape), "FP32")
    image.set_data_from_numpy(batch)
    start = time.perf_counter()
    client.infer(model, [image], outputs=[triton_grpc.InferRequestedOutput("probabilities")])
    return (time.perf_counter() - start) * 1000


def triton_rate(url: str, model: str, inputs: npt.NDArray[np.float32], in_flight: int, batch: int) -> Rate:
    """Images/s through Triton with in_flight threads each sending requests of batch images back to back."""
    per_thread = max(1, TIMED_IMAGES // (in_flight * batch))
    images = cycled(inputs, per_thread * in_flight * batch)
    latencies: list[float] = []
    lock = threading.Lock()

    def worker(index: int) -> None:
        client = triton_grpc.InferenceServerClient(url)
        try:
            mine = images[index * per_thread * batch:(index + 1) * per_thread * batch]
            timed = [triton_call(client, model, mine[i:i + batch]) for i in range(0, len(mine), batch)]
        finally:
            client.close()
        with lock:
            latencies.extend(timed)

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=in_flight) as pool:
        list(pool.map(worker, range(in_flight)))
    elapsed = time.perf_counter() - start
    return Rate(f"{in_flight} in flight x {batch} image{'s' if batch > 1 else ''}", len(images) / elapsed,
                float(np.mean(latencies)))


def warm_triton(settings: HilumSettings, inputs: npt.NDArray[np.float32]) -> None:
    """One request of each batch size of TRITON_RUNS, untimed."""
    client = triton_grpc.InferenceServerClient(settings.triton.grpc_url)
    try:
        for batch in sorted({batch for _, batch in TRITON_RUNS}):
            triton_call(client, settings.triton.findings_model, cycled(inputs, batch))
    finally:
        client.close()


def mean_rates(rounds: Sequence[Sequence[Rate]]) -> list[Rate]:
    """Per label, the mean images/s and call latency over rounds (each round measures the same labels)."""
    return [Rate(same[0].label, float(np.mean([r.images_s for r in same])), float(np.mean([r.call_ms for r in same])))
            for same in zip(*rounds, strict=True)]


@dataclass(frozen=True)
class Alone:
    """ONNX Runtime and Triton alone: rates, Triton's batching over its runs, and batch-1 calls made in pairs
    (ORT then Triton, back to back) whose mean difference is Triton's overhead per call.
    """

    ort: list[Rate]
    triton: list[Rate]
    # cxr_devices in ONNX Runtime alone, where the stack runs it (empty with --findings-only).
    ort_devices: list[Rate]
    batching: Batching
    paired_ort_ms: float
    paired_triton_ms: float
    # The median of the pairs' differences: a neighbour's burst that slows one call of a pair moves it little.
    paired_median_ms: float
    # Triton's own counters over the paired calls, ms per call: from receiving the request to sending the response,
    # and the model's execution within that (in the embedded config, the python-backend stub running the session).
    paired_request_ms: float
    paired_model_ms: float

    @property
    def ort_study_s(self) -> float:
        """Studies/s of ONNX Runtime alone running the models of a study (cxr_findings, and cxr_devices where the
        stack runs it), each at its best batch: what the stack's models alone allow on this machine."""
        seconds = 1 / best(self.ort).images_s
        if self.ort_devices:
            seconds += 1 / best(self.ort_devices).images_s
        return 1 / seconds

    @property
    def overhead_ms(self) -> float:
        """Mean latency of a batch-1 call through Triton minus that of the same call to ORT in process."""
        return self.paired_triton_ms - self.paired_ort_ms

    def overhead_split(self) -> str:
        """Where the overhead goes: the client and the transport, Triton around the model, the model in Triton."""
        return (f"client and transport {self.paired_triton_ms - self.paired_request_ms:.1f} ms, Triton around the "
                f"model {self.paired_request_ms - self.paired_model_ms:.1f} ms, the model's run in Triton over ORT's "
                f"in this process {self.paired_model_ms - self.paired_ort_ms:.1f} ms")


def paired_calls(session: ort.InferenceSession, url: str, model: str,
                 inputs: npt.NDArray[np.float32]) -> tuple[list[float], list[float]]:
    """PAIRED_CALLS batch-1 calls of the same image to ORT and to Triton in turn; the latencies (ms) of each.
    Back to back, both see the same load from the machine's other tenants.
    """
    name = session.get_inputs()[0].name
    client = triton_grpc.InferenceServerClient(url)
    ort_ms: list[float] = []
    triton_ms: list[float] = []
    try:
        for index in range(PAIRED_CALLS):
            image = inputs[index % len(inputs):][:1]
            start = time.perf_counter()
            session.run(None, {name: image})
            ort_ms.append((time.perf_counter() - start) * 1000)
            triton_ms.append(triton_call(client, model, image))
    finally:
        client.close()
    return ort_ms, triton_ms


def alone_rates(model_path: Path, settings: HilumSettings, inputs: npt.NDArray[np.float32],
                devices: tuple[Path, npt.NDArray[np.float32]] | None) -> Alone:
    """ONNX Runtime alone at ORT_BATCHES and Triton alone at TRITON_RUNS, in ALONE_ROUNDS interleaved rounds
    (ORT first, then Triton first, ...) so that both see the same neighbours, each round ending with
    paired batch-1 calls; rates are means over the rounds. devices: cxr_devices' model file and inputs, measured
    in ONNX Runtime alone at DEVICES_BATCHES in the same rounds, where the stack runs it.
    """
    session = ort_session(model_path)
    devices_session = ort_session(devices[0]) if devices else None
    url, model = settings.triton.grpc_url, settings.triton.findings_model
    warm_triton(settings, inputs)
    ort_rounds: list[list[Rate]] = []
    triton_rounds: list[list[Rate]] = []
    devices_rounds: list[list[Rate]] = []
    ort_ms: list[float] = []
    triton_ms: list[float] = []
    paired_us = dict.fromkeys(PAIRED_COUNTERS, 0.0)
    counters = triton_counters(settings.triton.metrics_port)
    for index in range(ALONE_ROUNDS):
        if devices_session is not None and devices is not None:
            devices_rounds.append([ort_rate(devices_session, devices[1], batch, DEVICES_IMAGES)
                                   for batch in DEVICES_BATCHES])
        measures: list[Callable[[], None]] = [
            lambda: ort_rounds.append([ort_rate(session, inputs, batch) for batch in ORT_BATCHES]),
            lambda: triton_rounds.append([triton_rate(url, model, inputs, in_flight, batch)
                                          for in_flight, batch in TRITON_RUNS]),
        ]
        for measure in measures if index % 2 == 0 else reversed(measures):
            measure()
        before = triton_counters(settings.triton.metrics_port)
        round_ort, round_triton = paired_calls(session, url, model, inputs)
        after = triton_counters(settings.triton.metrics_port)
        ort_ms += round_ort
        triton_ms += round_triton
        for name in PAIRED_COUNTERS:
            paired_us[name] += after.get(name, 0.0) - before.get(name, 0.0)
    stats = batching(counters, triton_counters(settings.triton.metrics_port))
    calls = paired_us["nv_inference_request_success"] or math.nan
    return Alone(mean_rates(ort_rounds), mean_rates(triton_rounds), mean_rates(devices_rounds), stats,
                 float(np.mean(ort_ms)), float(np.mean(triton_ms)),
                 float(np.median(np.array(triton_ms) - np.array(ort_ms))),
                 paired_request_ms=paired_us["nv_inference_request_duration_us"] / 1000 / calls,
                 paired_model_ms=paired_us["nv_inference_compute_infer_duration_us"] / 1000 / calls)


def triton_counters(metrics_port: int) -> dict[str, float]:
    """Triton's nv_inference_* counters for cxr_findings, summed over versions, from its metrics endpoint."""
    text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("nv_inference_") and 'model="cxr_findings"' in line:
            name = line.split("{", 1)[0]
            values[name] = values.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
    return values


def batching(before: dict[str, float], after: dict[str, float]) -> Batching:
    """Triton's batching between two triton_counters readings."""
    def delta(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    inferences = delta("nv_inference_count") or math.nan
    return Batching(
        images_per_execution=inferences / (delta("nv_inference_exec_count") or math.nan),
        compute_ms_per_image=delta("nv_inference_compute_infer_duration_us") / 1000 / inferences,
        queue_ms_per_request=delta("nv_inference_queue_duration_us") / 1000
        / (delta("nv_inference_request_success") or math.nan),
    )


# --- Hilum end to end -------------------------------------------------------------------------------------------


def submit_one(client: IngestionClient, path: Path) -> Submitted | None:
    """Submit one single-image study over gRPC; None if it was refused or the call failed."""
    started = datetime.now(UTC)
    try:
        result = client.submit_files([path])[0]
    except grpc.RpcError as exc:
        print(f"submit of {path.name} failed: {exc}", file=sys.stderr)
        return None
    if not result.accepted:
        print(f"{path.name} was refused: {result.rejection.reason}", file=sys.stderr)
        return None
    return Submitted(result.study_instance_uid, started, datetime.now(UTC))


def submit_burst(client: IngestionClient, files: Sequence[Path]) -> list[Submitted | None]:
    """All files at once, SUBMIT_THREADS calls in flight."""
    with ThreadPoolExecutor(max_workers=SUBMIT_THREADS) as pool:
        return list(pool.map(lambda path: submit_one(client, path), files))


def submit_paced(client: IngestionClient, files: Sequence[Path]) -> list[Submitted | None]:
    """One file every LIGHT_INTERVAL_S (on schedule from the first; straight on if a call ran late)."""
    start = time.monotonic()
    results = []
    for index, path in enumerate(files):
        time.sleep(max(0.0, start + index * LIGHT_INTERVAL_S - time.monotonic()))
        results.append(submit_one(client, path))
    return results


def as_utc(moment: datetime) -> datetime:
    """A stored timestamp as aware UTC (SQLite gives back naive UTC)."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def await_reports(probe: StackProbe, uids: Sequence[str], timeout_s: float) -> dict[str, datetime]:
    """Poll the database until every study is REPORTED or FAILED, or timeout_s passes; returns when each reported
    study's report was stored (its ReportRow's created_at; the poll time if it has none). FAILED and unfinished
    studies are left out. Raises ProcessFailed if a part of the stack stops meanwhile.
    """
    sessions, pending, reported_seen = probe.sessions, set(uids), {}
    finished = study_state.name_of(study_state.REPORTED), study_state.name_of(study_state.FAILED)
    deadline = time.monotonic() + timeout_s
    while pending and time.monotonic() < deadline:
        time.sleep(POLL_S)
        probe.check_alive()
        with sessions() as session:
            rows = session.execute(select(StudyRow.study_instance_uid, StudyRow.state)
                                   .where(StudyRow.study_instance_uid.in_(pending))).all()
        now = datetime.now(UTC)
        for uid, state in rows:
            if state in finished:
                pending.discard(uid)
                if state == finished[0]:
                    reported_seen[uid] = now
    with sessions() as session:
        stored = session.execute(select(ReportRow.study_instance_uid, ReportRow.created_at)
                                 .where(ReportRow.study_instance_uid.in_(list(reported_seen)))).all()
    created = {uid: as_utc(at) for uid, at in stored}
    return {uid: created.get(uid, seen) for uid, seen in reported_seen.items()}


def idle_rate(meter: StackMeter) -> float:
    """The stack's CPU use at rest, in ms per second, over IDLE_WINDOW_S."""
    before = sum(meter.cpu_ms_by_role().values())
    time.sleep(IDLE_WINDOW_S)
    return (sum(meter.cpu_ms_by_role().values()) - before) / IDLE_WINDOW_S


def wait_quiet(probe: StackProbe) -> None:
    """Wait (at most QUIET_MAX_S) until the stack has finished what the last studies started: its CPU use over
    QUIET_WINDOW_S is back near its idle rate.
    """
    threshold = max(2 * probe.idle_ms_s, QUIET_FLOOR_MS_S)
    deadline = time.monotonic() + QUIET_MAX_S
    previous = sum(probe.meter.cpu_ms_by_role().values())
    while time.monotonic() < deadline:
        time.sleep(QUIET_WINDOW_S)
        current = sum(probe.meter.cpu_ms_by_role().values())
        if (current - previous) / QUIET_WINDOW_S <= threshold:
            return
        previous = current


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile of values; NaN when there are none."""
    return float(np.percentile(np.array(values), q)) if values else math.nan


def run_phase(name: str, probe: StackProbe, files: Sequence[Path],
              submit: Callable[[IngestionClient, Sequence[Path]], list[Submitted | None]]) -> PhaseResult:
    """Submit files the given way, wait for their reports, and measure rate, latency, CPU and Triton batching."""
    metrics_port = probe.settings.triton.metrics_port
    counters, cpu_before, client_before = triton_counters(metrics_port), probe.meter.cpu_ms_by_role(), own_cpu_ms()
    accepted = [s for s in submit(probe.client, files) if s is not None]
    stored = await_reports(probe, [s.uid for s in accepted], timeout_s=120 + 5 * len(files))
    wait_quiet(probe)
    cpu = cpu_delta(cpu_before, probe.meter.cpu_ms_by_role())
    client_ms = own_cpu_ms() - client_before
    stats = batching(counters, triton_counters(metrics_port))
    latencies = [(stored[s.uid] - s.complete_at).total_seconds() for s in accepted if s.uid in stored]
    first = min((s.started_at for s in accepted), default=None)
    elapsed = (max(stored.values()) - first).total_seconds() if stored and first else math.nan
    return PhaseResult(
        name=name, studies=len(files), reported=len(stored), failures=len(files) - len(stored),
        studies_s=len(stored) / elapsed if stored else 0.0,
        p50_s=percentile(latencies, 50), p95_s=percentile(latencies, 95),
        cpu_ms_per_study={role: ms / len(files) for role, ms in cpu.items()},
        client_cpu_ms_per_study=client_ms / len(files), batching=stats,
    )


# --- output -----------------------------------------------------------------------------------------------------


def print_rates(title: str, rates: Sequence[Rate]) -> None:
    """A block of throughput lines."""
    print(title)
    for rate in rates:
        print(f"  {rate.label:28} {rate.images_s:8.2f} images/s   {rate.call_ms:8.1f} ms per call")


def best(rates: Sequence[Rate]) -> Rate:
    """The rate with the most images per second."""
    return max(rates, key=lambda rate: rate.images_s)


def print_alone(alone: Alone) -> None:
    """ORT alone and Triton alone: each rate, Triton's batching, and the paired batch-1 calls."""
    print_rates(f"ONNX Runtime alone, this process, {TIMED_IMAGES} images a measure, mean of {ALONE_ROUNDS} rounds",
                alone.ort)
    print_rates("Triton alone (cxr_findings over gRPC from this process), same rounds", alone.triton)
    if alone.ort_devices:
        print_rates(f"cxr_devices in ONNX Runtime alone, {DEVICES_IMAGES} images a measure, same rounds",
                    alone.ort_devices)
    stats = alone.batching
    print(f"  images per model execution {stats.images_per_execution:.2f}; compute per image "
          f"{stats.compute_ms_per_image:.1f} ms; queue wait per request {stats.queue_ms_per_request:.1f} ms")
    print(f"  batch 1, {ALONE_ROUNDS * PAIRED_CALLS} calls in pairs: ORT {alone.paired_ort_ms:.1f} ms, Triton "
          f"{alone.paired_triton_ms:.1f} ms; Triton overhead {alone.overhead_ms:.1f} ms per call (median of the "
          f"pairs {alone.paired_median_ms:.1f} ms)")
    print(f"  of which {alone.overhead_split()}")


def print_phases(phases: Sequence[PhaseResult], peak_rss: dict[str, float], processes: dict[str, int]) -> None:
    """The end-to-end table (one column per phase), then CPU-ms per study, peak memory and processes by role."""
    def row(label: str, values: Sequence[str]) -> None:
        print(f"{label:46} " + " ".join(f"{value:>12}" for value in values))

    print()
    row("Hilum end to end", [phase.name for phase in phases])
    row("studies (reported, failed)", [f"{p.studies} ({p.reported},{p.failures})" for p in phases])
    row("studies/s (first submit to last report)", [f"{p.studies_s:.2f}" for p in phases])
    row("complete -> report stored, p50 (s)", [f"{p.p50_s:.2f}" for p in phases])
    row("complete -> report stored, p95 (s)", [f"{p.p95_s:.2f}" for p in phases])
    row("Triton: images per model execution", [f"{p.batching.images_per_execution:.2f}" for p in phases])
    row("Triton: compute per image (ms)", [f"{p.batching.compute_ms_per_image:.1f}" for p in phases])
    row("Triton: queue wait per request (ms)", [f"{p.batching.queue_ms_per_request:.1f}" for p in phases])
    print()
    row("CPU-ms per study, by role", [*(p.name for p in phases), "peak MiB", "processes"])
    for role in sorted(peak_rss):
        row(f"  {role}", [*(f"{p.cpu_ms_per_study.get(role, 0.0):.0f}" for p in phases), f"{peak_rss[role]:.0f}",
                          str(processes.get(role, 0))])
    row("  total (cpu_ms_per_study)", [*(f"{p.total_cpu_ms:.0f}" for p in phases), f"{sum(peak_rss.values()):.0f}",
                                       str(sum(processes.values()))])
    row("  non-model (total - triton)", [f"{p.non_model_cpu_ms:.0f}" for p in phases])
    row("  bench client (not counted)", [f"{p.client_cpu_ms_per_study:.0f}" for p in phases])


def print_summary(summary: Summary, ort_best: Rate, triton_best: Rate, burst_n: PhaseResult,
                  burst_4n: PhaseResult | None) -> None:
    """The figures the work is judged by, one a line."""
    lines: list[tuple[str, str]] = [
        (f"ORT alone, best ({ort_best.label}) (images/s)", f"{summary.ort_img_s:.2f}"),
        (f"Triton alone, best ({triton_best.label}) (images/s)", f"{summary.triton_img_s:.2f}"),
        ("Triton overhead per call, batch 1 (ms)", f"{summary.triton_overhead_ms:.1f}"),
        (f"Hilum end to end, {burst_n.name} (studies/s)", f"{summary.e2e_studies_s:.2f}"),
        ("ratio end-to-end / ORT alone", f"{summary.ratio_e2e_ort:.3f}"),
        ("ORT alone running a study's models (studies/s)", f"{summary.ort_study_s:.2f}"),
        ("ratio end-to-end / ORT alone with a study's models", f"{summary.ratio_e2e_ort_study:.3f}"),
        ("ratio Triton alone / ORT alone", f"{summary.ratio_triton_ort:.3f}"),
        ("burst: complete -> report stored, p95 (s)", f"{summary.burst_p95_s:.2f}"),
        ("light: complete -> report stored, p50 / p95 (s)", f"{summary.light_p50_s:.2f} / {summary.light_p95_s:.2f}"),
        ("stack CPU-ms per study (all / non-model)",
         f"{summary.cpu_ms_per_study:.0f} / {summary.cpu_ms_per_study_non_model:.0f}"),
        ("stack peak RSS (MiB)", f"{summary.peak_rss_mib:.0f}"),
        ("stack peak PSS, shared pages counted once (MiB)", f"{summary.peak_pss_mib:.0f}"),
        ("failures (all phases)", f"{summary.failures}"),
    ]
    if burst_4n is not None and summary.cost_ratio_4n_over_n is not None:
        lines += [(f"{burst_4n.name}: studies/s, CPU-ms per study",
                   f"{burst_4n.studies_s:.2f}, {burst_4n.total_cpu_ms:.0f}"),
                  ("cost ratio CPU-ms per study 4N / N (goal <= 1.1)", f"{summary.cost_ratio_4n_over_n:.3f}")]
    print()
    for label, value in lines:
        print(f"{label:52} {value:>16}")


# --- main -------------------------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--studies", type=int, default=48, help="N, studies of the burst (default 48)")
    parser.add_argument("--concurrency", type=int, default=2, help="Celery worker processes per stage (default 2)")
    parser.add_argument("--light", type=int, default=10, help="M, studies sent one a second (default 10)")
    parser.add_argument("--no-4n", dest="four_n", action="store_false", help="skip the burst of 4N studies")
    parser.add_argument("--findings-only", action="store_true",
                        help="serve and run cxr_findings alone, no cxr_devices (ONNX Runtime alone measures "
                             "cxr_findings: this compares like with like, and with runs before cxr_devices existed)")
    parser.add_argument("--findings-from", type=Path, metavar="DIR",
                        help="with --findings-only: serve this cxr_findings folder (config, 1/model.onnx, "
                             "1/weights.json) instead of the checkout's, e.g. another release's demo weights, so that "
                             "two runs report the same findings")
    parser.add_argument("--json", action="store_true", help="end with one line of JSON holding the key figures")
    return parser.parse_args()


def summarise(alone: Alone, phases: dict[str, PhaseResult], peak_rss_mib: float, peak_pss_mib: float) -> Summary:
    """The key figures of the N run from all the measurements; failures count every phase's."""
    ort_best, triton_best = best(alone.ort), best(alone.triton)
    burst_n, light, burst_4n = phases["burst N"], phases["light"], phases.get("burst 4N")
    return Summary(
        ort_img_s=ort_best.images_s, triton_img_s=triton_best.images_s, e2e_studies_s=burst_n.studies_s,
        ratio_e2e_ort=burst_n.studies_s / ort_best.images_s, ratio_triton_ort=triton_best.images_s / ort_best.images_s,
        ort_study_s=alone.ort_study_s, ratio_e2e_ort_study=burst_n.studies_s / alone.ort_study_s,
        triton_overhead_ms=alone.overhead_ms,
        cpu_ms_per_study=burst_n.total_cpu_ms, cpu_ms_per_study_non_model=burst_n.non_model_cpu_ms,
        light_p50_s=light.p50_s, light_p95_s=light.p95_s, burst_p95_s=burst_n.p95_s, peak_rss_mib=peak_rss_mib,
        peak_pss_mib=peak_pss_mib,
        failures=sum(phase.failures for phase in phases.values()),
        cost_ratio_4n_over_n=burst_4n.total_cpu_ms / burst_n.total_cpu_ms if burst_4n else None,
    )


@dataclass(frozen=True)
class Inputs:
    """The study files of each phase, and the burst's preprocessed images for ORT and Triton alone."""

    warmup: list[Path]
    burst: list[Path]
    light: list[Path]
    burst_4n: list[Path]
    images: npt.NDArray[np.float32]
    devices_images: npt.NDArray[np.float32] | None  # cxr_devices' inputs of the burst, where the stack runs it


def prepare_inputs(root: Path, n: int, m: int, four_n: bool, devices: bool) -> Inputs:
    """Write every phase's studies (distinct patients throughout) and preprocess the burst's."""
    start = time.perf_counter()
    warmup = write_studies(root / "studies-warmup", 0, WARMUP_STUDIES)
    burst = write_studies(root / "studies-n", WARMUP_STUDIES, n)
    light = write_studies(root / "studies-light", WARMUP_STUDIES + n, m)
    burst_4n = write_studies(root / "studies-4n", WARMUP_STUDIES + n + m, 4 * n) if four_n else []
    count = len(warmup) + len(burst) + len(light) + len(burst_4n)
    print(f"wrote {count} studies ({burst[0].stat().st_size / 1e6:.1f} MB each) in "
          f"{time.perf_counter() - start:.1f} s")
    images, preprocess_s = preprocess(burst)
    print(f"preprocessing alone (read DICOM + resize): {preprocess_s * 1000:.0f} ms per image")
    return Inputs(warmup, burst, light, burst_4n, images, devices_inputs(burst[:DEVICES_IMAGES]) if devices else None)


def measure(settings: HilumSettings, model_path: Path,
            inputs: Inputs) -> tuple[Alone, dict[str, PhaseResult], RssSampler, dict[str, int]]:
    """Start the stack, warm it up, then measure ORT and Triton alone and each phase of studies; returns
    those, the phases (warm-up included, for its failures), the memory sampler and each role's process count.
    """
    upgrade_database(settings.database_url)
    phases: dict[str, PhaseResult] = {}
    address = settings.grpc.address(settings.grpc.ingestion_port)
    with EmbeddedStack(settings) as stack, IngestionClient(address) as client:
        meter = StackMeter(stack_roots(stack))
        sampler = RssSampler(meter)
        sampler.start()
        probe = StackProbe(settings, client, open_sessions(stack.settings), meter, stack.check_alive)
        probe.idle_ms_s = idle_rate(meter)
        warmup = phases["warm-up"] = run_phase("warm-up", probe, inputs.warmup, submit_burst)
        probe.idle_ms_s = idle_rate(meter)
        pids = meter.pids_by_role()
        print(f"stack: {sum(map(len, pids.values()))} processes in {len(pids)} roles; warm-up {warmup.reported} of "
              f"{warmup.studies} studies reported (not timed); idle CPU {probe.idle_ms_s:.0f} ms/s")

        devices = model_path.parent.parent.parent / "cxr_devices" / "1" / "model.onnx"
        alone = alone_rates(model_path, settings, inputs.images,
                            None if inputs.devices_images is None else (devices, inputs.devices_images))
        print_alone(alone)

        phases["burst N"] = run_phase("burst N", probe, inputs.burst, submit_burst)
        phases["light"] = run_phase("light", probe, inputs.light, submit_paced)
        if inputs.burst_4n:
            phases["burst 4N"] = run_phase("burst 4N", probe, inputs.burst_4n, submit_burst)
        sampler.stop()
        processes = {role: len(pids) for role, pids in meter.pids_by_role().items()}
    return alone, phases, sampler, processes


def main() -> int:
    """Write the studies, measure every phase on one stack, print the figures; 1 if any study failed."""
    args = parse_args()
    root = Path(tempfile.mkdtemp(prefix="hilum-bench-"))
    model_repository = REPO_ROOT / "model_repository"
    manifest = ensure_findings_model(model_repository)
    if args.findings_only:  # a repository of cxr_findings alone, and no devices model asked for
        model_repository = root / "model_repository"
        shutil.copytree(args.findings_from or REPO_ROOT / "model_repository" / "cxr_findings",
                        model_repository / "cxr_findings")
        manifest = WeightsManifest.read(model_repository / "cxr_findings" / "1")
    else:
        ensure_devices_model(model_repository)
    models = "cxr_findings" if args.findings_only else "cxr_findings + cxr_devices"
    print(f"models {models}, cxr_findings {manifest.version} (demo weights: {manifest.demo}); N={args.studies}, "
          f"M={args.light}, 4N={'yes' if args.four_n else 'no'}; worker concurrency {args.concurrency}; root {root}")
    inputs = prepare_inputs(root, args.studies, args.light, args.four_n, devices=not args.findings_only)
    settings = loopback_settings(root, model_repository, REPO_ROOT / ".venv-triton",
                                 worker_concurrency=args.concurrency)
    model_path = model_repository / "cxr_findings" / "1" / "model.onnx"
    if args.findings_only:
        settings = settings.model_copy(update={"triton": settings.triton.model_copy(update={"devices_model": ""})})
    alone, phases, sampler, processes = measure(settings, model_path, inputs)

    print_phases([phase for name, phase in phases.items() if name != "warm-up"], sampler.peak_by_role_mib(),
                 processes)
    summary = summarise(alone, phases, sampler.peak_total_mib, sampler.peak_pss_mib)
    print_summary(summary, best(alone.ort), best(alone.triton), phases["burst N"], phases.get("burst 4N"))
    if summary.failures:
        print(f"{summary.failures} studies failed or timed out; logs kept in {root / 'data' / 'logs'}",
              file=sys.stderr)
    else:
        shutil.rmtree(root, ignore_errors=True)
    if args.json:
        print(summary.to_json())
    return 1 if summary.failures else 0


if __name__ == "__main__":
    sys.exit(main())
