"""DICOM C-STORE throughput: Hilum's SCP vs Orthanc's, the same instances from the same sender, in one run.

Hilum's SCP (`hilum serve dicom`, its own process, as in production) and Orthanc each receive the same
N realistic DX chest radiographs (2500x2000, 12-bit, ~10 MB, uncompressed) over one association per
round, R rounds, the order alternating (Hilum first, then Orthanc first, ...); medians are reported.
Both acknowledge a C-STORE only once the file is durable: Hilum fsyncs the file and its folder and
commits the instance row; Orthanc runs with SyncStorageArea true (fsync of each stored file). Hilum
also decodes every image at the door (acceptance checks the pixel data); Orthanc does not.

    .venv/bin/python bench/dimse_vs_orthanc.py --instances 40 --rounds 3
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import logging
import os
import pstats
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import httpx
import numpy as np
import pydicom
from pydicom.uid import DigitalXRayImageStorageForPresentation, ExplicitVRLittleEndian
from pynetdicom import AE, evt
from pynetdicom.events import Event
from sqlalchemy import func, select

from hilum.common.atomic_file import write_atomically
from hilum.common.connections import open_sessions
from hilum.common.db.models import InstanceRow
from hilum.common.db.session import upgrade_database
from hilum.common.dicom.pixels import decode_radiograph
from hilum.common.polling import wait_until
from hilum.common.settings import DicomSection, HilumSettings, settings_env
from hilum.ingestion import dimse_scp
from hilum.ingestion.acceptance import accept_instance
from hilum.ingestion.service import Door, IncomingInstance, Ingestion
from hilum.ingestion.wiring import build
from hilum.runtime.orthanc import DicomModality, OrthancServer
from hilum.runtime.ports import free_port, loopback_settings
from hilum.runtime.processes import ManagedProcess, ProcessFailed
from hilum.samples.dicom_files import write_study
from hilum.samples.sample_studies import SAMPLE_STUDIES

REPO_ROOT = Path(__file__).resolve().parent.parent
CALLING_AE = "BENCHSCU"
LOOPBACK = "127.0.0.1"
SUCCESS = 0x0000
START_TIMEOUT_S = 60.0
STORE_TIMEOUT_S = 120.0
# storescu's -v messages, each stamped with Unix time in milliseconds.
STORESCU_LOG_CONFIG = """log4cplus.rootLogger = INFO, console
log4cplus.appender.console = log4cplus::ConsoleAppender
log4cplus.appender.console.layout = log4cplus::PatternLayout
log4cplus.appender.console.layout.ConversionPattern = %D{%s.%q} %m%n
"""
BREAKDOWN_INSTANCES = 6  # extra instances ingested in this process to split Hilum's cost (one a warm-up)


class Sender(StrEnum):
    """What sends the instances, the same for both SCPs: dcmtk's storescu (compiled, so it takes little of
    the CPUs the SCPs share) or pynetdicom (Python; it takes more).
    """

    STORESCU = "storescu"
    PYNETDICOM = "pynetdicom"


@dataclass(frozen=True)
class Target:
    """One SCP under test: its name in the table and where it listens."""

    name: str
    ae_title: str
    port: int


@dataclass(frozen=True)
class RoundResult:
    """One round of N instances to one SCP over one association.

    elapsed_s: from association request to release; latencies_s: C-STORE request to response, per instance.
    """

    elapsed_s: float
    latencies_s: list[float]


def parse_size(text: str) -> tuple[int, int]:
    """"2500x2000" -> (rows, columns)."""
    rows, _, columns = text.lower().partition("x")
    try:
        return int(rows), int(columns)
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be ROWSxCOLS, e.g. 2500x2000, not {text!r}") from None


def write_instances(out_dir: Path, count: int, rows: int, columns: int, first_seed: int) -> list[Path]:
    """count single-image DX studies, each its own fictional patient, study, series and SOP instance."""
    template = SAMPLE_STUDIES[2]
    return [
        write_study(dataclasses.replace(template, rows=rows, columns=columns, seed=first_seed + i,
                                        label=f"dimse-bench-{first_seed + i}",
                                        patient_id=f"DIMSE-BENCH-{first_seed + i}"), out_dir)
        for i in range(count)
    ]


def send_pynetdicom(target: Target, files: list[Path]) -> RoundResult:
    """C-STORE files over one association; each is streamed from its file, not decoded.

    Nagle's algorithm is turned off as DCMTK does it, when TCP_NODELAY=1: otherwise a C-STORE's last, short
    PDU can wait for the receiver's delayed ACK.
    """
    ae = AE(ae_title=CALLING_AE)
    ae.add_requested_context(DigitalXRayImageStorageForPresentation, ExplicitVRLittleEndian)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = STORE_TIMEOUT_S
    latencies: list[float] = []
    start = time.perf_counter()
    association = ae.associate(LOOPBACK, target.port, ae_title=target.ae_title)
    if not association.is_established:
        raise RuntimeError(f"{target.name} refused the association")
    connection = association.dul.socket.socket if association.dul.socket else None
    if connection is not None and os.environ.get("TCP_NODELAY") == "1":
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        for path in files:
            sent = time.perf_counter()
            status = association.send_c_store(path)
            latencies.append(time.perf_counter() - sent)
            if status.get("Status") != SUCCESS:
                raise RuntimeError(f"{target.name} answered C-STORE with {status.get('Status')!r} for {path.name}")
    finally:
        association.release()
    return RoundResult(time.perf_counter() - start, latencies)


def send_storescu(target: Target, files: list[Path]) -> RoundResult:
    """C-STORE files with dcmtk's storescu, all over one association (its default); latencies from its log,
    whose lines it stamps to the millisecond with the log configuration below.
    """
    storescu = shutil.which("storescu")
    if storescu is None:
        raise RuntimeError("storescu is not installed (Debian package dcmtk)")
    with tempfile.NamedTemporaryFile("w", suffix=".cfg", prefix="storescu-log-") as log_config:
        log_config.write(STORESCU_LOG_CONFIG)
        log_config.flush()
        start = time.perf_counter()
        done = subprocess.run([storescu, "--required", "--log-config", log_config.name, "-aet", CALLING_AE,
                               "-aec", target.ae_title, LOOPBACK, str(target.port), *map(str, files)],
                              capture_output=True, text=True, timeout=STORE_TIMEOUT_S * len(files))
        elapsed = time.perf_counter() - start
    output = done.stdout + done.stderr
    successes = output.count("Received Store Response (Success)")
    if done.returncode != 0 or successes != len(files):
        raise RuntimeError(f"storescu to {target.name}: exit {done.returncode}, {successes} of {len(files)} "
                           f"stored:\n{output[-2000:]}")
    return RoundResult(elapsed, storescu_latencies(output))


def storescu_latencies(log: str) -> list[float]:
    """Seconds from each "Sending Store Request" line to the next "Received Store Response" line."""
    latencies: list[float] = []
    sent_at: float | None = None
    for line in log.splitlines():
        stamp, _, message = line.partition(" ")
        if message.startswith("Sending Store Request"):
            sent_at = float(stamp)
        elif message.startswith("Received Store Response") and sent_at is not None:
            latencies.append(float(stamp) - sent_at)
            sent_at = None
    return latencies


SENDERS: dict[Sender, Callable[[Target, list[Path]], RoundResult]] = {
    Sender.PYNETDICOM: send_pynetdicom,
    Sender.STORESCU: send_storescu,
}


class HilumScp:
    """`hilum serve dicom` as a child process over settings (its database already upgraded)."""

    def __init__(self, settings: HilumSettings) -> None:
        self.settings = settings
        log_path = settings.storage.data_dir / "logs" / "dicom.log"
        env = {**_inherited_env(), **settings_env(settings)}
        self.process = ManagedProcess("dicom", [sys.executable, "-m", "hilum.cli", "serve", "dicom"], log_path, env)

    def __enter__(self) -> HilumScp:
        self.process.start()
        try:
            wait_until(lambda: dimse_scp.answers(self.settings.dicom), START_TIMEOUT_S, 0.2,
                       "Hilum's SCP to answer C-ECHO", on_poll=self._raise_if_exited)
        except BaseException:
            self.process.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.stop()

    def _raise_if_exited(self) -> None:
        if self.process.exited() is not None:
            raise ProcessFailed(f"hilum serve dicom exited with {self.process.exited()}:\n{self.process.log_tail()}")


def _inherited_env() -> dict[str, str]:
    """This process's environment less HILUM_* (the child gets exactly the benchmark's settings)."""
    return {key: value for key, value in os.environ.items() if not key.startswith("HILUM_")}


def hilum_count(settings: HilumSettings, sop_instance_uids: list[str]) -> int:
    """How many of these instances Hilum's database holds."""
    with open_sessions(settings)() as session:
        return int(session.scalar(select(func.count()).select_from(InstanceRow)
                                  .where(InstanceRow.sop_instance_uid.in_(sop_instance_uids))) or 0)


