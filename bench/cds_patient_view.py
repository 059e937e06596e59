"""CDS Hooks patient-view latency at a fixed open-loop rate, beside unauthenticated discovery, in one run.

`hilum serve cds` runs in its own process, as in production, over its own Redis. Signed patient-view calls
(each with its own ES384 JWT, signed before its phase) and discovery calls (GET /cds-services, no token)
are sent at the same fixed rate in alternating phases (patient-view first, then discovery first, ...).
Request i of a phase is due at t0 + i/rate whatever the answers; its latency counts from that due time,
so queueing in the server (or a late client) is not hidden (no coordinated omission). The client is a
minimal HTTP/1.1 one on asyncio over keep-alive connections, with every request encoded beforehand: client
and server share two cores here, so the load generator must cost little CPU.

    .venv/bin/python bench/cds_patient_view.py --rate 200 --duration 30
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from datetime import time as time_of_day
from pathlib import Path

import httpx
import numpy as np
import redis
from fastapi import FastAPI
from fhir.resources.R4B.patient import Patient

from hilum.cds.app import create_app
from hilum.cds.auth import JwtVerifier
from hilum.cds.services import Hook, service_id
from hilum.common.cds_view import CdsFinding, CdsView, read_latest, write_view
from hilum.common.db.session import upgrade_database
from hilum.common.polling import wait_until
from hilum.common.reported_findings import ChangeSincePrior, FindingStatus
from hilum.common.settings import HilumSettings, settings_env
from hilum.runtime.local_issuer import TOKEN_LIFETIME_S, LocalIssuer
from hilum.runtime.ports import loopback_settings
from hilum.runtime.processes import ManagedProcess, ProcessFailed
from hilum.runtime.redis_server import RedisServer
from hilum.runtime.stack import redis_port

REPO_ROOT = Path(__file__).resolve().parent.parent
SERVICE_ID = service_id(Hook.PATIENT_VIEW)
DISCOVERY_PATH = "/cds-services"
SERVICE_PATH = f"/cds-services/{SERVICE_ID}"
MRN_SYSTEM = "urn:oid:2.16.840.1.113883.19.5.99"  # the bench hospital's MRN system (fictional)
MRN = "BENCH-MRN-0001"  # the DICOM PatientID the view is stored under
EHR_PATIENT_ID = "bench-1"  # the EHR's FHIR Patient id (context.patientId), never matched on
GOAL_P99_MS = 20.0  # the goal: patient-view p99 at GOAL_RATE, with no errors
GOAL_RATE = 200.0
START_TIMEOUT_S = 60.0
BREAKDOWN_CALLS = 300  # in-process calls per part, for the split of the server's time
ONE_AT_A_TIME_CALLS = 300  # calls per endpoint over one connection, each sent once the previous one answered


@dataclass
class Outcome:
    """One request: seconds from its due time and from its actual send to the whole answer read; error is
    "" when it answered 200 with what was expected, else a short kind ("status 401", "timeout", ...).
    """

    from_due_s: float
    from_send_s: float
    send_lag_s: float  # how late the client put it on the wire, after its due time
    error: str


@dataclass
class Figures:
    """Every timed outcome of one endpoint, over all its phases."""

    outcomes: list[Outcome] = field(default_factory=list)
    elapsed_s: float = 0.0  # sum over phases of first due time to last answer
    server_cpu_s: float = 0.0  # CPU time of the service's process (all its threads) during the phases
    client_cpu_s: float = 0.0  # CPU time of this process (the load generator) during the phases
    one_at_a_time_s: list[float] = field(default_factory=list)  # from send, the next sent after each answer

    def percentile_ms(self, q: float, attribute: str = "from_due_s") -> float:
        values = [getattr(o, attribute) for o in self.outcomes]
        return float(np.percentile(np.array(values), q)) * 1000 if values else float("nan")

    @property
    def errors(self) -> Counter[str]:
        return Counter(o.error for o in self.outcomes if o.error)


# --- the client: HTTP/1.1 over keep-alive loopback connections, requests encoded before the timed phase ---


class Connection:
    """One keep-alive HTTP/1.1 connection; answers are read by Content-Length (uvicorn sends it for JSON)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def exchange(self, request: bytes) -> tuple[int, bytes, bool]:
        """Send one encoded request; returns the status, the body and whether the server keeps the connection."""
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])
                   if name}
        if "content-length" not in headers:
            raise ValueError("answer without Content-Length")
        body = await self.reader.readexactly(int(headers["content-length"]))
        return status, body, headers.get("connection", "").lower() != "close"

    def close(self) -> None:
        self.writer.close()


