"""The DICOM (DIMSE) door: a C-STORE and C-ECHO SCP that a PACS or modality sends chest radiographs to.

Each C-STORE goes through Ingestion exactly as the other doors' instances do: the Part 10 bytes are
rebuilt from the dataset as received (the file meta names the negotiated transfer syntax; pixel data is
never decoded or re-encoded), Ingestion stores them durably or quarantines them, and only then is the
instance acknowledged, with the C-STORE status door_status gives its outcome. `hilum serve dicom` runs it.
"""

from __future__ import annotations

import itertools
import logging
import re
import signal
import ssl
import threading
import time
from typing import cast

from pydicom.dataset import Dataset
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, evt
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.events import Event, EventHandlerType
from pynetdicom.transport import ThreadedAssociationServer

from hilum.common.dicom.storage_contexts import STORAGE_SOP_CLASSES, TRANSFER_SYNTAXES
from hilum.common.logs import configure_logging
from hilum.common.metrics import serve_metrics
from hilum.common.settings import DicomSection, HilumSettings
from hilum.common.tracing import configure_tracing
from hilum.ingestion import door_status
from hilum.ingestion.service import Door, IncomingInstance, Ingestion
from hilum.ingestion.wiring import build

log = logging.getLogger(__name__)

VERIFICATION = UID("1.2.840.10008.1.1")  # the Verification SOP Class (C-ECHO)

ACSE_TIMEOUT_S = 30.0  # association negotiation and release
DIMSE_TIMEOUT_S = 60.0  # waiting for the next DIMSE message of an open association
NETWORK_TIMEOUT_S = 60.0  # an association idle this long is aborted
MAX_PDU_BYTES = 262_144  # largest P-DATA PDU received; a peer splits larger datasets into several
STOP_GRACE_S = 10.0  # on SIGTERM: how long open associations may run on before they are aborted
_ERROR_COMMENT_LENGTH = 64  # Error Comment (0000,0902) is LO
_UNSAFE_LABEL_CHARACTERS = re.compile(r"[^A-Za-z0-9_-]")


class StoreScp:
    """The SCP's event handlers: C-ECHO answers Success; C-STORE hands each instance to Ingestion.

    One instance's failure never reaches another: every exception of a C-STORE is answered with a
    status, and the association goes on.
    """

    def __init__(self, ingestion: Ingestion) -> None:
        self._ingestion = ingestion
        self._counter = itertools.count(1)

    @property
    def handlers(self) -> list[EventHandlerType]:
        """The pynetdicom event handlers to start a server with."""
        return [(evt.EVT_C_ECHO, self.on_echo), (evt.EVT_C_STORE, self.on_store)]

    def on_echo(self, event: Event) -> int:
        """C-ECHO: Success."""
        return door_status.SUCCESS

    def on_store(self, event: Event) -> Dataset:
        """C-STORE: store (or quarantine) the instance, then answer its status (0x0000 once stored).

        A failure to store (database or disk down) answers Refused: Out of Resources (0xA700), so the
        sender keeps the instance and tries again.
        """
        request = cast(C_STORE, event.request)
        label = self.label(event.assoc.requestor.ae_title)
        try:
            incoming = IncomingInstance(
                label=label, content=event.encoded_dataset(), door=Door.DIMSE,
                affected_sop=(str(request.AffectedSOPClassUID or ""), str(request.AffectedSOPInstanceUID or "")),
                sender=str(event.assoc.requestor.ae_title).strip(), address=str(event.assoc.requestor.address),
            )
            result = self._ingestion.accept([incoming]).results[0]
        except Exception as exc:  # never the message: a database error quotes its parameters (UIDs)
            log.error("instance not stored; answered Out of Resources",
                      extra={"door": Door.DIMSE.value, "error_type": type(exc).__name__})
            return _status(door_status.OUT_OF_RESOURCES, "Hilum could not store the instance; send it again later")
        status = door_status.outcome_status(result)
        if result.notes:  # C-STORE has no warning for them (STOW-RS has): an administrator reads them here
            log.info("instance accepted with notes: %s", "; ".join(result.notes), extra={"door": Door.DIMSE.value})
        return _status(status, result.rejection.reason if status != door_status.SUCCESS else "")

    def label(self, calling_ae_title: str) -> str:
        """A PHI-free label for the next instance: "dimse-<calling AE>-<n>" (n counts this SCP's C-STOREs)."""
        caller = _UNSAFE_LABEL_CHARACTERS.sub("_", calling_ae_title.strip()) or "unknown"
        return f"dimse-{caller}-{next(self._counter)}"


def _status(code: int, comment: str) -> Dataset:
    """A C-STORE response status, with an Error Comment for a failure (ASCII, at most 64 characters)."""
    status = Dataset()
    status.Status = code
    if comment:
        ascii_comment = comment.encode("ascii", "replace").decode("ascii").replace("\\", "/")
        status.ErrorComment = ascii_comment[:_ERROR_COMMENT_LENGTH]
    return status


