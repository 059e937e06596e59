"""The DICOM (DIMSE) door over a real Ingestion: real pynetdicom SCUs and dcmtk's storescu/echoscu on loopback."""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import (
    UID,
    CTImageStorage,
    DeflatedExplicitVRLittleEndian,
    DigitalXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    RLELossless,
    SecondaryCaptureImageStorage,
    generate_uid,
)
from pynetdicom import AE, _config
from pynetdicom.association import Association
from pynetdicom.dsutils import split_dataset
from pynetdicom.transport import ThreadedAssociationServer
from sqlalchemy.orm import Session, sessionmaker

from hilum.common.db.session import create_db_engine, session_factory
from hilum.common.dicom.storage_contexts import STORAGE_SOP_CLASSES, TRANSFER_SYNTAXES
from hilum.common.object_store import ObjectStore, dicom_key
from hilum.common.polling import wait_until
from hilum.common.settings import DicomSection, HilumSettings, settings_env
from hilum.ingestion import door_status
from hilum.ingestion.dimse_scp import (
    VERIFICATION,
    StoreScp,
    answers,
    client_tls_context,
    echo,
    server_tls_context,
    start_scp,
    stop_scp,
)
from hilum.ingestion.service import Ingestion
from hilum.runtime.ports import free_port, is_free
from hilum.samples.dicom_files import write_study
from hilum.samples.rejectable_inputs import write_rejectable_inputs
from hilum.samples.sample_studies import SAMPLE_STUDIES, SyntheticStudy
from hilum.v1 import ingestion_pb2
from tests.helpers import MRN_SYSTEM, require_tool

CALLING = "MODALITY1"
Scp = Callable[..., DicomSection]


@pytest.fixture
def start(ingestion: Ingestion) -> Iterator[Scp]:
    """Starts SCPs on free loopback ports (over the test's Ingestion unless given another); stops them after."""
    servers: list[ThreadedAssociationServer] = []

    def start_one(core: Ingestion | None = None, **fields: object) -> DicomSection:
        section = DicomSection(port=free_port(), **fields)
        servers.append(start_scp(section, core or ingestion))
        return section

    yield start_one
    for server in servers:
        stop_scp(server, grace_s=0)


@pytest.fixture
def scp(start: Scp) -> DicomSection:
    """One SCP with the default settings (any calling AE) on a free port."""
    return start()


@contextmanager
def associated(section: DicomSection, contexts: list[tuple[UID, list[UID]]] | None = None,
               calling: str = CALLING) -> Iterator[Association]:
    """An established association from a pynetdicom SCU; DX and SC in explicit VR LE unless contexts say."""
    ae = AE(ae_title=calling)
    for sop_class, syntaxes in contexts or [(DigitalXRayImageStorageForPresentation, [ExplicitVRLittleEndian]),
                                            (SecondaryCaptureImageStorage, [ExplicitVRLittleEndian])]:
        ae.add_requested_context(sop_class, syntaxes)
    association = ae.associate(section.host, section.port, ae_title=section.ae_title)
    assert association.is_established
    try:
        yield association
    finally:
        association.release()


def send(association: Association, dataset: Dataset | Path) -> Dataset:
    """One C-STORE; the response's status dataset (Status, and Error Comment on failure)."""
    response = association.send_c_store(dataset)
    assert "Status" in response, "no response: the association was aborted"
    return response


def small(index: int = 1, **changes: object) -> SyntheticStudy:
    """A bundled sample study at 256 x 200 pixels (large enough to be assessable)."""
    return dataclasses.replace(SAMPLE_STUDIES[index], rows=256, columns=200, **changes)


def stored_path(store: ObjectStore, dataset: Dataset) -> Path:
    return store.path(dicom_key(dataset.StudyInstanceUID, dataset.SeriesInstanceUID, dataset.SOPInstanceUID))


def test_c_echo_answers_success(scp: DicomSection) -> None:
    with associated(scp, [(VERIFICATION, [ImplicitVRLittleEndian])]) as association:
        assert association.send_c_echo().Status == door_status.SUCCESS
    assert echo(scp.host, scp.port, scp.ae_title)
    assert answers(scp)