class Pool:
    """Idle connections, used first in, first out (each is used often, so none idles into uvicorn's keep-alive
    timeout); a new one opens when none is idle, up to `limit`, beyond which a request waits for one.
    """

    def __init__(self, host: str, port: int, limit: int) -> None:
        self.host, self.port, self.limit = host, port, limit
        self.idle: deque[Connection] = deque()
        self.opened = 0
        self.open_count = 0
        self._freed = asyncio.Event()

    async def fill(self, count: int) -> None:
        """Open `count` connections before a phase, so its first requests do not pay for the TCP handshake."""
        for _ in range(count - self.open_count):
            self.idle.append(await self._open())

    async def _open(self) -> Connection:
        self.open_count += 1
        try:
            connection = await Connection.open(self.host, self.port)
        except BaseException:
            self.open_count -= 1
            raise
        self.opened += 1
        return connection

    async def acquire(self) -> Connection:
        while True:
            while self.idle:
                connection = self.idle.popleft()
                if not connection.reader.at_eof():
                    return connection
                self.discard(connection)
            if self.open_count < self.limit:
                return await self._open()
            self._freed.clear()
            await self._freed.wait()

    def release(self, connection: Connection) -> None:
        self.idle.append(connection)
        self._freed.set()

    def discard(self, connection: Connection) -> None:
        connection.close()
        self.open_count -= 1
        self._freed.set()

    def close(self) -> None:
        while self.idle:
            self.discard(self.idle.popleft())


Check = Callable[[int, bytes], str]  # (status, body) -> "" when right, else the error's kind


def check_patient_view(status: int, body: bytes) -> str:
    """A 200 with exactly one card (the bench patient's view)."""
    if status != 200:
        return f"status {status}"
    try:
        cards = json.loads(body).get("cards")
    except ValueError:
        return "not JSON"
    return "" if isinstance(cards, list) and len(cards) == 1 else f"{len(cards or [])} cards"


def check_discovery(status: int, body: bytes) -> str:
    """A 200 listing the patient-view service."""
    if status != 200:
        return f"status {status}"
    try:
        services = json.loads(body).get("services", [])
    except ValueError:
        return "not JSON"
    return "" if any(s.get("id") == SERVICE_ID for s in services) else "no service"


async def send_at_rate(pool: Pool, requests: list[bytes], check: Check, rate: float,
                       timeout_s: float) -> tuple[list[Outcome], float]:
    """Send requests[i] at t0 + i/rate, open loop; returns each one's outcome and the phase's seconds."""
    loop = asyncio.get_running_loop()
    outcomes: list[Outcome | None] = [None] * len(requests)

    async def one(index: int, due: float, request: bytes) -> None:
        connection: Connection | None = None
        sent = due
        error = ""
        try:
            async with asyncio.timeout(timeout_s):
                connection = await pool.acquire()
                sent = loop.time()
                status, body, keep = await connection.exchange(request)
            error = check(status, body)
            if keep:
                pool.release(connection)
            else:
                pool.discard(connection)
            connection = None
        except TimeoutError:
            error = "timeout"
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as failure:
            error = f"connection ({type(failure).__name__})"
        finally:
            if connection is not None:  # an answer never read whole: the connection's state is unknown
                pool.discard(connection)
        done = loop.time()
        outcomes[index] = Outcome(done - due, done - sent, sent - due, error)

    tasks: list[asyncio.Task[None]] = []
    start = loop.time() + 0.01
    for index, request in enumerate(requests):
        due = start + index / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(index, due, request)))
    await asyncio.gather(*tasks)
    return [o for o in outcomes if o is not None], loop.time() - start


