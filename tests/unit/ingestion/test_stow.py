"""The STOW-RS door over a real Ingestion (SQLite, object store in a temp dir): HTTP statuses, the Store
Instances Response Module in DICOM JSON, and multipart bodies as real clients write them."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

import pydicom
import pytest
import redis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydicom.dataset import Dataset
from pydicom.uid import CTImageStorage, DigitalXRayImageStorageForPresentation, ExplicitVRLittleEndian
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from hilum.cds.app import create_app
from hilum.common.db.models import RejectionRow
from hilum.common.db.session import create_db_engine, session_factory
from hilum.common.object_store import ObjectStore
from hilum.ingestion import door_status
from hilum.ingestion.door_status import ACCEPTED_WITH_NOTES, STUDY_MISMATCH
from hilum.ingestion.service import Ingestion
from hilum.ingestion.stow import DICOM_JSON, DICOMWEB_PREFIX, StudyUidRedaction, stow_router
from hilum.samples.dicom_files import write_study
from hilum.samples.rejectable_inputs import write_rejectable_inputs
from hilum.samples.sample_studies import SAMPLE_STUDIES, SyntheticStudy
from tests.helpers import MRN_SYSTEM

STUDIES = f"{DICOMWEB_PREFIX}/studies"
BOUNDARY = "hilum-0f9e8d7c6b5a"
DICOM_MULTIPART = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'
CRLF = b"\r\n"

# (headers, content) of one body part; headers None: the part has no header lines at all.
PartSpec = tuple[dict[str, str] | None, bytes]


def _client(ingestion: Ingestion, max_request_bytes: int = 64 * 1024 * 1024) -> TestClient:
    app = FastAPI()
    app.include_router(stow_router(ingestion, max_request_bytes=max_request_bytes), prefix=DICOMWEB_PREFIX)
    return TestClient(app)


@pytest.fixture
def client(ingestion: Ingestion) -> Iterator[TestClient]:
    with _client(ingestion) as test_client:
        yield test_client


def _small(index: int) -> SyntheticStudy:
    """A bundled sample study at a small size that acceptance still assesses (at least 128 px a side)."""
    return dataclasses.replace(SAMPLE_STUDIES[index], rows=160, columns=128)


@pytest.fixture
def good(tmp_path: Path) -> bytes:
    return write_study(_small(1), tmp_path / "good").read_bytes()


@pytest.fixture
def rejectable(tmp_path: Path) -> dict[str, bytes]:
    return {name: path.read_bytes() for name, path in write_rejectable_inputs(tmp_path / "rejectable").items()}


def _header(content: bytes) -> Dataset:
    return pydicom.dcmread(BytesIO(content), stop_before_pixels=True)


def _body(parts: list[PartSpec], boundary: str = BOUNDARY, preamble: bytes = b"", epilogue: bytes = b"") -> bytes:
    """A multipart body as RFC 2046 writes it: preamble, one delimiter line per part, close delimiter, epilogue."""
    body = preamble + (CRLF if preamble else b"")
    for headers, content in parts:
        body += b"--" + boundary.encode() + CRLF
        if headers is not None:
            body += b"".join(f"{name}: {value}".encode() + CRLF for name, value in headers.items())
        body += CRLF + content + CRLF
    return body + b"--" + boundary.encode() + b"--" + (CRLF + epilogue if epilogue else b"")


def _dicom(content: bytes) -> PartSpec:
    return {"Content-Type": "application/dicom"}, content


def _post(client: TestClient, parts: list[PartSpec], path: str = STUDIES,
          content_type: str = DICOM_MULTIPART) -> tuple[int, Dataset]:
    """POST the parts; the status and the response parsed as DICOM JSON (checked to round-trip)."""
    response = client.post(path, content=_body(parts), headers={"Content-Type": content_type})
    assert response.headers["content-type"] == DICOM_JSON
    dataset = Dataset.from_json(response.text)
    assert dataset.to_json_dict() == response.json()
    return response.status_code, dataset


def _referenced(dataset: Dataset) -> list[tuple[str, str]]:
    return [(item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID)
            for item in dataset.get("ReferencedSOPSequence", [])]


def _failures(dataset: Dataset) -> list[tuple[str, str, int]]:
    """(SOP Class UID, SOP Instance UID, FailureReason) of each failure; "" for a UID not given."""
    return [(item.get("ReferencedSOPClassUID", ""), item.get("ReferencedSOPInstanceUID", ""), item.FailureReason)
            for item in dataset.get("FailedSOPSequence", [])]


def _instance_count(ingestion: Ingestion, content: bytes) -> int:
    return ingestion.status(_header(content).StudyInstanceUID).instance_count


def test_one_good_instance_is_stored_and_answered_200(client: TestClient, ingestion: Ingestion, store: ObjectStore,
                                                      good: bytes) -> None:
    status, dataset = _post(client, [_dicom(good)])

    header = _header(good)
    assert status == 200
    assert _referenced(dataset) == [(DigitalXRayImageStorageForPresentation, header.SOPInstanceUID)]
    assert "FailedSOPSequence" not in dataset
    assert "WarningReason" not in dataset.ReferencedSOPSequence[0]
    # Retrieve URL is Type 2: present, and empty because Hilum offers no Studies Retrieve Transaction.
    assert "RetrieveURL" in dataset and dataset.RetrieveURL in (None, "")
    assert "RetrieveURL" in dataset.ReferencedSOPSequence[0]
    assert _instance_count(ingestion, good) == 1
    stored = [path for path in (store.path("dicom")).rglob("*") if path.is_file()]
    assert [path.read_bytes() for path in stored] == [good]  # byte for byte: no delimiter CRLF kept


def test_good_ct_and_not_dicom_answer_202_with_each_failure_reason(
    client: TestClient, ingestion: Ingestion, sqlite_sessions: sessionmaker[Session], good: bytes,
    rejectable: dict[str, bytes],
) -> None:
    ct = rejectable["ct_image"]
    status, dataset = _post(client, [_dicom(ct), _dicom(good), _dicom(rejectable["not_dicom"])])

    assert status == 202
    assert _referenced(dataset) == [(DigitalXRayImageStorageForPresentation, _header(good).SOPInstanceUID)]
    assert _failures(dataset) == [
        (CTImageStorage, _header(ct).SOPInstanceUID, door_status.SOP_CLASS_NOT_SUPPORTED),
        ("", "", door_status.CANNOT_UNDERSTAND),  # not DICOM: no UIDs to name it by
    ]
    assert _instance_count(ingestion, good) == 1
    assert ingestion.status(_header(ct).StudyInstanceUID).instance_count == 0
    with sqlite_sessions() as session:
        rejections = session.scalars(select(RejectionRow).order_by(RejectionRow.id)).all()
        assert [(row.label, row.door) for row in rejections] == [("stow-1", "stow"), ("stow-3", "stow")]


def test_nothing_stored_answers_409(client: TestClient, rejectable: dict[str, bytes]) -> None:
    status, dataset = _post(client, [_dicom(rejectable["not_dicom"]), _dicom(rejectable["no_pixel_data"])])

    assert status == 409
    assert "ReferencedSOPSequence" not in dataset
    assert [reason for _, _, reason in _failures(dataset)] == [
        door_status.CANNOT_UNDERSTAND, door_status.DATASET_DOES_NOT_MATCH_SOP_CLASS,
    ]


def test_an_instance_stored_already_is_success_again(client: TestClient, ingestion: Ingestion, good: bytes) -> None:
    assert _post(client, [_dicom(good)])[0] == 200
    status, dataset = _post(client, [_dicom(good)])
    assert status == 200 and len(_referenced(dataset)) == 1
    assert _instance_count(ingestion, good) == 1


def test_an_instance_stored_with_notes_carries_a_warning_and_answers_202(client: TestClient, tmp_path: Path) -> None:
    # Neither Body Part Examined nor Anatomic Region: accepted (the study description names the chest), noted.
    path = write_study(_small(2), tmp_path / "no-body-part")
    dataset = pydicom.dcmread(path)
    del dataset.BodyPartExamined, dataset.AnatomicRegionSequence
    dataset.save_as(path)

    status, response = _post(client, [_dicom(path.read_bytes())])

    assert status == 202
    assert response.ReferencedSOPSequence[0].WarningReason == ACCEPTED_WITH_NOTES


def test_the_study_resource_stores_its_own_instances(client: TestClient, good: bytes) -> None:
    status, dataset = _post(client, [_dicom(good)], path=f"{STUDIES}/{_header(good).StudyInstanceUID}")
    assert status == 200 and len(_referenced(dataset)) == 1


def test_an_instance_of_another_study_fails_with_the_mismatch_reason_and_is_not_stored(
    client: TestClient, ingestion: Ingestion, good: bytes, tmp_path: Path
) -> None:
    other = write_study(_small(2), tmp_path / "other").read_bytes()
    target = _header(good).StudyInstanceUID

    status, dataset = _post(client, [_dicom(other), _dicom(good)], path=f"{STUDIES}/{target}")

    assert status == 202
    assert _referenced(dataset) == [(DigitalXRayImageStorageForPresentation, _header(good).SOPInstanceUID)]
    assert _failures(dataset) == [(DigitalXRayImageStorageForPresentation, _header(other).SOPInstanceUID,
                                   STUDY_MISMATCH)]
    assert _instance_count(ingestion, other) == 0

    status, dataset = _post(client, [_dicom(other)], path=f"{STUDIES}/1.2.3.4")
    assert status == 409 and [reason for _, _, reason in _failures(dataset)] == [STUDY_MISMATCH]


def test_a_study_resource_that_is_not_a_uid_is_a_bad_request(client: TestClient, good: bytes) -> None:
    response = client.post(f"{STUDIES}/not-a-uid", content=_body([_dicom(good)]),
                           headers={"Content-Type": DICOM_MULTIPART})
    assert response.status_code == 400


@pytest.mark.parametrize("content_type", [
    "application/json",
    "application/dicom",  # a single instance without multipart: not offered
    f'multipart/related; type="application/dicom+json"; boundary={BOUNDARY}',
    f"multipart/related; type=application/octet-stream; boundary={BOUNDARY}",
    f"multipart/form-data; boundary={BOUNDARY}",
    "",
])
def test_a_media_type_other_than_multipart_related_dicom_is_unsupported(client: TestClient, good: bytes,
                                                                         content_type: str) -> None:
    response = client.post(STUDIES, content=_body([_dicom(good)]), headers={"Content-Type": content_type})
    assert response.status_code == 415
    assert "ReferencedSOPSequence" not in response.text


@pytest.mark.parametrize("body, content_type", [
    (b"this is not a multipart body", DICOM_MULTIPART),  # no delimiter anywhere
    (_body([(None, b"x")]), 'multipart/related; type="application/dicom"'),  # no boundary named
    (_body([(None, b"x")])[:-4], DICOM_MULTIPART),  # no close delimiter
    (f"--{BOUNDARY}--\r\n".encode(), DICOM_MULTIPART),  # no parts
    (b"", DICOM_MULTIPART),
])
def test_a_body_that_is_not_multipart_or_has_no_parts_is_a_bad_request(client: TestClient, body: bytes,
                                                                      content_type: str) -> None:
    response = client.post(STUDIES, content=body, headers={"Content-Type": content_type})
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/plain")


@pytest.mark.parametrize("boundary, parameters", [
    ('a:b=c"d', r'boundary="a:b=c\"d"; type="application/dicom"'),  # quoted, with tspecials and a quote
    ("simple-boundary", 'type=application/dicom; boundary="simple-boundary"'),
    ("UnQuoted_123", "type=application/dicom;boundary=UnQuoted_123"),
    ("with space", 'type="application/dicom"; boundary="with space"; start="<part1>"'),
])
def test_boundaries_as_clients_write_them(client: TestClient, good: bytes, boundary: str, parameters: str) -> None:
    response = client.post(STUDIES, content=_body([_dicom(good)], boundary=boundary),
                           headers={"Content-Type": f"Multipart/Related; {parameters}"})
    assert response.status_code == 200, response.text


def test_preamble_epilogue_and_transport_padding_are_ignored(client: TestClient, store: ObjectStore,
                                                             good: bytes) -> None:
    body = _body([_dicom(good)], preamble=b"This is a preamble.\r\n--not-the-boundary",
                 epilogue=b"This is the epilogue.\r\n--" + BOUNDARY.encode() + b"\r\n")
    body = body.replace(f"--{BOUNDARY}\r\n".encode(), f"--{BOUNDARY} \t\r\n".encode(), 1)  # padding (RFC 2046)
    response = client.post(STUDIES, content=body, headers={"Content-Type": DICOM_MULTIPART})
    assert response.status_code == 200, response.text
    assert [p.read_bytes() for p in store.path("dicom").rglob("*.dcm")] == [good]


def test_content_keeps_its_own_line_breaks_and_dashes(client: TestClient, store: ObjectStore,
                                                      sqlite_sessions: sessionmaker[Session], good: bytes) -> None:
    # Not DICOM, so kept in quarantine: the bytes kept are exactly the part's content.
    content = b"\r\n--" + BOUNDARY.encode()[:-1] + b"\r\nline\r\n\r\n--\r\n"
    status, _ = _post(client, [(None, content), (None, good)])  # parts without any header line
    assert status == 202
    with sqlite_sessions() as session:
        row = session.scalars(select(RejectionRow)).one()
        assert store.get(row.object_key) == content


def test_each_part_may_name_its_own_content_type(client: TestClient, ingestion: Ingestion, good: bytes,
                                                 tmp_path: Path) -> None:
    other = write_study(_small(2), tmp_path / "other").read_bytes()
    parts: list[PartSpec] = [
        ({"Content-Type": f"application/dicom; transfer-syntax={ExplicitVRLittleEndian}",
          "Content-ID": "<part1@hilum>", "Content-Length": str(len(good))}, good),
        ({"content-type": "application/octet-stream"}, other),  # DICOM bytes, labelled as something else
    ]
    status, dataset = _post(client, parts)

    assert status == 202
    assert len(_referenced(dataset)) == 1
    assert _failures(dataset) == [(DigitalXRayImageStorageForPresentation, _header(other).SOPInstanceUID,
                                   door_status.CANNOT_UNDERSTAND)]
    assert _instance_count(ingestion, other) == 0


def test_a_request_over_the_limit_is_refused_before_anything_is_stored(ingestion: Ingestion, good: bytes) -> None:
    body = _body([_dicom(good)])
    with _client(ingestion, max_request_bytes=len(body) - 1) as small:
        declared = small.post(STUDIES, content=body, headers={"Content-Type": DICOM_MULTIPART})
        chunked = small.post(STUDIES, content=iter([body[:1000], body[1000:]]),
                             headers={"Content-Type": DICOM_MULTIPART})
    assert declared.status_code == chunked.status_code == 413
    assert "transfer-encoding" not in declared.request.headers
    assert chunked.request.headers["transfer-encoding"] == "chunked"
    assert _instance_count(ingestion, good) == 0
    with _client(ingestion, max_request_bytes=len(body)) as exact:
        assert exact.post(STUDIES, content=body, headers={"Content-Type": DICOM_MULTIPART}).status_code == 200


def test_a_store_that_cannot_be_written_fails_with_out_of_resources(tmp_path: Path, store: ObjectStore,
                                                                    good: bytes) -> None:
    unmigrated = session_factory(create_db_engine(f"sqlite:///{tmp_path / 'empty.db'}"))  # no tables
    with _client(Ingestion(unmigrated, store, MRN_SYSTEM)) as broken:
        status, dataset = _post(broken, [_dicom(good)])
    assert status == 409
    assert _failures(dataset) == [(DigitalXRayImageStorageForPresentation, _header(good).SOPInstanceUID,
                                   door_status.OUT_OF_RESOURCES)]


def test_responses_and_logs_carry_no_patient_data(client: TestClient, good: bytes, rejectable: dict[str, bytes],
                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    response = client.post(STUDIES, content=_body([_dicom(good), _dicom(rejectable["ct_image"])]),
                           headers={"Content-Type": DICOM_MULTIPART})
    refused = client.post(f"{STUDIES}/1.2.3", content=_body([_dicom(good)]), headers={"Content-Type": "text/plain"})
    patient = _header(good)
    for text in (response.text, refused.text, caplog.text, json.dumps([vars(r) for r in caplog.records], default=str)):
        for value in (str(patient.PatientName), patient.PatientID, "SYNTHETIC", patient.StudyInstanceUID):
            assert value not in text


def test_the_study_uid_of_a_request_url_is_kept_out_of_the_access_log(client: TestClient) -> None:
    # As uvicorn logs each request (client, method, path, HTTP version, status), on the logger the door filters.
    record = logging.getLogger("uvicorn.access").makeRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "POST", "/dicomweb/studies/2.25.1234?x=1", "1.1", 202), None,
    )
    assert logging.getLogger("uvicorn.access").filter(record)
    assert record.getMessage() == '127.0.0.1:5000 - "POST /dicomweb/studies/{study}?x=1 HTTP/1.1" 202'
    assert sum(isinstance(f, StudyUidRedaction) for f in logging.getLogger("uvicorn.access").filters) == 1


def test_only_post_is_offered(client: TestClient) -> None:
    assert client.get(STUDIES).status_code == 405
    assert client.get(f"{STUDIES}/1.2.3").status_code == 405


def test_the_cds_app_serves_stow_only_when_given_ingestion(redis_client: redis.Redis, ingestion: Ingestion,
                                                           good: bytes) -> None:
    with TestClient(create_app(redis_client)) as cds_only:
        assert cds_only.get(STUDIES).status_code == 404
        assert cds_only.get("/cds-services").status_code == 200
    with TestClient(create_app(redis_client, ingestion=ingestion)) as both:
        assert both.get("/cds-services").status_code == 200
        status, dataset = _post(both, [_dicom(good)])
        assert status == 200 and len(_referenced(dataset)) == 1