def test_a_chest_dx_is_stored_before_it_is_acknowledged(scp: DicomSection, ingestion: Ingestion,
                                                        store: ObjectStore, tmp_path: Path) -> None:
    path = write_study(small(), tmp_path / "in")
    sent = pydicom.dcmread(path)
    with associated(scp) as association:
        response = send(association, sent)
        # Acknowledged only once stored: the instance is there the moment the response arrives.
        assert stored_path(store, sent).is_file()
    assert response.Status == door_status.SUCCESS and "ErrorComment" not in response
    status = ingestion.status(sent.StudyInstanceUID)
    assert status.instance_count == 1
    stored = pydicom.dcmread(stored_path(store, sent))
    assert stored.SOPInstanceUID == sent.SOPInstanceUID and stored.PixelData == sent.PixelData
    assert stored.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian


def test_the_same_instance_again_is_success(scp: DicomSection, ingestion: Ingestion, tmp_path: Path) -> None:
    sent = pydicom.dcmread(write_study(small(), tmp_path / "in"))
    with associated(scp) as association:
        assert [send(association, sent).Status for _ in range(2)] == [door_status.SUCCESS] * 2
    assert ingestion.status(sent.StudyInstanceUID).instance_count == 1


def test_an_instance_accepted_with_notes_is_success_and_its_notes_are_logged(
    scp: DicomSection, ingestion: Ingestion, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sent = pydicom.dcmread(write_study(small(), tmp_path / "in"))
    del sent.Modality
    with caplog.at_level(logging.INFO, logger="hilum"), associated(scp) as association:
        response = send(association, sent)
    assert response.Status == door_status.SUCCESS and "ErrorComment" not in response
    assert ingestion.status(sent.StudyInstanceUID).instance_count == 1
    assert any("Modality is missing" in r.getMessage() for r in caplog.records if r.name == "hilum.ingestion.dimse_scp")


def test_a_ct_cannot_be_negotiated(scp: DicomSection, tmp_path: Path) -> None:
    ct = pydicom.dcmread(write_rejectable_inputs(tmp_path / "bad")["ct_image"])
    contexts = [(CTImageStorage, [ExplicitVRLittleEndian]), (VERIFICATION, [ImplicitVRLittleEndian])]
    with associated(scp, contexts) as association:
        assert [c.abstract_syntax for c in association.accepted_contexts] == [VERIFICATION]
        with pytest.raises(ValueError, match="No presentation context"):
            association.send_c_store(ct)


def test_a_ct_sent_as_secondary_capture_is_refused_sop_class_not_supported(
    scp: DicomSection, tmp_path: Path
) -> None:
    ct = pydicom.dcmread(write_rejectable_inputs(tmp_path / "bad")["ct_image"])
    ct.SOPClassUID = ct.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    with associated(scp) as association:
        response = send(association, ct)
    assert response.Status == door_status.SOP_CLASS_NOT_SUPPORTED == 0x0122
    assert 0 < len(response.ErrorComment) <= 64


def test_a_dataset_that_is_not_the_announced_instance_is_refused(
    scp: DicomSection, ingestion: Ingestion, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_study(small(), tmp_path / "in")
    dataset = pydicom.dcmread(path)
    dataset.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    dataset.save_as(path)  # not enforce_file_format: it would set the file meta from the dataset again
    # Sent from the file, pynetdicom announces the file meta's instance, not the dataset's.
    monkeypatch.setattr(_config, "STORE_SEND_CHUNKED_DATASET", True)
    with associated(scp) as association:
        response = send(association, path)
    assert response.Status == door_status.failure_status(ingestion_pb2.REJECTION_CODE_SOP_MISMATCH) == 0xA902
    assert ingestion.status(dataset.StudyInstanceUID).instance_count == 0


@pytest.mark.parametrize("syntax", [RLELossless, DeflatedExplicitVRLittleEndian, ImplicitVRLittleEndian])
def test_an_instance_is_stored_as_sent_never_re_encoded(
    scp: DicomSection, store: ObjectStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, syntax: UID
) -> None:
    path = write_study(small(), tmp_path / "in")
    dataset = pydicom.dcmread(path)
    if syntax == RLELossless:
        dataset.compress(RLELossless)
    else:
        dataset.file_meta.TransferSyntaxUID = syntax
    dataset.save_as(path, enforce_file_format=True)
    monkeypatch.setattr(_config, "STORE_SEND_CHUNKED_DATASET", True)  # the file's dataset bytes go on the wire
    with associated(scp, [(DigitalXRayImageStorageForPresentation, [syntax])]) as association:
        assert send(association, path).Status == door_status.SUCCESS
    stored = stored_path(store, dataset)
    meta, offset = split_dataset(stored)
    _, sent_offset = split_dataset(path)
    assert meta.TransferSyntaxUID == syntax
    assert stored.read_bytes()[offset:] == path.read_bytes()[sent_offset:]
    assert pydicom.dcmread(stored)["PixelData"].value == pydicom.dcmread(path)["PixelData"].value


def test_every_transfer_syntax_is_negotiated(scp: DicomSection) -> None:
    contexts = [(sop_class, [syntax]) for sop_class in STORAGE_SOP_CLASSES[:1] for syntax in TRANSFER_SYNTAXES]
    with associated(scp, contexts) as association:
        accepted = {context.transfer_syntax[0] for context in association.accepted_contexts}
    assert accepted == set(TRANSFER_SYNTAXES)


def test_a_calling_ae_not_allowed_is_rejected(start: Scp) -> None:
    section = start(allowed_calling_aets=["PACS1", CALLING])
    ae = AE(ae_title="STRANGER")
    ae.add_requested_context(VERIFICATION)
    association = ae.associate(section.host, section.port, ae_title=section.ae_title)
    assert association.is_rejected
    rejection = association.acceptor.primitive
    assert rejection is not None
    # Rejected permanent, by the ACSE service user, calling AE title not recognised.
    assert (rejection.result, rejection.result_source, rejection.diagnostic) == (0x01, 0x01, 0x03)
    with associated(section, [(VERIFICATION, [ImplicitVRLittleEndian])], calling=CALLING) as allowed:
        assert allowed.send_c_echo().Status == door_status.SUCCESS
    assert answers(section)  # the probe calls as an allowed AE


def test_associations_beyond_the_limit_are_rejected(start: Scp) -> None:
    section = start(max_associations=1)
    with associated(section, [(VERIFICATION, [ImplicitVRLittleEndian])]):
        ae = AE(ae_title=CALLING)
        ae.add_requested_context(VERIFICATION)
        second = ae.associate(section.host, section.port, ae_title=section.ae_title)
        assert second.is_rejected
        rejection = second.acceptor.primitive
        assert rejection is not None
        # Rejected transient, by the presentation service provider, local limit exceeded.
        assert (rejection.result, rejection.result_source, rejection.diagnostic) == (0x02, 0x03, 0x02)


def test_a_bad_instance_does_not_affect_the_next_in_the_same_association(
    scp: DicomSection, ingestion: Ingestion, tmp_path: Path
) -> None:
    no_pixels = pydicom.dcmread(write_rejectable_inputs(tmp_path / "bad")["no_pixel_data"])
    good = pydicom.dcmread(write_study(small(), tmp_path / "in"))
    with associated(scp) as association:
        statuses = [send(association, dataset).Status for dataset in (no_pixels, good)]
    assert statuses == [door_status.DATASET_DOES_NOT_MATCH_SOP_CLASS, door_status.SUCCESS]
    assert ingestion.status(good.StudyInstanceUID).instance_count == 1


def _broken_store(tmp_path: Path, sessions: sessionmaker[Session]) -> Ingestion:
    """Ingestion whose object store root is a file: every write fails (even for root)."""
    (tmp_path / "not-a-folder").write_text("")
    return Ingestion(sessions, ObjectStore(tmp_path / "not-a-folder"), MRN_SYSTEM)


def _broken_database(tmp_path: Path, sessions: sessionmaker[Session]) -> Ingestion:
    """Ingestion on a SQLite file in a folder that does not exist: every connection fails."""
    engine = create_db_engine(f"sqlite:///{tmp_path / 'absent' / 'hilum.db'}")
    return Ingestion(session_factory(engine), ObjectStore(tmp_path / "objects"), MRN_SYSTEM)


@pytest.mark.parametrize("broken", [_broken_store, _broken_database], ids=["disk", "database"])
def test_storage_down_is_out_of_resources_and_leaves_no_phi_in_the_logs(
    start: Scp, sqlite_sessions: sessionmaker[Session], tmp_path: Path, caplog: pytest.LogCaptureFixture,
    broken: Callable[[Path, sessionmaker[Session]], Ingestion],
) -> None:
    section = start(broken(tmp_path, sqlite_sessions))
    sent = pydicom.dcmread(write_study(small(), tmp_path / "in"))
    with caplog.at_level(logging.INFO, logger="hilum"), associated(section) as association:
        statuses = [send(association, sent).Status for _ in range(2)]  # the association survives it
    assert statuses == [door_status.OUT_OF_RESOURCES] * 2
    records = [r for r in caplog.records if r.name.startswith("hilum")]
    assert any(getattr(r, "error_type", "") for r in records)
    text = " ".join(f"{r.getMessage()} {vars(r)}" for r in records)
    for phi in (sent.SOPInstanceUID, sent.StudyInstanceUID, sent.PatientID, str(sent.PatientName)):
        assert phi not in text
    assert answers(section)


def test_labels_carry_the_calling_ae_and_a_count_only(ingestion: Ingestion) -> None:
    scp = StoreScp(ingestion)
    assert [scp.label("MODALITY1 "), scp.label("CT/ROOM 2"), scp.label("")] == [
        "dimse-MODALITY1-1", "dimse-CT_ROOM_2-2", "dimse-unknown-3",
    ]


def test_half_configured_tls_is_refused(tmp_path: Path) -> None:
    assert server_tls_context(DicomSection()) is None and client_tls_context(DicomSection()) is None
    with pytest.raises(ValueError, match="missing: tls_key_file, tls_ca_file"):
        server_tls_context(DicomSection(tls_cert_file=tmp_path / "cert.pem"))


@pytest.fixture
def certificate(tmp_path: Path) -> Path:
    """A self-signed certificate (its own CA) for 127.0.0.1, with its key in key.pem beside it."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    cert = tmp_path / "cert.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=hilum-test",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(tmp_path / "key.pem"), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert


def test_tls_scp_answers_tls_peers_only(start: Scp, certificate: Path) -> None:
    key = certificate.parent / "key.pem"
    section = start(tls_cert_file=certificate, tls_key_file=key, tls_ca_file=certificate)
    assert echo(section.host, section.port, section.ae_title, ssl_context=client_tls_context(section))
    assert answers(section)
    assert not echo(section.host, section.port, section.ae_title)  # plain DICOM is not spoken there


def test_stopping_the_scp_frees_its_port(ingestion: Ingestion) -> None:
    section = DicomSection(port=free_port())
    server = start_scp(section, ingestion)
    assert answers(section)
    stop_scp(server, grace_s=0)
    assert not answers(section) and is_free(section.host, section.port)


def test_storescu_sends_a_file(scp: DicomSection, ingestion: Ingestion, tmp_path: Path) -> None:
    storescu = require_tool("storescu")
    path = write_study(small(), tmp_path / "in")
    done = subprocess.run([storescu, "-v", "-aet", CALLING, "-aec", scp.ae_title, scp.host, str(scp.port), str(path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Received Store Response (Success)" in done.stdout + done.stderr
    assert ingestion.status(pydicom.dcmread(path).StudyInstanceUID).instance_count == 1


def test_echoscu_gets_success(scp: DicomSection) -> None:
    echoscu = require_tool("echoscu")
    done = subprocess.run([echoscu, "-aet", CALLING, "-aec", scp.ae_title, scp.host, str(scp.port)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_hilum_serve_dicom_runs_until_sigterm(tmp_settings: HilumSettings, tmp_path: Path) -> None:
    settings = tmp_settings.model_copy(update={"dicom": DicomSection(port=free_port())})
    env = {**os.environ, **settings_env(settings)}
    with (tmp_path / "dicom.log").open("wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "hilum.cli", "serve", "dicom"], env=env,
                                   stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: answers(settings.dicom), 60, 0.2, "hilum serve dicom to answer C-ECHO",
                   on_poll=lambda: _still_running(process, tmp_path / "dicom.log"))
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert is_free(settings.dicom.host, settings.dicom.port)
    assert "Traceback" not in (tmp_path / "dicom.log").read_text()


def _still_running(process: subprocess.Popen[bytes], log: Path) -> None:
    if process.poll() is not None:
        raise AssertionError(f"hilum serve dicom exited with {process.returncode}:\n{log.read_text()}")