def orthanc_count(orthanc: OrthancServer) -> int:
    """How many instances Orthanc holds (GET /statistics)."""
    return int(httpx.get(f"{orthanc.url}/statistics", timeout=10).json()["CountInstances"])


@dataclass(frozen=True)
class Breakdown:
    """Hilum's per-instance cost, seconds: Ingestion.accept's parts timed under cProfile in this process,
    and the DIMSE layer's share from an SCP that keeps nothing.
    """

    receive_s: float  # median C-STORE latency to a pynetdicom SCP like Hilum's that keeps nothing
    accept_s: float  # Ingestion.accept whole
    acceptance_s: float  # every acceptance check: parse, pixel decode, the image checks
    decode_s: float  # the pixel decode inside acceptance (the one inference uses)
    sha256_s: float
    durable_write_s: float  # temp file, fsync, rename, fsync of the folder

    @property
    def database_s(self) -> float:
        """The rest of Ingestion.accept: identity checks, instance and study rows, two commits."""
        return self.accept_s - self.acceptance_s - self.sha256_s - self.durable_write_s


def receive_alone(send: Callable[[Target, list[Path]], RoundResult], files: list[Path]) -> float:
    """Median C-STORE latency, from the same sender, to an SCP built like Hilum's whose handler only takes
    the instance's bytes (event.encoded_dataset()) and answers Success: the DIMSE layer's share. It runs in
    this process, so with pynetdicom as the sender both share one interpreter and the figure is high.
    """
    section = DicomSection(port=free_port())
    ae = dimse_scp.build_ae(section)

    def on_store(event: Event) -> int:
        event.encoded_dataset()
        return SUCCESS

    server = ae.start_server((section.host, section.port), block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)])
    if server is None:  # only a blocking server returns nothing
        raise RuntimeError("pynetdicom started no server")
    try:
        target = Target("no-op SCP", section.ae_title, section.port)
        send(target, files[:1])
        return statistics.median(send(target, files).latencies_s)
    finally:
        server.shutdown()


