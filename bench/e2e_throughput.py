"""End-to-end throughput: ONNX Runtime alone vs Hilum on N realistic studies submitted at once.

Both are measured in one run on the same machine, so the ratio is meaningful even on a shared, noisy
host. Studies are single-view PA, 2500x2000 pixels, 12-bit, one patient each (no priors to wait for).

    .venv/bin/python bench/e2e_throughput.py --studies 48 --concurrency 2
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort
from sqlalchemy import select

from hilum.common.connections import open_sessions
from hilum.common.db.models import ReportRow
from hilum.common.db.session import upgrade_database
from hilum.common.dicom.pixels import read_radiograph
from hilum.inference.model_export import ensure_findings_model
from hilum.inference.preprocessing import to_model_input
from hilum.ingestion.client import IngestionClient
from hilum.runtime.ports import loopback_settings
from hilum.runtime.stack import EmbeddedStack
from hilum.samples.dicom_files import write_study
from hilum.samples.sample_studies import SAMPLE_STUDIES

REPO_ROOT = Path(__file__).resolve().parent.parent


def write_studies(out_dir: Path, count: int) -> list[Path]:
    """count single-view PA studies of distinct fictional patients at the default (realistic) size."""
    template = SAMPLE_STUDIES[2]
    return [
        write_study(dataclasses.replace(template, patient_id=f"BENCH-{i:05d}", seed=10_000 + i,
                                        label=f"bench-{i:05d}",
                                        study_started=template.study_started + timedelta(minutes=i)), out_dir)
        for i in range(count)
    ]


def ort_alone(model_path: Path, inputs: np.ndarray, batch: int) -> float:
    """Images per second of onnxruntime on the preprocessed inputs (N,1,224,224) at the given batch size."""
    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    session.run(None, {name: inputs[:batch]})  # warm-up
    start = time.perf_counter()
    for first in range(0, len(inputs), batch):
        session.run(None, {name: inputs[first:first + batch]})
    return len(inputs) / (time.perf_counter() - start)


def triton_stats(metrics_port: int) -> dict[str, float]:
    """Average batch size, compute time per image and queue time per request, from Triton's metrics."""
    text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("nv_inference_") and 'model="cxr_findings"' in line:
            name = line.split("{", 1)[0]
            values[name] = values.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
    inferences = values.get("nv_inference_count", 0.0) or 1.0
    requests = values.get("nv_inference_request_success", 0.0) or 1.0
    return {
        "batch": inferences / (values.get("nv_inference_exec_count", 0.0) or 1.0),
        "compute_ms": values.get("nv_inference_compute_infer_duration_us", 0.0) / 1000 / inferences,
        "queue_ms": values.get("nv_inference_queue_duration_us", 0.0) / 1000 / requests,
    }


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=48)
    parser.add_argument("--concurrency", type=int, default=2, help="Celery worker processes per stage")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="hilum-bench-"))
    model_repository = REPO_ROOT / "model_repository"
    manifest = ensure_findings_model(model_repository)
    model_path = model_repository / "cxr_findings" / "1" / "model.onnx"
    print(f"model cxr_findings {manifest.version} (demo weights: {manifest.demo}); {args.studies} studies; "
          f"worker concurrency {args.concurrency}; root {root}")

    t0 = time.perf_counter()
    files = write_studies(root / "studies", args.studies)
    size_mb = sum(p.stat().st_size for p in files) / len(files) / 1e6
    print(f"wrote {len(files)} studies ({size_mb:.1f} MB each) in {time.perf_counter() - t0:.1f} s")

    t0 = time.perf_counter()
    inputs = np.stack([to_model_input(read_radiograph(p)) for p in files]).astype(np.float32)
    preprocess_per_image = (time.perf_counter() - t0) / len(files)
    ort_b1 = ort_alone(model_path, inputs, 1)
    ort_b8 = ort_alone(model_path, inputs, 8)
    ort_best = max(ort_b1, ort_b8)

    settings = loopback_settings(root, model_repository, REPO_ROOT / ".venv-triton",
                                 worker_concurrency=args.concurrency)
    upgrade_database(settings.database_url)
    with EmbeddedStack(settings) as stack:
        address = settings.grpc.address(settings.grpc.ingestion_port)
        submitted: dict[str, datetime] = {}
        with IngestionClient(address) as client:

            def submit(path: Path) -> None:
                at = datetime.now(UTC)
                result = client.submit_files([path])[0]
                assert result.accepted, result.rejection.reason
                submitted[result.study_instance_uid] = at

            start = datetime.now(UTC)
            with ThreadPoolExecutor(max_workers=8) as pool:
                list(pool.map(submit, files))
            statuses = client.wait_for(list(submitted), timeout_s=1800, poll_s=0.5)
        failed = [uid for uid, s in statuses.items() if s.result.diagnostic_report_id == ""]
        triton = triton_stats(settings.triton.metrics_port)
        with open_sessions(stack.settings)() as session:
            rows = session.execute(select(ReportRow.study_instance_uid, ReportRow.created_at)).all()
    stored = {uid: (at if at.tzinfo else at.replace(tzinfo=UTC)) for uid, at in rows}
    latencies = [(stored[uid] - submitted[uid]).total_seconds() for uid in submitted if uid in stored]
    elapsed = (max(stored.values()) - start).total_seconds()
    e2e = len(stored) / elapsed

    print()
    print(f"{'measure':46} {'value':>12}")
    print(f"{'preprocessing alone (read DICOM + resize), s/image':46} {preprocess_per_image:12.3f}")
    print(f"{'ONNX Runtime alone, batch 1 (images/s)':46} {ort_b1:12.2f}")
    print(f"{'ONNX Runtime alone, batch 8 (images/s)':46} {ort_b8:12.2f}")
    print(f"{'Hilum end to end (studies/s)':46} {e2e:12.2f}")
    print(f"{'submitted -> DiagnosticReport stored, p50 (s)':46} {percentile(latencies, 50):12.2f}")
    print(f"{'submitted -> DiagnosticReport stored, p95 (s)':46} {percentile(latencies, 95):12.2f}")
    print(f"{'ratio end-to-end / ORT alone (best batch)':46} {e2e / ort_best:12.3f}")
    print(f"{'Triton: images per model execution (batching)':46} {triton['batch']:12.2f}")
    print(f"{'Triton: compute per image (ms)':46} {triton['compute_ms']:12.1f}")
    print(f"{'Triton: queue wait per request (ms)':46} {triton['queue_ms']:12.1f}")
    print(f"reported {len(stored)} of {len(files)} studies; failed: {len(failed)}")
    return 0 if len(stored) == len(files) else 1


if __name__ == "__main__":
    sys.exit(main())
