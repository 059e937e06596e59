"""Sending the SR to a PACS, against real loopback peers: an HTTP server for STOW-RS, a pynetdicom SCP for C-STORE.

Each failure is classified as the delivery's retry policy needs it: transient (retry) or permanent (dead-letter).
"""

from __future__ import annotations

import dataclasses
import json
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BytesIO
from typing import Any

import pytest
from pydicom import Dataset, dcmread
from pydicom.uid import ComprehensiveSRStorage, DigitalXRayImageStorageForPresentation
from pynetdicom import AE, evt
from pynetdicom.events import Event
from pynetdicom.transport import ThreadedAssociationServer

from hilum.common.errors import PermanentError, TransientError
from hilum.common.multipart import content_type_parameter, media_type, parse_multipart
from hilum.common.reported_findings import ModelProvenance, ReportedFindings
from hilum.common.settings import PacsDestination
from hilum.publishing.pacs import NEGOTIATION_TRIES, send_structured_report, stow_endpoint
from hilum.publishing.structured_report import build_structured_report
from hilum.runtime.ports import free_port
from hilum.samples.dicom_files import dx_dataset
from hilum.samples.sample_studies import SAMPLE_STUDIES
from hilum.v1 import messages_pb2

PACS_AE = "TESTPACS"


@pytest.fixture(scope="module")
def sr() -> Dataset:
    """The SR of a study with no reportable finding (demo weights)."""
    source = dx_dataset(dataclasses.replace(SAMPLE_STUDIES[2], rows=64, columns=52))
    model = ModelProvenance(name="cxr_findings", version="demo-untrained", demo_weights=True)
    reported = ReportedFindings(study_instance_uid=str(source.StudyInstanceUID), model=model, prior=None,
                                compared=False, findings=(), assessed_codes=("effusion",))
    draft = messages_pb2.DraftReport(model=model.as_info())
    return build_structured_report([source], reported, draft, now=datetime(2025, 2, 18, 12, 0, tzinfo=UTC))


@dataclasses.dataclass
class Received:
    """What the STOW-RS server was sent."""

    path: str = ""
    content_type: str = ""
    accept: str = ""
    body: bytes = b""


