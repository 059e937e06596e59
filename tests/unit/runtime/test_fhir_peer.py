"""FhirPeer: a real Medplum FHIR server started on a free loopback port, stopped by pid, and a clear error when
Node.js or its packages are missing.
"""

from __future__ import annotations

import socket
import uuid
from pathlib import Path

import httpx
import pytest

from hilum.runtime.fhir_peer import FhirPeer, FhirPeerNotInstalled
from hilum.runtime.ports import is_free
from hilum.runtime.processes import ProcessFailed
from tests.helpers import require_peer


def _conditional_transaction(entries: int) -> dict[str, object]:
    """A transaction of `entries` conditional Patient creates, each with its own identifier."""
    values = [str(uuid.uuid4()) for _ in range(entries)]
    return {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": f"urn:uuid:{uuid.uuid4()}",
         "resource": {"resourceType": "Patient", "identifier": [{"system": "urn:test:peer", "value": value}]},
         "request": {"method": "POST", "url": "Patient", "ifNoneExist": f"identifier=urn:test:peer|{value}"}}
        for value in values
    ]}


def test_it_starts_answers_fhir_and_stops(tmp_path: Path) -> None:
    require_peer()
    with FhirPeer(tmp_path) as peer:
        assert peer.running and peer.base_url == f"http://127.0.0.1:{peer.port}/fhir/R4"
        created = httpx.post(f"{peer.base_url}/Patient", json={"resourceType": "Patient", "active": True},
                             headers={"Content-Type": "application/fhir+json"})
        assert created.status_code == 201 and created.headers["content-type"].startswith("application/fhir+json")
        patient_id = created.json()["id"]
        read = httpx.get(f"{peer.base_url}/Patient/{patient_id}")
        assert read.status_code == 200 and read.headers["etag"] == f'W/"{read.json()["meta"]["versionId"]}"'
        assert httpx.get(f"{peer.url}/elsewhere").status_code == 404
    assert not peer.running and is_free("127.0.0.1", peer.port)
    log = peer.log_path.read_text()
    assert "POST /fhir/R4/Patient 201" in log and "urn:" not in log  # method, path and status only


def test_atomic_transactions_hold_at_most_8_conditional_entries_unless_switched_off(tmp_path: Path) -> None:
    require_peer()
    with FhirPeer(tmp_path / "atomic") as atomic, FhirPeer(tmp_path / "loose", atomic_transactions=False) as loose:
        assert httpx.post(atomic.base_url, json=_conditional_transaction(8)).status_code == 200
        refused = httpx.post(atomic.base_url, json=_conditional_transaction(9))
        assert refused.status_code == 400 and "too many entries" in refused.text
        accepted = httpx.post(loose.base_url, json=_conditional_transaction(9))
        assert accepted.status_code == 200
        assert [entry["response"]["status"] for entry in accepted.json()["entry"]] == ["201"] * 9


def test_a_missing_install_says_to_run_setup(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    peer = FhirPeer(tmp_path, peer_dir=tmp_path / "empty")
    with pytest.raises(FhirPeerNotInstalled, match=r"not installed .*scripts/setup\.sh --dev"):
        peer.start()
    assert not peer.running


def test_a_missing_node_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(FhirPeerNotInstalled, match=r"Node\.js is not installed"):
        FhirPeer(tmp_path).start()


def test_a_taken_port_is_a_clear_failure(tmp_path: Path) -> None:
    require_peer()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(ProcessFailed, match=f"port {port} is already in use"):
            FhirPeer(tmp_path, port=port).start()