def breakdown(settings: HilumSettings, files: list[Path],
              send: Callable[[Target, list[Path]], RoundResult]) -> Breakdown:
    """Hilum's per-instance cost: Ingestion.accept on files not yet stored anywhere (the first one a warm-up),
    under cProfile, split by the cumulative time of its parts.

    settings: an in-process Ingestion's (its database already upgraded); send: the benchmark's sender.
    """
    ingestion = build(settings)

    def accept(label: str, content: bytes) -> None:
        result = ingestion.accept([IncomingInstance(label=label, content=content, door=Door.DIMSE)]).results[0]
        if not result.accepted or result.duplicate:
            raise RuntimeError(f"the breakdown's instance {label} was not newly stored: {result}")

    contents = [p.read_bytes() for p in files]
    accept("breakdown-0", contents[0])  # first use of the decoders and the database stays out
    profile = cProfile.Profile()
    profile.enable()
    for i, content in enumerate(contents[1:], start=1):
        accept(f"breakdown-{i}", content)
    profile.disable()
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    measured = len(contents) - 1

    def per_instance(function: Callable[..., object] | str) -> float:
        """Cumulative seconds per instance in a Python function, or in built-ins whose name contains a string."""
        if isinstance(function, str):
            matches = [key for key in stats if key[0] == "~" and function in key[2]]
        else:
            code = function.__code__
            matches = [key for key in stats if key[:3] == (code.co_filename, code.co_firstlineno, code.co_name)]
        return float(sum(stats[key][3] for key in matches)) / measured

    return Breakdown(receive_s=receive_alone(send, files), accept_s=per_instance(Ingestion.accept),
                     acceptance_s=per_instance(accept_instance), decode_s=per_instance(decode_radiograph),
                     sha256_s=per_instance("openssl_sha256"), durable_write_s=per_instance(write_atomically))