class StowServer:
    """A loopback HTTP server that answers every POST with one configured status and DICOM JSON body."""

    def __init__(self) -> None:
        self.status = 200
        self.answer: Any = {}
        self.received = Received()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the http.server hook's name)
                length = int(self.headers.get("Content-Length", "0"))
                server.received = Received(self.path, self.headers.get("Content-Type", ""),
                                           self.headers.get("Accept", ""), self.rfile.read(length))
                payload = json.dumps(server.answer).encode()
                self.send_response(server.status)
                self.send_header("Content-Type", "application/dicom+json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
                return

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._http.server_address[1]}/dicom-web"
        self._thread = threading.Thread(target=self._http.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._http.shutdown()
        self._http.server_close()


@pytest.fixture
def stow_server() -> Iterator[StowServer]:
    server = StowServer()
    yield server
    server.close()


def _stow_to(server: StowServer) -> PacsDestination:
    return PacsDestination(stow_url=server.url, timeout_s=5)


def _sop_item(uid: str, reason: int | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {
        "00081150": {"vr": "UI", "Value": [ComprehensiveSRStorage]},
        "00081155": {"vr": "UI", "Value": [uid]},
    }
    if reason is not None:
        item["00081197"] = {"vr": "US", "Value": [reason]}
    return item


def test_stow_sends_one_part10_sr_as_multipart_related(sr: Dataset, stow_server: StowServer) -> None:
    stow_server.answer = {"00081199": {"vr": "SQ", "Value": [_sop_item(sr.SOPInstanceUID)]}}
    assert send_structured_report(sr, _stow_to(stow_server)) == sr.SOPInstanceUID
    received = stow_server.received
    assert received.path == "/dicom-web/studies"
    assert media_type(received.content_type) == "multipart/related"
    assert content_type_parameter(received.content_type, "type") == "application/dicom"
    assert received.accept == "application/dicom+json"
    (part,) = parse_multipart(received.body, received.content_type)
    assert part.content_type == "application/dicom"
    stored = dcmread(BytesIO(part.content))
    assert stored.SOPInstanceUID == sr.SOPInstanceUID
    assert stored.file_meta.MediaStorageSOPClassUID == ComprehensiveSRStorage


@pytest.mark.parametrize(("status", "failure", "error"), [
    (503, None, TransientError),
    (500, None, TransientError),
    (429, None, TransientError),
    (409, 0xC000, PermanentError),
    (409, 0xA700, TransientError),
    (400, None, PermanentError),
    (403, None, PermanentError),
    (202, 0x0122, PermanentError),
    (200, 0xA701, TransientError),
])
def test_stow_failures_are_classified(
    sr: Dataset, stow_server: StowServer, status: int, failure: int | None, error: type[Exception]
) -> None:
    stow_server.status = status
    if failure is not None:
        stow_server.answer = {"00081198": {"vr": "SQ", "Value": [_sop_item(sr.SOPInstanceUID, failure)]}}
    with pytest.raises(error, match=f"HTTP {status}|0x{failure or 0:04X}"):
        send_structured_report(sr, _stow_to(stow_server))


def test_stow_ignores_failures_of_other_instances(sr: Dataset, stow_server: StowServer) -> None:
    stow_server.status = 202
    stow_server.answer = {
        "00081198": {"vr": "SQ", "Value": [_sop_item("1.2.3.4", 0xC000)]},
        "00081199": {"vr": "SQ", "Value": [_sop_item(sr.SOPInstanceUID)]},
    }
    assert send_structured_report(sr, _stow_to(stow_server)) == sr.SOPInstanceUID


def test_refused_ports_are_transient(sr: Dataset) -> None:
    port = free_port()
    with pytest.raises(TransientError, match="connect"):
        send_structured_report(sr, PacsDestination(stow_url=f"http://127.0.0.1:{port}/dicom-web", timeout_s=2))
    with pytest.raises(TransientError, match="no association"):
        send_structured_report(sr, PacsDestination(ae_title=PACS_AE, host="127.0.0.1", port=port, timeout_s=2))


def test_a_negotiation_cut_short_is_asked_again_before_it_counts_as_a_failure(sr: Dataset) -> None:
    """A peer that closes every connection at once (as Orthanc may right after a rejection) is asked
    NEGOTIATION_TRIES times, then the failure is transient."""
    server = socket.create_server(("127.0.0.1", 0))
    connections: list[int] = []

    def close_each() -> None:
        while True:
            try:
                connection, _ = server.accept()
            except OSError:
                return
            connections.append(1)
            connection.close()

    threading.Thread(target=close_each, daemon=True).start()
    try:
        with pytest.raises(TransientError, match="no association"):
            send_structured_report(sr, PacsDestination(ae_title=PACS_AE, host="127.0.0.1",
                                                       port=server.getsockname()[1], timeout_s=5))
    finally:
        server.close()
    assert len(connections) == NEGOTIATION_TRIES


def test_a_destination_without_address_is_permanent(sr: Dataset) -> None:
    with pytest.raises(PermanentError, match="neither"):
        send_structured_report(sr, PacsDestination())


@pytest.mark.parametrize(("url", "endpoint"), [
    ("http://pacs/dicom-web", "http://pacs/dicom-web/studies"),
    ("http://pacs/dicom-web/", "http://pacs/dicom-web/studies"),
    ("http://pacs/dicom-web/studies", "http://pacs/dicom-web/studies"),
    ("http://pacs/dicom-web/studies/1.2.3", "http://pacs/dicom-web/studies/1.2.3"),
])
def test_stow_endpoint(url: str, endpoint: str) -> None:
    assert stow_endpoint(url) == endpoint


class StoreScp:
    """A pynetdicom C-STORE SCP on loopback answering every C-STORE with one configured status."""

    def __init__(self, sop_class: str = ComprehensiveSRStorage, *, max_associations: int = 10,
                 require_calling_aet: list[str] | None = None) -> None:
        self.status = 0x0000
        self.stored: list[str] = []
        ae = AE(ae_title=PACS_AE)
        ae.add_supported_context(sop_class)
        ae.maximum_associations = max_associations
        if require_calling_aet:
            ae.require_calling_aet = require_calling_aet
        self.port = free_port()
        server = ae.start_server(
            ("127.0.0.1", self.port), block=False, evt_handlers=[(evt.EVT_C_STORE, self._on_store)]
        )
        assert server is not None  # non-blocking: the server runs in its own thread
        self._server: ThreadedAssociationServer = server

    def _on_store(self, event: Event) -> int:
        if self.status == 0x0000:
            self.stored.append(str(event.dataset.SOPInstanceUID))
        return self.status

    def destination(self) -> PacsDestination:
        return PacsDestination(ae_title=PACS_AE, host="127.0.0.1", port=self.port, calling_ae_title="HILUM",
                               timeout_s=5)

    def close(self) -> None:
        self._server.shutdown()


@pytest.fixture
def scp() -> Iterator[StoreScp]:
    server = StoreScp()
    yield server
    server.close()


def test_c_store_stores_and_returns_the_uid(sr: Dataset, scp: StoreScp) -> None:
    assert send_structured_report(sr, scp.destination()) == sr.SOPInstanceUID
    assert scp.stored == [sr.SOPInstanceUID]


@pytest.mark.parametrize(("status", "error"), [
    (0xA700, TransientError),
    (0xA7FF, TransientError),
    (0xC000, PermanentError),
    (0xA900, PermanentError),
    (0x0122, PermanentError),
])
def test_c_store_failure_statuses_are_classified(
    sr: Dataset, scp: StoreScp, status: int, error: type[Exception]
) -> None:
    scp.status = status
    with pytest.raises(error, match=f"0x{status:04X}"):
        send_structured_report(sr, scp.destination())


def test_c_store_warning_status_counts_as_stored(sr: Dataset, scp: StoreScp) -> None:
    scp.status = 0xB000
    assert send_structured_report(sr, scp.destination()) == sr.SOPInstanceUID


def test_refused_sop_class_is_permanent(sr: Dataset) -> None:
    images_only = StoreScp(DigitalXRayImageStorageForPresentation)
    try:
        with pytest.raises(PermanentError, match="SOP class"):
            send_structured_report(sr, images_only.destination())
    finally:
        images_only.close()


def test_unknown_calling_ae_is_rejected_permanently(sr: Dataset) -> None:
    strict = StoreScp(require_calling_aet=["SOMEONE"])
    try:
        with pytest.raises(PermanentError, match="rejected the association"):
            send_structured_report(sr, strict.destination())
    finally:
        strict.close()


def test_busy_scp_rejects_transiently(sr: Dataset) -> None:
    busy = StoreScp(max_associations=1)
    holder = AE(ae_title="HOLDER")
    holder.add_requested_context(ComprehensiveSRStorage)
    held = holder.associate("127.0.0.1", busy.port, ae_title=PACS_AE)
    try:
        assert held.is_established
        with pytest.raises(TransientError, match="transiently"):
            send_structured_report(sr, busy.destination())
    finally:
        held.release()
        busy.close()