def encode(method: str, path: str, host: str, body: bytes = b"", token: str = "") -> bytes:
    """One HTTP/1.1 request, whole, as bytes."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Accept: application/json"]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    if body:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def patient_view_body(hook_instance: uuid.UUID) -> dict[str, object]:
    """A patient-view call whose prefetched Patient carries the bench patient's MRN."""
    return {
        "hook": "patient-view",
        "hookInstance": str(hook_instance),
        "context": {"userId": "Practitioner/1", "patientId": EHR_PATIENT_ID},
        "prefetch": {"patient": {"resourceType": "Patient", "id": EHR_PATIENT_ID,
                                 "identifier": [{"system": MRN_SYSTEM, "value": MRN}]}},
    }


class Endpoint:
    """What one phase sends: encoded requests, fresh ones for each phase (a JWT's jti is single use)."""

    def __init__(self, name: str, host: str, check: Check, make: Callable[[], bytes]) -> None:
        self.name, self.host, self.check, self.make = name, host, check, make

    def requests(self, count: int) -> list[bytes]:
        return [self.make() for _ in range(count)]


def endpoints(host: str, issuer: LocalIssuer, audience: str) -> list[Endpoint]:
    """patient-view (signed, its own JWT and hookInstance per call) and discovery (unsigned)."""

    def patient_view() -> bytes:
        body = json.dumps(patient_view_body(uuid.uuid4())).encode()
        return encode("POST", SERVICE_PATH, host, body, issuer.token(audience))

    discovery = encode("GET", DISCOVERY_PATH, host)
    return [Endpoint("patient-view", host, check_patient_view, patient_view),
            Endpoint("discovery", host, check_discovery, lambda: discovery)]


# --- the server under test ---


