"""Publish throughput to a real FHIR server: Hilum's FHIR sender against Medplum (in-memory, atomic transactions).

N synthetic reports (the read-API tests' bundles: ImagingStudy, Device, Observations, DiagnosticReport,
Provenance) are published one after another through `hilum.publishing.senders`' transaction path, in parts of
at most --max-entries (Medplum refuses larger conditional transactions), then all published again. The second
round must create nothing: the bench counts every resource type before and after it and fails otherwise.
Prints reports/s, per-report latency p50/p95/p99 and the publishing process's own CPU per report for each
round (the rest is the server), and the ratio republish ÷ first publish.

    .venv/bin/python bench/publish_fhir_peer.py --reports 300
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # the synthetic reports are the tests' own

from hilum.common.settings import FhirDestination  # noqa: E402
from hilum.publishing.fhir_server import post_transaction  # noqa: E402
from hilum.publishing.transactions import post_in_parts  # noqa: E402
from hilum.runtime.fhir_peer import FhirPeer  # noqa: E402
from tests.unit.fhir_api.synthetic_reports import synthetic_report  # noqa: E402

TYPES = ("ImagingStudy", "Device", "Observation", "DiagnosticReport", "Provenance")


def counts(client: httpx.Client, base_url: str) -> dict[str, int]:
    """How many resources of each type the server holds (its _summary=count total)."""
    return {kind: int(client.get(f"{base_url}/{kind}", params={"_summary": "count"}).json().get("total", -1))
            for kind in TYPES}


def publish_round(
    bundles: list[dict[str, Any]], destination: FhirDestination, client: httpx.Client
) -> tuple[list[float], float]:
    """Publish every bundle once; returns each report's seconds, and Hilum's own CPU seconds for the round."""
    seconds = []
    cpu = time.process_time()
    for bundle in bundles:
        began = time.perf_counter()
        post_in_parts(bundle, destination.max_entries_per_transaction,
                      lambda part: post_transaction(part, destination, client).locations)
        seconds.append(time.perf_counter() - began)
    return seconds, time.process_time() - cpu


def summary(name: str, measured: tuple[list[float], float]) -> float:
    """Print a round's rate, latency percentiles and Hilum's CPU per report; returns reports/s."""
    seconds, cpu = measured
    ms = np.array(seconds) * 1000
    rate = len(seconds) / sum(seconds)
    print(f"{name:14s} {rate:8.1f} reports/s   p50 {np.percentile(ms, 50):6.1f} ms   "
          f"p95 {np.percentile(ms, 95):6.1f} ms   p99 {np.percentile(ms, 99):6.1f} ms   "
          f"Hilum CPU {cpu / len(seconds) * 1000:5.2f} ms/report")
    return rate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reports", type=int, default=300)
    parser.add_argument("--patients", type=int, default=60)
    parser.add_argument("--max-entries", type=int, default=8)
    args = parser.parse_args()
    bundles = [synthetic_report(index, args.patients).bundle for index in range(args.reports)]
    entries = sum(len(b["entry"]) for b in bundles) / len(bundles)
    with tempfile.TemporaryDirectory() as work, FhirPeer(Path(work)) as peer, httpx.Client(timeout=30) as client:
        destination = FhirDestination(url=peer.base_url, max_entries_per_transaction=args.max_entries)
        print(f"{args.reports} reports, {entries:.1f} entries each, parts of at most {args.max_entries}, "
              f"Medplum {peer.base_url}")
        first = summary("first publish", publish_round(bundles, destination, client))
        before = counts(client, peer.base_url)
        again = summary("republish", publish_round(bundles, destination, client))
        after = counts(client, peer.base_url)
    print(f"resources held: {before}")
    print(f"ratio republish / first publish (reports/s): {again / first:.2f}")
    if after != before:
        print(f"FAIL: republishing created resources: {before} -> {after}", file=sys.stderr)
        return 1
    print("republishing created nothing")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