def server_tls_context(section: DicomSection) -> ssl.SSLContext | None:
    """DICOM TLS (PS3.15 B.9) for the SCP: TLS 1.2 or later, peers must present a certificate the CA signed.

    None when none of the three files is set; raises ValueError naming what is missing when only some are.
    """
    files = {"tls_cert_file": section.tls_cert_file, "tls_key_file": section.tls_key_file,
             "tls_ca_file": section.tls_ca_file}
    missing = [name for name, path in files.items() if path is None]
    if len(missing) == len(files):
        return None
    if missing:
        raise ValueError(f"DICOM TLS needs all of tls_cert_file, tls_key_file and tls_ca_file; "
                         f"missing: {', '.join(missing)}")
    assert section.tls_cert_file and section.tls_key_file and section.tls_ca_file
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(section.tls_ca_file))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_cert_chain(str(section.tls_cert_file), str(section.tls_key_file))
    return context


def client_tls_context(section: DicomSection) -> ssl.SSLContext | None:
    """The TLS a local probe uses to reach this SCP: the SCP's own certificate, the same CA; None without TLS."""
    if server_tls_context(section) is None:
        return None
    assert section.tls_cert_file and section.tls_key_file and section.tls_ca_file
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(section.tls_ca_file))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = False  # the probe calls by address; the CA still vouches for the peer
    context.load_cert_chain(str(section.tls_cert_file), str(section.tls_key_file))
    return context


def build_ae(section: DicomSection) -> AE:
    """The SCP's application entity: its title, contexts, calling-AE allow-list, limits and timeouts."""
    ae = AE(ae_title=section.ae_title)
    for sop_class in STORAGE_SOP_CLASSES:
        ae.add_supported_context(sop_class, list(TRANSFER_SYNTAXES))
    ae.add_supported_context(VERIFICATION, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
    # A non-empty list rejects other callers: A-ASSOCIATE-RJ, permanent, "calling AE title not recognised".
    ae.require_calling_aet = list(section.allowed_calling_aets)
    ae.maximum_associations = section.max_associations
    ae.acse_timeout = ACSE_TIMEOUT_S
    ae.dimse_timeout = DIMSE_TIMEOUT_S
    ae.network_timeout = NETWORK_TIMEOUT_S
    ae.maximum_pdu_size = MAX_PDU_BYTES
    return ae


def start_scp(section: DicomSection, ingestion: Ingestion) -> ThreadedAssociationServer:
    """The SCP listening on section.host:section.port, each association served on its own thread.

    Raises OSError when the port cannot be listened on, ValueError for half-configured TLS.
    """
    server = build_ae(section).start_server(
        (section.host, section.port), block=False, ssl_context=server_tls_context(section),
        evt_handlers=StoreScp(ingestion).handlers,
    )
    if server is None:  # only a blocking server returns nothing
        raise RuntimeError("pynetdicom started no server")
    return server


def stop_scp(server: ThreadedAssociationServer, grace_s: float = STOP_GRACE_S) -> None:
    """Stop listening, give open associations grace_s seconds to finish, then abort those still open.

    An instance being stored when its association is aborted is stored all the same; it is simply not
    acknowledged, so the sender sends it again (and gets Success for the duplicate).
    """
    associations = server.active_associations
    server.shutdown()
    deadline = time.monotonic() + grace_s
    for association in associations:
        association.join(max(0.0, deadline - time.monotonic()))
    for association in associations:
        if association.is_alive():
            association.abort()


def serve_until_signalled(server: ThreadedAssociationServer, grace_s: float = STOP_GRACE_S) -> None:
    """Block until SIGTERM or SIGINT, then stop the SCP (see stop_scp)."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    stop_scp(server, grace_s)


def serve(settings: HilumSettings) -> None:
    """`hilum serve dicom`: the SCP over the configured Ingestion until SIGTERM; metrics on settings.metrics."""
    configure_logging("dicom")
    configure_tracing("dicom", settings.telemetry)
    serve_metrics(settings.metrics)
    # pynetdicom's INFO and DEBUG lines quote request UIDs: keep them out of the logs.
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)
    serve_until_signalled(start_scp(settings.dicom, build(settings)))


def echo(host: str, port: int, called_ae_title: str, calling_ae_title: str = "HILUM-PROBE",
         ssl_context: ssl.SSLContext | None = None, timeout_s: float = 2.0) -> bool:
    """Whether the SCP at host:port answers a C-ECHO with Success (False when it cannot be reached,
    refuses the association or answers anything else).
    """
    ae = AE(ae_title=calling_ae_title)
    ae.add_requested_context(VERIFICATION)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = ae.connection_timeout = timeout_s
    tls_args = (ssl_context, host) if ssl_context is not None else None
    association = ae.associate(host, port, ae_title=called_ae_title, tls_args=tls_args)
    if not association.is_established:
        return False
    try:
        status = association.send_c_echo()
    finally:
        association.release()
    return "Status" in status and status.Status == door_status.SUCCESS


def answers(section: DicomSection) -> bool:
    """Whether the SCP configured by section answers a C-ECHO; calls as the first allowed AE, if any."""
    calling = section.allowed_calling_aets[0] if section.allowed_calling_aets else "HILUM-PROBE"
    return echo(section.host, section.port, section.ae_title, calling, client_tls_context(section))
