"""FHIR read API latency: searches and reads over N stored reports, served by uvicorn in its own process.

Reports are real bundles from build_report_bundle over synthetic inputs (N reports of N/5 patients), stored
with store_bundle in batches, in SQLite (default) or PostgreSQL (--database-url). The API runs in open mode
on loopback (no token lookup) in a child process, as `hilum serve cds` would, over a Redis of its own (AOF written
through on every write, as the embedded stack runs it) that takes each call's AuditEvent (the audit spool; nothing
drains it here); one keep-alive client sends the requests one after another (closed loop) and times each. Goal:
search p99 <= 50 ms at 10,000 reports.

    .venv/bin/python bench/fhir_read_api.py --reports 10000 --requests 2000
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import redis

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # the synthetic reports are the tests' own

from hilum.audit.spool import SPOOL_KEY  # noqa: E402
from hilum.common.db.session import create_db_engine, session_factory, upgrade_database  # noqa: E402
from hilum.common.settings import FhirApiSection, HilumSettings  # noqa: E402
from hilum.fhir_api.store import store_bundle  # noqa: E402
from hilum.runtime.ports import free_port  # noqa: E402
from hilum.runtime.redis_server import RedisServer  # noqa: E402
from tests.unit.fhir_api.synthetic_reports import MRN_SYSTEM, mrn, synthetic_report  # noqa: E402

STORED_AT = datetime(2025, 1, 1, tzinfo=UTC)


def load(database_url: str, reports: int, patients: int, batch: int) -> float:
    """Store the reports (report n at STORED_AT + n seconds); returns the seconds spent storing."""
    upgrade_database(database_url)
    sessions = session_factory(create_db_engine(database_url))
    storing = 0.0
    for start in range(0, reports, batch):
        bundles = [synthetic_report(index, patients).bundle for index in range(start, min(reports, start + batch))]
        began = time.perf_counter()
        with sessions.begin() as session:
            for offset, bundle in enumerate(bundles):
                store_bundle(session, bundle, STORED_AT + timedelta(seconds=start + offset))
        storing += time.perf_counter() - began
        synthetic_report.cache_clear()
        print(f"  stored {min(reports, start + batch)}/{reports} reports", file=sys.stderr, end="\r")
    print(file=sys.stderr)
    return storing


def serve(database_url: str, redis_url: str, port: int) -> None:
    """The child process: the FHIR read API alone, in open mode on loopback, its audit spool in redis_url."""
    import uvicorn

    from hilum.fhir_api.app import create_fhir_app, fhir_api_from_settings

    settings = HilumSettings(fhir_api=FhirApiSection(open_on_loopback=True))
    api = fhir_api_from_settings(settings, redis.Redis.from_url(redis_url),
                                 session_factory(create_db_engine(database_url)))
    uvicorn.run(create_fhir_app(api), host="127.0.0.1", port=port, log_level="warning")


def percentiles(samples: list[float]) -> str:
    values = np.array(samples) * 1000
    return (f"p50 {np.percentile(values, 50):6.2f} ms  p95 {np.percentile(values, 95):6.2f} ms  "
            f"p99 {np.percentile(values, 99):6.2f} ms  (n={len(samples)})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=10_000)
    parser.add_argument("--patients", type=int, default=0, help="default: reports / 5")
    parser.add_argument("--requests", type=int, default=2000, help="per kind of request")
    parser.add_argument("--batch", type=int, default=500, help="reports stored per transaction")
    parser.add_argument("--database-url", default="", help="e.g. postgresql+psycopg://...; default SQLite")
    args = parser.parse_args()
    patients = args.patients or max(1, args.reports // 5)
    workdir = Path(tempfile.mkdtemp(prefix="hilum-fhir-bench-"))
    database_url = args.database_url or f"sqlite:///{workdir / 'hilum.db'}"
    print(f"storing {args.reports} reports of {patients} patients in {database_url.split(':')[0]} ...")
    storing = load(database_url, args.reports, patients, args.batch)
    print(f"stored in {storing:.1f} s ({args.reports / storing:.0f} reports/s inside store_bundle)")

    port = free_port()
    redis_server = RedisServer(free_port(), workdir / "redis", workdir / "redis.log")
    redis_server.start()
    server = multiprocessing.get_context("spawn").Process(target=serve, args=(database_url, redis_server.url, port),
                                                          daemon=True)
    server.start()
    base = f"http://127.0.0.1:{port}/fhir"
    rng = random.Random(7)
    try:
        with httpx.Client(base_url=base, timeout=10) as client:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if client.get("/metadata").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError("the API did not start")
                time.sleep(0.2)

            def patient() -> str:
                return f"{MRN_SYSTEM}|{mrn(rng.randrange(patients))}"

            def since() -> str:
                moment = STORED_AT + timedelta(seconds=rng.randrange(args.reports))
                return "gt" + moment.strftime("%Y-%m-%dT%H:%M:%SZ")

            report_ids = [synthetic_report(rng.randrange(args.reports), patients).resource_ids("DiagnosticReport")[0]
                          for _ in range(200)]
            first_page = client.get("/DiagnosticReport", params={"_count": "20"}).json()
            next_links = [first_page]
            for _ in range(50):  # a chain of pages to walk
                link = next((entry["url"] for entry in next_links[-1]["link"] if entry["relation"] == "next"), None)
                if link is None:
                    break
                next_links.append(client.get(link).json())
            page_urls = [entry["url"] for page in next_links for entry in page["link"] if entry["relation"] == "next"]

            kinds: dict[str, Callable[[], httpx.Response]] = {
                "search patient:identifier": lambda: client.get(
                    "/DiagnosticReport", params={"patient:identifier": patient()}),
                "search patient + _lastUpdated": lambda: client.get(
                    "/DiagnosticReport", params={"patient.identifier": patient(), "_lastUpdated": since()}),
                "search _include result+study": lambda: client.get(
                    "/DiagnosticReport", params={"patient:identifier": patient(),
                                                 "_include": ["DiagnosticReport:result",
                                                              "DiagnosticReport:imaging-study"]}),
                "search _lastUpdated page 20": lambda: client.get(
                    "/DiagnosticReport", params={"_lastUpdated": since(), "_count": "20"}),
                "search next page (cursor)": lambda: client.get(rng.choice(page_urls)),
                "read DiagnosticReport": lambda: client.get(f"/DiagnosticReport/{rng.choice(report_ids)}"),
            }
            for send in kinds.values():  # warm up every path
                for _ in range(20):
                    send()
            timings: dict[str, list[float]] = {name: [] for name in kinds}
            errors = 0
            for _ in range(args.requests):
                for name, send in kinds.items():
                    began = time.perf_counter()
                    response = send()
                    timings[name].append(time.perf_counter() - began)
                    errors += response.status_code != 200
        spooled = int(redis.Redis.from_url(redis_server.url).llen(SPOOL_KEY))
    finally:
        server.terminate()
        server.join(timeout=10)
        redis_server.stop()
    searches = [t for name, values in timings.items() if name.startswith("search") for t in values]
    print(f"\n{args.reports} reports, {args.requests} requests of each kind, one client, keep-alive:")
    for name, values in timings.items():
        print(f"  {name:32s} {percentiles(values)}")
    print(f"  {'all searches':32s} {percentiles(searches)}")
    p99 = float(np.percentile(np.array(searches), 99)) * 1000
    reads = [t for name, values in timings.items() if not name.startswith("search") for t in values]
    read_p99 = float(np.percentile(np.array(reads), 99)) * 1000
    # Interleaved with the searches, so the ratio holds on a noisy machine where absolute figures move.
    print(f"ratio search p99 / read p99 (measured side by side): {p99 / read_p99:.2f}")
    print(f"AuditEvents on the spool: {spooled} (one per call)")
    print(f"errors: {errors}; goal search p99 <= 50 ms: {'met' if p99 <= 50 and not errors else 'NOT met'}")
    return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(main())