def percentile_ms(values: list[float], q: float) -> str:
    return f"{float(np.percentile(np.array(values), q)) * 1000:.0f}" if values else "-"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=40, help="instances per round (N)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (R); each sends N new instances to both")
    parser.add_argument("--size", type=parse_size, default=(2500, 2000), help="ROWSxCOLS of each image")
    parser.add_argument("--sender", type=Sender, choices=list(Sender), default=Sender.STORESCU,
                        help="what sends the instances, the same for both SCPs (default storescu)")
    parser.add_argument("--postgres", default="", metavar="URL",
                        help="Hilum's database (postgresql+psycopg://...); default SQLite in the work folder")
    parser.add_argument("--nagle", action="store_true",
                        help="leave Nagle's algorithm on in Orthanc and the sender, as DCMTK and pynetdicom run "
                             "by default (each C-STORE to Orthanc then waits ~40 ms for a delayed ACK)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()
    if not args.nagle:
        # DCMTK (Orthanc's DICOM server and storescu, which inherit this) keeps Nagle's algorithm on unless
        # TCP_NODELAY=1: Orthanc's best setting, and the sender's. Hilum's SCP (pynetdicom) is not affected:
        # its C-STORE response is one short PDU, written at once.
        os.environ["TCP_NODELAY"] = "1"
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)
    rows, columns = args.size

    root = Path(tempfile.mkdtemp(prefix="hilum-dimse-bench-"))
    try:
        return run(args, root, rows, columns)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


def run(args: argparse.Namespace, root: Path, rows: int, columns: int) -> int:
    # Fresh UIDs every run, so a kept PostgreSQL database never answers "duplicate" (a cheaper path).
    first_seed = 1_000_000 + secrets.randbelow(10**9)
    count = args.instances * args.rounds + 1 + BREAKDOWN_INSTANCES  # one warm-up instance
    start = time.perf_counter()
    files = write_instances(root / "instances", count, rows, columns, first_seed)
    warm_up, rounds = files[0], [files[1 + r * args.instances:1 + (r + 1) * args.instances] for r in range(args.rounds)]
    spare = files[-BREAKDOWN_INSTANCES:]
    sent = [warm_up, *(p for batch in rounds for p in batch)]
    megabytes = statistics.mean(p.stat().st_size for p in files) / 1e6
    print(f"wrote {count} DX instances ({rows}x{columns}, 12-bit, {megabytes:.1f} MB each, uncompressed) "
          f"in {time.perf_counter() - start:.0f} s; work folder {root}")

    settings = loopback_settings(root / "hilum", REPO_ROOT / "model_repository", REPO_ROOT / ".venv-triton",
                                 database_url=args.postgres)
    upgrade_database(settings.database_url)
    send = SENDERS[args.sender]
    hilum = Target("hilum", settings.dicom.ae_title, settings.dicom.port)
    peer = {"bench": DicomModality(CALLING_AE, LOOPBACK, free_port())}
    results: dict[str, list[RoundResult]] = {"hilum": [], "orthanc": []}
    with HilumScp(settings) as scp, OrthancServer(root / "orthanc", modalities=peer, sync_storage=True) as orthanc:
        orthanc_target = Target("orthanc", orthanc.ae_title, orthanc.dicom_port)
        database = "PostgreSQL" if args.postgres else "SQLite"
        print(f"Hilum SCP: `hilum serve dicom` pid {scp.process.pid}, {database}; Orthanc pid {orthanc.pid}, "
              f"SyncStorageArea true; sender {args.sender.value}, one association per round; "
              f"TCP_NODELAY={os.environ.get('TCP_NODELAY', 'unset')}")
        for target in (hilum, orthanc_target):
            send(target, [warm_up])  # first-use costs (imports, index creation) stay out of the rounds
        for r, batch in enumerate(rounds):
            order = (hilum, orthanc_target) if r % 2 == 0 else (orthanc_target, hilum)
            for target in order:
                results[target.name].append(send(target, batch))
            line = ", ".join(f"{name} {args.instances / res[-1].elapsed_s:.2f}" for name, res in results.items())
            print(f"round {r + 1}/{args.rounds} ({order[0].name} first): {line} instances/s")
        stored = {"hilum": hilum_count(settings, [_sop_uid(p) for p in sent]), "orthanc": orthanc_count(orthanc)}
        if scp.process.exited() is not None:
            print(f"Hilum's SCP stopped during the run:\n{scp.process.log_tail()}", file=sys.stderr)
            return 1
    if any(n != len(sent) for n in stored.values()):
        print(f"not every instance was stored: expected {len(sent)} in each, found {stored}", file=sys.stderr)
        return 1

    in_process = loopback_settings(root / "inprocess", REPO_ROOT / "model_repository", REPO_ROOT / ".venv-triton",
                                   database_url=args.postgres)
    upgrade_database(in_process.database_url)
    parts = breakdown(in_process, spare, send)
    print_report(args, results, megabytes, parts, database)
    return 0


