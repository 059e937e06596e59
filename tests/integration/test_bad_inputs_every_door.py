"""Every bad input through every door of one running stack, with valid studies in the same batches.

Each door refuses each bad input with its code in its own standard's terms (gRPC result, DIMSE status,
STOW-RS FailureReason), and the valid studies sent beside them are reported all the same.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path

import httpx
import pydicom
import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE

from hilum.common import study_state
from hilum.ingestion.client import IngestionClient
from hilum.ingestion.door_status import SUCCESS, failure_status
from hilum.runtime.stack import EmbeddedStack
from hilum.samples.bad_inputs import BadInput, acceptable_oddities, bad_inputs
from hilum.samples.dicom_files import write_study
from hilum.samples.sample_studies import SAMPLE_STUDIES

pytestmark = pytest.mark.integration

BOUNDARY = "hilum-bad-inputs"
FAILED_SOP_SEQUENCE, FAILURE_REASON, REFERENCED_SOP_SEQUENCE = "00081198", "00081197", "00081199"


@pytest.fixture(scope="module")
def bad() -> list[BadInput]:
    inputs = bad_inputs()
    assert len(inputs) >= 30
    return inputs


DOOR_SEEDS = {"grpc": 9100, "dimse": 9200, "stow": 9300}


def _good_studies(out: Path, door: str) -> list[Path]:
    """Two valid studies of patients of their own (one per door), so none waits for a prior."""
    return [
        write_study(dataclasses.replace(SAMPLE_STUDIES[index], rows=256, columns=200, seed=DOOR_SEEDS[door] + index,
                                        label=f"{door}-good-{index}", patient_id=f"SYN-DOOR-{door.upper()}-{index}"),
                    out / door / str(index))
        for index in (2, 3)
    ]


def _uids(paths: list[Path]) -> list[str]:
    return [str(pydicom.dcmread(path, stop_before_pixels=True).StudyInstanceUID) for path in paths]


def _all_reported(stack: EmbeddedStack, uids: list[str]) -> None:
    grpc = stack.settings.grpc
    with IngestionClient(grpc.address(grpc.ingestion_port)) as client:
        done = client.wait_for(uids, timeout_s=240, check=stack.check_alive)
    assert {uid: status.state for uid, status in done.items()} == dict.fromkeys(uids, study_state.REPORTED)


def test_grpc_door(stack: EmbeddedStack, bad: list[BadInput], tmp_path: Path) -> None:
    folder = tmp_path / "grpc"
    folder.mkdir()
    files = []
    for item in bad:
        path = folder / f"{item.name}.dcm"
        path.write_bytes(item.content)
        files.append(path)
    goods = _good_studies(tmp_path, "grpc")
    oddities = []
    for name, content in acceptable_oddities():
        oddities.append(folder / f"odd-{name}.dcm")
        oddities[-1].write_bytes(content)
    grpc = stack.settings.grpc
    with IngestionClient(grpc.address(grpc.ingestion_port)) as client:
        results = client.submit_files([goods[0], *files, *oddities, goods[1]])
    by_label = {result.label: result for result in results}
    wrong = {item.name: by_label[f"{item.name}.dcm"].rejection.code for item in bad
             if by_label[f"{item.name}.dcm"].accepted or by_label[f"{item.name}.dcm"].rejection.code != item.code}
    assert not wrong, wrong
    assert all(by_label[f"{item.name}.dcm"].rejection.reason for item in bad)
    refused_oddities = [path.name for path in oddities if not by_label[path.name].accepted]
    assert not refused_oddities
    assert by_label[goods[0].name].accepted and by_label[goods[1].name].accepted
    _all_reported(stack, _uids(goods))


def test_dimse_door(stack: EmbeddedStack, bad: list[BadInput], tmp_path: Path) -> None:
    sendable = [item for item in bad if item.dimse_sendable]
    assert len(sendable) >= 30
    folder = tmp_path / "dimse"
    folder.mkdir()
    paths = []
    for item in sendable:
        paths.append(folder / f"{item.name}.dcm")
        paths[-1].write_bytes(item.content)
    goods = _good_studies(tmp_path, "dimse")
    ae = AE(ae_title="BADSENDER")
    contexts = set()
    for path in [*paths, *goods]:
        meta = pydicom.dcmread(path, stop_before_pixels=True, force=True).file_meta
        contexts.add((str(meta.MediaStorageSOPClassUID), str(meta.TransferSyntaxUID)))
    for sop_class, syntax in sorted(contexts):
        ae.add_requested_context(sop_class, [syntax])
    dicom = stack.settings.dicom
    association = ae.associate(dicom.host, dicom.port, ae_title=dicom.ae_title)
    assert association.is_established
    try:
        statuses = {path.name: association.send_c_store(path) for path in [goods[0], *paths, goods[1]]}
    finally:
        association.release()
    status_of = {name: int(response.Status) if "Status" in response else None for name, response in statuses.items()}
    wrong = {item.name: status_of[f"{item.name}.dcm"] for item in sendable
             if status_of[f"{item.name}.dcm"] != failure_status(item.code)}
    assert not wrong, {name: hex(status) if status is not None else None for name, status in wrong.items()}
    assert status_of[goods[0].name] == SUCCESS and status_of[goods[1].name] == SUCCESS
    _all_reported(stack, _uids(goods))


def test_stow_door(stack: EmbeddedStack, bad: list[BadInput], tmp_path: Path) -> None:
    goods = _good_studies(tmp_path, "stow")
    parts = [goods[0].read_bytes(), *(item.content for item in bad), goods[1].read_bytes()]
    body = b"".join(
        f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode() + part + b"\r\n" for part in parts
    ) + f"--{BOUNDARY}--\r\n".encode()
    assert stack.endpoints is not None and stack.endpoints.stow
    response = httpx.post(stack.endpoints.stow, content=body, timeout=120, headers={
        "Content-Type": f'multipart/related; type="application/dicom"; boundary={BOUNDARY}',
        "Accept": "application/dicom+json"})
    assert response.status_code == 202, response.text[:500]
    dataset = Dataset.from_json(response.json())
    failed = Counter(int(item.FailureReason) for item in dataset.FailedSOPSequence)
    assert failed == Counter(failure_status(item.code) for item in bad)
    stored = {item.ReferencedSOPInstanceUID for item in dataset.ReferencedSOPSequence}
    assert stored == {pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID for path in goods}
    _all_reported(stack, _uids(goods))