class CdsService:
    """`hilum serve cds` as a child process over settings (its database already upgraded)."""

    def __init__(self, settings: HilumSettings) -> None:
        self.settings = settings
        self.url = f"http://{settings.cds.host}:{settings.cds.port}"
        env = {**_inherited_env(), **settings_env(settings)}
        log_path = settings.storage.data_dir / "logs" / "cds.log"
        self.process = ManagedProcess("cds", [sys.executable, "-m", "hilum.cli", "serve", "cds"], log_path, env)

    def __enter__(self) -> CdsService:
        self.process.start()
        try:
            wait_until(self._answers, START_TIMEOUT_S, 0.2, "the CDS service to answer discovery",
                       on_poll=self._raise_if_exited)
        except BaseException:
            self.process.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.stop()

    def _answers(self) -> bool:
        try:
            return httpx.get(f"{self.url}{DISCOVERY_PATH}", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    def _raise_if_exited(self) -> None:
        if self.process.exited() is not None:
            raise ProcessFailed(f"hilum serve cds exited with {self.process.exited()}:\n{self.process.log_tail()}")


async def settle(pid: int, idle_share: float = 0.05, timeout_s: float = 30.0) -> None:
    """Wait until the server uses under idle_share of a CPU over half a second, so work left from the phase
    before (calls whose client gave up are still run) does not count in the next one; at most timeout_s.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        before = cpu_seconds(pid)
        await asyncio.sleep(0.5)
        if cpu_seconds(pid) - before < idle_share * 0.5:
            return


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds a process (all its threads) and its live child processes (uvicorn's workers
    when HILUM_CDS__WORKERS > 1) have used so far, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    children = [int(c) for task in Path(f"/proc/{pid}/task").glob("*")
                for c in (task / "children").read_text().split()] if Path(f"/proc/{pid}/task").exists() else []
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return own + sum(cpu_seconds(child) for child in children)


def _inherited_env() -> dict[str, str]:
    """This process's environment less HILUM_* (the child gets exactly the benchmark's settings)."""
    return {key: value for key, value in os.environ.items() if not key.startswith("HILUM_")}


def bench_view() -> CdsView:
    """A demo-weight view for the bench patient: a new pneumothorax and an unchanged effusion."""
    return CdsView(
        patient_id=MRN, patient_system=MRN_SYSTEM, study_instance_uid="1.2.826.0.1.3680043.8.498.77001",
        study_date=date(2024, 3, 5), study_time=time_of_day(8, 15),
        impression="New right pneumothorax. Possible small pleural effusion.",
        findings=[CdsFinding(code="pneumothorax", display="Pneumothorax", status=FindingStatus.PRESENT,
                             probability=0.91, change=ChangeSincePrior.NEW),
                  CdsFinding(code="effusion", display="Pleural effusion", status=FindingStatus.PRESENT,
                             probability=0.62, change=ChangeSincePrior.UNCHANGED)],
        demo_weights=True, model_name="cxr_findings", model_version="demo-untrained",
        diagnostic_report_id="0b7f6c1e-6c55-5c51-9d4e-6f1d1c1b2a3c",
        published_at=datetime(2024, 3, 5, 9, 30, tzinfo=UTC),
    )


# --- where the server's time goes: its parts, called in this process ---


def breakdown(client: redis.Redis, issuer: LocalIssuer, settings: HilumSettings, audience: str) -> dict[str, float]:
    """Median seconds per call of the parts of a patient-view call, run here one after another (no load): the
    JWT check with and without its jti write, the FHIR Patient validation, the view read, and the whole call
    through the app in this process (no HTTP server), beside discovery's.
    """
    verifier = JwtVerifier([issuer.trusted_issuer], settings.cds.base_url, client)
    tokens = [issuer.token(audience) for _ in range(2 * BREAKDOWN_CALLS + 2)]
    verifier.verify(f"Bearer {tokens.pop()}", SERVICE_ID)  # the JWKS fetch stays out
    prefetched = patient_view_body(uuid.uuid4())["prefetch"]["patient"]  # type: ignore[index]

    def timed(call: Callable[[int], object]) -> float:
        seconds = []
        for i in range(BREAKDOWN_CALLS):
            start = time.perf_counter()
            call(i)
            seconds.append(time.perf_counter() - start)
        return statistics.median(seconds)

    spend_jti = verifier._spend_jti  # noqa: SLF001 (timed apart: the Redis write of every call)
    verifier._spend_jti = lambda iss, claims: None  # type: ignore[method-assign]  # noqa: SLF001
    signature_only = timed(lambda i: verifier.verify(f"Bearer {tokens[i]}", SERVICE_ID))
    verifier._spend_jti = spend_jti  # type: ignore[method-assign]  # noqa: SLF001
    app = create_app(client, patient_identifier_system=MRN_SYSTEM, trusted_issuers=[issuer.trusted_issuer],
                     public_url=settings.cds.base_url)
    whole = asyncio.run(in_app(app, tokens[BREAKDOWN_CALLS:]))
    return {
        "JWT: parse, ES384 signature, claims": signature_only,
        "JWT: jti write to Redis (SET NX, fsync)": timed(
            lambda i: client.set(f"hilum:bench:jti:{uuid.uuid4().hex}", 1, nx=True, ex=TOKEN_LIFETIME_S)),
        "FHIR Patient validation (fhir.resources)": timed(lambda i: Patient.model_validate(prefetched)),
        "view read: Redis HGET + CdsView parse": timed(lambda i: read_latest(client, MRN_SYSTEM, MRN)),
        "patient-view through the app in process": whole["patient-view"],
        "discovery through the app in process": whole["discovery"],
    }


async def in_app(app: FastAPI, tokens: list[str]) -> dict[str, float]:
    """Median seconds per call of each endpoint through the ASGI app in this process, one call at a time:
    routing, validation, dependencies (FastAPI runs sync ones in its thread pool), handler and serialisation,
    without uvicorn, HTTP parsing or a socket.
    """
    seconds: dict[str, list[float]] = {"patient-view": [], "discovery": []}
    for token in tokens:
        body = json.dumps(patient_view_body(uuid.uuid4())).encode()
        start = time.perf_counter()
        status, answer = await asgi_call(app, "POST", SERVICE_PATH, body, token)
        seconds["patient-view"].append(time.perf_counter() - start)
        if problem := check_patient_view(status, answer):
            raise RuntimeError(f"in-process patient-view: {problem}")
        start = time.perf_counter()
        status, answer = await asgi_call(app, "GET", DISCOVERY_PATH)
        seconds["discovery"].append(time.perf_counter() - start)
        if problem := check_discovery(status, answer):
            raise RuntimeError(f"in-process discovery: {problem}")
    return {name: statistics.median(values) for name, values in seconds.items()}


async def asgi_call(app: FastAPI, method: str, path: str, body: bytes = b"", token: str = "") -> tuple[int, bytes]:
    """One request straight into the ASGI app (no client library, whose own cost would count); status and body."""
    headers = [(b"host", b"bench"), (b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode())]
    if token:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "", "headers": headers,
             "client": ("127.0.0.1", 1), "server": ("bench", 80)}
    received = False
    status, chunks = 0, []

    async def receive() -> dict[str, object]:
        nonlocal received
        if not received:
            received = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # the client never disconnects
        raise AssertionError("unreachable")

    async def send(message: dict[str, object]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])  # type: ignore[call-overload]
        elif message["type"] == "http.response.body":
            chunks.append(bytes(message.get("body", b"")))  # type: ignore[arg-type]

    await app(scope, receive, send)  # type: ignore[arg-type]
    return status, b"".join(chunks)


# --- the run ---


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second, each endpoint (default 200)")
    parser.add_argument("--duration", type=float, default=30.0,
                        help="timed seconds per endpoint, split over the rounds (default 30)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of one phase per endpoint, the order alternating (default 3)")
    parser.add_argument("--warmup", type=float, default=3.0, help="untimed seconds per endpoint first (default 3)")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds before a request counts as an error")
    parser.add_argument("--connections", type=int, default=64, help="most connections open at once (default 64)")
    parser.add_argument("--workers", type=int, default=1, help="HILUM_CDS__WORKERS: uvicorn worker processes")
    parser.add_argument("--no-breakdown", action="store_true", help="skip the in-process split of the server's time")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (the service's and Redis's logs)")
    args = parser.parse_args()
    phase_s = args.duration / args.rounds
    if not 0 < phase_s <= TOKEN_LIFETIME_S / 2:  # a phase's JWTs are all signed before it starts
        parser.error(f"a phase (duration / rounds) must last at most half the JWTs' lifetime ({TOKEN_LIFETIME_S} s)")

    root = Path(tempfile.mkdtemp(prefix="hilum-cds-bench-"))
    try:
        return run(args, root)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


def run(args: argparse.Namespace, root: Path) -> int:
    settings = loopback_settings(root, REPO_ROOT / "model_repository", REPO_ROOT / ".venv-triton")
    settings.cds.public_url = f"http://{settings.cds.host}:{settings.cds.port}"
    settings.fhir.patient_identifier_system = MRN_SYSTEM
    settings.cds.workers = args.workers
    audience = f"{settings.cds.base_url}{SERVICE_PATH}"
    upgrade_database(settings.database_url)  # the service also carries the STOW-RS door over the database
    redis_server = RedisServer(redis_port(settings), settings.storage.data_dir / "redis",
                               settings.storage.data_dir / "logs" / "redis.log")
    redis_server.start()
    try:
        with LocalIssuer(iss="https://ehr.bench.hilum.local") as issuer:
            settings.cds.trusted_issuers = [issuer.trusted_issuer]
            client = redis.Redis.from_url(settings.redis.url)
            write_view(client, bench_view())
            with CdsService(settings) as service:
                pid = service.process.pid or 0
                print(f"hilum serve cds pid {service.process.pid} at {service.url}, Redis {settings.redis.url} "
                      f"(appendfsync always, as the embedded stack runs it); {args.workers} worker process(es); "
                      f"{os.cpu_count()} CPUs shared by "
                      f"client and server; {args.rate:g} requests/s per endpoint, {args.rounds} rounds of "
                      f"{args.duration / args.rounds:g} s per endpoint, warm-up {args.warmup:g} s")
                host = f"{settings.cds.host}:{settings.cds.port}"
                figures = asyncio.run(drive(args, endpoints(host, issuer, audience), settings, pid))
                if service.process.exited() is not None:
                    print(f"the CDS service stopped during the run:\n{service.process.log_tail()}", file=sys.stderr)
                    return 1
            parts = {} if args.no_breakdown else breakdown(client, issuer, settings, audience)
            client.close()
    finally:
        redis_server.stop()
    return report(args, figures, parts)


async def drive(args: argparse.Namespace, targets: list[Endpoint], settings: HilumSettings,
                server_pid: int) -> dict[str, Figures]:
    """Warm-up, then the rounds, then each endpoint one request at a time (its service time without queueing);
    each phase's requests (and JWTs) are made before the phase starts.
    """
    pool = Pool(settings.cds.host, settings.cds.port, args.connections)
    figures = {t.name: Figures() for t in targets}
    try:
        for target in targets:
            await pool.fill(8)
            outcomes, _ = await send_at_rate(pool, target.requests(round(args.rate * args.warmup)), target.check,
                                             args.rate, args.timeout)
            failed = Counter(o.error for o in outcomes if o.error)
            print(f"warm-up {target.name}: {len(outcomes)} requests, errors {dict(failed) or 0}")
        for r in range(args.rounds):
            order = targets if r % 2 == 0 else targets[::-1]
            line = []
            for target in order:
                requests = target.requests(round(args.rate * args.duration / args.rounds))
                pool.close()  # fresh connections each phase: none left idle past uvicorn's keep-alive timeout
                await settle(server_pid)
                await pool.fill(8)
                cpu_before, client_before = cpu_seconds(server_pid), time.process_time()
                outcomes, elapsed = await send_at_rate(pool, requests, target.check, args.rate, args.timeout)
                figures[target.name].server_cpu_s += cpu_seconds(server_pid) - cpu_before
                figures[target.name].client_cpu_s += time.process_time() - client_before
                figures[target.name].outcomes += outcomes
                figures[target.name].elapsed_s += elapsed
                phase = Figures(outcomes)
                line.append(f"{target.name} p50/p99 {phase.percentile_ms(50):.1f}/{phase.percentile_ms(99):.1f} ms, "
                            f"errors {sum(phase.errors.values())}")
            print(f"round {r + 1}/{args.rounds} ({order[0].name} first): " + "; ".join(line))
        print(f"connections opened: {pool.opened}")
        pool.close()
        connection = await Connection.open(settings.cds.host, settings.cds.port)
        try:
            for target in targets:
                for request in target.requests(ONE_AT_A_TIME_CALLS):
                    start = time.perf_counter()
                    status, body, _ = await connection.exchange(request)
                    figures[target.name].one_at_a_time_s.append(time.perf_counter() - start)
                    if target.check(status, body):
                        raise RuntimeError(f"{target.name} one at a time: {target.check(status, body)}")
        finally:
            connection.close()
    finally:
        pool.close()
    return figures


def report(args: argparse.Namespace, figures: dict[str, Figures], parts: dict[str, float]) -> int:
    """Print the table, the ratio and the goal; 1 when any request failed."""
    view, discovery = figures["patient-view"], figures["discovery"]
    print()
    print(f"{len(view.outcomes)} patient-view and {len(discovery.outcomes)} discovery requests, "
          f"{args.rate:g}/s each; latency from each request's due time (open loop) unless said")
    print(f"{'measure':44} {'patient-view':>13} {'discovery':>13}")
    for q in (50, 95, 99):
        label = f"latency p{q} (ms)"
        print(f"{label:44} {view.percentile_ms(q):13.2f} {discovery.percentile_ms(q):13.2f}")
    print(f"{'latency max (ms)':44} {view.percentile_ms(100):13.2f} {discovery.percentile_ms(100):13.2f}")
    for q in (50, 99):
        label = f"from actual send, p{q} (ms)"
        print(f"{label:44} {view.percentile_ms(q, 'from_send_s'):13.2f} "
              f"{discovery.percentile_ms(q, 'from_send_s'):13.2f}")
    label = "sent late by (client CPU, no free conn.), p99"
    print(f"{label:44} {view.percentile_ms(99, 'send_lag_s'):13.2f} {discovery.percentile_ms(99, 'send_lag_s'):13.2f}")
    achieved = {name: len(f.outcomes) / f.elapsed_s for name, f in figures.items()}
    print(f"{'achieved requests/s':44} {achieved['patient-view']:13.1f} {achieved['discovery']:13.1f}")
    cpu_ms = {name: f.server_cpu_s / len(f.outcomes) * 1000 for name, f in figures.items()}
    print(f"{'server CPU per request (ms, all threads)':44} {cpu_ms['patient-view']:13.2f} {cpu_ms['discovery']:13.2f}")
    client_ms = {name: f.client_cpu_s / len(f.outcomes) * 1000 for name, f in figures.items()}
    print(f"{'client CPU per request (ms, this process)':44} {client_ms['patient-view']:13.2f} "
          f"{client_ms['discovery']:13.2f}")
    busy = {name: f.server_cpu_s / f.elapsed_s * 100 for name, f in figures.items()}
    print(f"{'server CPU busy during the phases (% of 1)':44} {busy['patient-view']:13.0f} {busy['discovery']:13.0f}")
    one = {name: statistics.median(f.one_at_a_time_s) * 1000 for name, f in figures.items()}
    label = f"one at a time, p50 over HTTP ({ONE_AT_A_TIME_CALLS} calls, ms)"
    print(f"{label:44} {one['patient-view']:13.2f} {one['discovery']:13.2f}")
    errors = {name: sum(f.errors.values()) for name, f in figures.items()}
    print(f"{'errors (non-200, wrong body, timeout, conn.)':44} {errors['patient-view']:13d} {errors['discovery']:13d}")
    for name, f in figures.items():
        if f.errors:
            print(f"  {name} errors by kind: {dict(f.errors)}")
    if parts:
        print()
        print(f"Where a patient-view call's time goes in the server (ms, median of {BREAKDOWN_CALLS} calls of each "
              "part in this process, no load):")
        for label, seconds in parts.items():
            print(f"  {label:48} {seconds * 1000:8.3f}")
    ratio = view.percentile_ms(99) / discovery.percentile_ms(99)
    print(f"ratio patient-view p99 / discovery p99: {ratio:.2f}")
    met = view.percentile_ms(99) <= GOAL_P99_MS and errors["patient-view"] == 0 and args.rate >= GOAL_RATE
    print(f"goal: patient-view p99 <= {GOAL_P99_MS:g} ms and 0 errors at {GOAL_RATE:g} requests/s: "
          f"{'met' if met else 'NOT met'} (p99 {view.percentile_ms(99):.1f} ms, {errors['patient-view']} errors, "
          f"at {args.rate:g}/s)")
    return 1 if any(errors.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