def _sop_uid(path: Path) -> str:
    return str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)


def print_report(args: argparse.Namespace, results: dict[str, list[RoundResult]], megabytes: float,
                 parts: Breakdown, database: str) -> None:
    rate = {name: statistics.median(args.instances / r.elapsed_s for r in res) for name, res in results.items()}
    latencies = {name: [s for r in res for s in r.latencies_s] for name, res in results.items()}
    per_round = {name: " / ".join(f"{args.instances / r.elapsed_s:.1f}" for r in res) for name, res in results.items()}
    print()
    print(f"{args.instances} instances x {args.rounds} rounds per SCP; both stored all "
          f"{args.instances * args.rounds + 1} (warm-up included)")
    print(f"{'measure':40} {'hilum':>12} {'orthanc':>12}")
    print(f"{'instances/s (median of rounds)':40} {rate['hilum']:12.2f} {rate['orthanc']:12.2f}")
    print(f"{'MB/s (median of rounds)':40} {rate['hilum'] * megabytes:12.1f} {rate['orthanc'] * megabytes:12.1f}")
    for q in (50, 95):
        label = f"C-STORE latency p{q} (ms)"
        print(f"{label:40} {percentile_ms(latencies['hilum'], q):>12} {percentile_ms(latencies['orthanc'], q):>12}")
    print(f"{'instances/s per round':40} {per_round['hilum']:>12} {per_round['orthanc']:>12}")
    print()
    print(f"Where Hilum's time goes, per instance (ms): Ingestion.accept under cProfile in this process, "
          f"{BREAKDOWN_INSTANCES - 1} more instances")
    for label, seconds in (
        ("C-STORE to an SCP that keeps nothing, p50", parts.receive_s),
        ("Ingestion.accept", parts.accept_s),
        ("  acceptance: parse, pixel decode, checks", parts.acceptance_s),
        ("    of which pixel decode", parts.decode_s),
        ("  sha256 of the bytes", parts.sha256_s),
        ("  durable write (fsync of file and folder)", parts.durable_write_s),
        ("  identity checks, rows, commits", parts.database_s),
        ("C-STORE to hilum serve dicom, p50", float(np.percentile(latencies["hilum"], 50))),
    ):
        print(f"  {label:48} {seconds * 1000:8.1f}")
    hilum_commit = "PostgreSQL's commit" if database == "PostgreSQL" else "SQLite with fsync (WAL, synchronous FULL)"
    print("Hilum decodes every image at the door (acceptance checks the pixel data); Orthanc stores without "
          "decoding. Both acknowledge after fsync of the file; Orthanc's SQLite index commits without fsync "
          f"(WAL, synchronous NORMAL), Hilum's index commits through {hilum_commit}.")
    print(f"ratio hilum/orthanc (instances/s): {rate['hilum'] / rate['orthanc']:.2f}")


if __name__ == "__main__":
    sys.exit(main())
