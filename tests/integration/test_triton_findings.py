"""The cxr_findings model on a real tritonserver, called through FindingsEngine; TritonServer errors."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pydicom
import pytest
from sqlalchemy.orm import Session, sessionmaker

from hilum.common.db import studies
from hilum.common.dicom.pixels import read_radiograph
from hilum.common.model_inputs import load_model_inputs, make_model_inputs, model_inputs_key, stage_model_inputs
from hilum.common.object_store import ObjectStore
from hilum.common.settings import TritonSection
from hilum.inference.device_placement import DEFAULT_MIN_CONFIDENCE
from hilum.inference.engine import FindingsEngine, ImageUnreadable, TritonUnavailable
from hilum.inference.labels import findings_label_set, load_label_map
from hilum.inference.landmarks import landmark_set, load_landmark_map
from hilum.inference.model_export import WeightsManifest
from hilum.inference.service import Inference
from hilum.ingestion.service import IncomingInstance, Ingestion
from hilum.runtime.triton import TritonNotInstalled, TritonServer, TritonStartError
from hilum.samples.dicom_files import write_study
from hilum.samples.sample_studies import SAMPLE_STUDIES
from hilum.v1 import messages_pb2
from tests.helpers import MRN_SYSTEM, write_dicom

pytestmark = pytest.mark.integration


def synthetic_chest(seed: int, rows: int = 320, cols: int = 256) -> npt.NDArray[np.uint16]:
    """A 12-bit chest-like image uint16 (rows, cols): bright mediastinum, two dark lung fields, mottle."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:rows, 0:cols] / np.array([rows, cols])[:, None, None]
    image = 2600.0 + 400.0 * y
    for centre_x in (0.3, 0.7):
        lung = ((x - centre_x) / 0.17) ** 2 + ((y - 0.5) / 0.32) ** 2 < 1.0
        image[lung] -= 1500.0 + 300.0 * rng.uniform()
    image += rng.normal(0.0, 40.0, image.shape)
    pixels: npt.NDArray[np.uint16] = np.clip(image, 0, 4095).astype(np.uint16)
    return pixels


@pytest.fixture(scope="module")
def engine(triton_server: TritonSection) -> Iterator[FindingsEngine]:
    """A FindingsEngine talking to the session's Triton server."""
    labels = load_label_map(triton_server.model_repository / triton_server.findings_model)
    findings_engine = FindingsEngine(
        triton_server.grpc_url, triton_server.findings_model, labels, triton_server.request_timeout_s
    )
    yield findings_engine
    findings_engine.close()


@pytest.fixture(scope="module")
def radiographs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Three different synthetic chest radiographs."""
    folder = tmp_path_factory.mktemp("radiographs")
    return [write_dicom(folder / f"chest{seed}.dcm", synthetic_chest(seed)) for seed in range(3)]


def test_analyse_returns_18_demo_findings(engine: FindingsEngine, radiographs: list[Path]) -> None:
    result = engine.analyse(radiographs[0])

    # Without a local model repository no weights.json is read: no SHA-256, but always the label set.
    assert result.model == messages_pb2.ModelInfo(
        name="cxr_findings", version="demo-untrained", demo_weights=True, label_set=findings_label_set(engine.labels)
    )
    assert len(result.findings) == 18
    assert [finding.code for finding in result.findings] == [label.code for label in engine.labels]
    for finding, label in zip(result.findings, engine.labels, strict=True):
        assert 0.0 <= finding.probability <= 1.0
        assert finding.display == label.display
        assert finding.threshold == pytest.approx(label.threshold)
        assert finding.snomed_code == (label.snomed or "")
        if finding.probability >= label.threshold:
            assert finding.state == messages_pb2.FINDING_STATE_PRESENT
        elif finding.probability >= label.uncertain_from:
            assert finding.state == messages_pb2.FINDING_STATE_UNCERTAIN
        else:
            assert finding.state == messages_pb2.FINDING_STATE_ABSENT


def test_batched_call_agrees_with_single_calls(engine: FindingsEngine, radiographs: list[Path]) -> None:
    batched = engine.analyse_batch(radiographs)
    singles = [engine.analyse(path) for path in radiographs]

    assert len(batched) == len(radiographs)
    for together, alone in zip(batched, singles, strict=True):
        assert together.model == alone.model
        np.testing.assert_allclose(
            [f.probability for f in together.findings], [f.probability for f in alone.findings], atol=1e-5
        )
    # Each image's own pixels reached the model: different images, different scores.
    assert [f.probability for f in batched[0].findings] != [f.probability for f in batched[1].findings]


def test_unreadable_image_is_reported_before_triton(engine: FindingsEngine, tmp_path: Path) -> None:
    broken = tmp_path / "broken.dcm"
    broken.write_bytes(b"\x00" * 64)
    with pytest.raises(ImageUnreadable):
        engine.analyse(broken)


def test_unreachable_triton_is_transient(
    engine: FindingsEngine,
    radiographs: list[Path],
    triton_section_for: Callable[[Path], TritonSection],
    tmp_path: Path,
) -> None:
    not_started = triton_section_for(tmp_path)
    nowhere = FindingsEngine(not_started.grpc_url, "cxr_findings", engine.labels, timeout_s=5.0)
    try:
        with pytest.raises(TritonUnavailable):
            nowhere.analyse(radiographs[0])
    finally:
        nowhere.close()


def test_missing_server_venv_says_run_the_setup_script(tmp_path: Path) -> None:
    section = TritonSection(server_venv=tmp_path / "absent", model_repository=tmp_path)
    server = TritonServer(section, work_dir=tmp_path / "work", log_file=tmp_path / "triton.log")
    with pytest.raises(TritonNotInstalled, match="run the setup script"):
        server.start()


def test_model_without_weights_fails_start_up_with_the_provisioning_hint(
    unprovisioned_model_repository: Path, triton_section_for: Callable[[Path], TritonSection], tmp_path: Path
) -> None:
    section = triton_section_for(unprovisioned_model_repository)
    server = TritonServer(section, work_dir=tmp_path / "work", log_file=tmp_path / "triton.log")
    with pytest.raises(TritonStartError) as failure:
        with server:
            pass
    assert "hilum models demo" in str(failure.value)
    assert not server.running


@pytest.fixture(scope="module")
def both(triton_server: TritonSection) -> Iterator[FindingsEngine]:
    """A FindingsEngine running the findings and the devices model, reading weights.json from the repository."""
    model_dir = triton_server.model_repository
    engine = FindingsEngine(
        triton_server.grpc_url, triton_server.findings_model, load_label_map(model_dir / triton_server.findings_model),
        triton_server.request_timeout_s, model_repository=model_dir, devices_model="cxr_devices",
        landmarks=load_landmark_map(model_dir / "cxr_devices"),
    )
    yield engine
    engine.close()


def test_with_the_devices_model_each_image_gets_its_landmarks_and_the_demo_finds_no_device(
    triton_server: TritonSection, both: FindingsEngine, radiographs: list[Path]
) -> None:
    """One decode feeds both models; the devices model's points come back in the image's pixels with its own
    provenance, and its demo weights locate nothing with the confidence a device needs."""
    model_dir = triton_server.model_repository
    results = both.analyse_batch(radiographs[:2])
    for result in results:
        assert result.devices_model == messages_pb2.ModelInfo(
            name="cxr_devices", version="demo-untrained", demo_weights=True, label_set=landmark_set(both.landmarks),
            weights_sha256=WeightsManifest.read(model_dir / "cxr_devices" / "1").sha256)
        assert result.model.weights_sha256 == WeightsManifest.read(model_dir / "cxr_findings" / "1").sha256
        assert len(result.landmarks) == len(both.landmarks) == 9
        assert all(0 <= point.row < 320 and 0 <= point.column < 256 for point in result.landmarks)
        assert max(point.confidence for point in result.landmarks) < DEFAULT_MIN_CONFIDENCE
    assert results[0].findings != results[1].findings  # each image its own findings, as without devices


def test_the_inputs_the_door_kept_score_as_the_image_they_were_made_from(
    both: FindingsEngine, radiographs: list[Path], tmp_path: Path
) -> None:
    """Inference given the inputs the ingestion door kept (read back from the store) answers as it does decoding the
    image itself: the same findings and the same landmarks, in the image's pixels."""
    store = ObjectStore(tmp_path / "store")
    kept = []
    for number, path in enumerate(radiographs[:2]):
        made = make_model_inputs(read_radiograph(path), devices=True)
        stage_model_inputs(store, f"dicom/{number}.dcm", made).publish()
        inputs = load_model_inputs(store, f"dicom/{number}.dcm", devices=True)
        assert inputs is not None
        kept.append(inputs)
    from_files = both.analyse_batch(radiographs[:2])
    from_inputs = both.analyse_batch(kept)
    with pytest.raises(ValueError, match="devices model"):
        both.analyse(replace(kept[0], devices=None))
    assert [r.findings for r in from_inputs] == [r.findings for r in from_files]
    assert [r.landmarks for r in from_inputs] == [r.landmarks for r in from_files]


def test_inference_takes_the_frontal_views_kept_inputs_and_then_drops_every_images(
    both: FindingsEngine, sqlite_sessions: sessionmaker[Session], store: ObjectStore, tmp_path: Path
) -> None:
    """A study of two possible frontal views (two PA images): the door keeps inputs for both, inference scores the one
    chosen from its kept inputs (the findings are those of its file), and once they are stored no inputs are left."""
    ingestion = Ingestion(sqlite_sessions, store, MRN_SYSTEM, make_inputs=partial(make_model_inputs, devices=True))
    first = write_study(dataclasses.replace(SAMPLE_STUDIES[0], rows=320, columns=256), tmp_path / "first")
    uid = pydicom.dcmread(first).StudyInstanceUID
    second = tmp_path / "second.dcm"
    dataset = pydicom.dcmread(write_study(dataclasses.replace(SAMPLE_STUDIES[0], rows=320, columns=256, seed=4242),
                                          tmp_path / "again"))
    dataset.StudyInstanceUID, dataset.InstanceNumber = uid, 2
    dataset.save_as(second)
    for path in (first, second):
        assert ingestion.accept([IncomingInstance(label=path.name, content=path.read_bytes())]).results[0].accepted
    with sqlite_sessions() as session:
        keys = [row.object_key for row in studies.instances_of(session, uid)]
    assert len(keys) == 2 and all(store.exists(model_inputs_key(key)) for key in keys)
    reference = messages_pb2.StudyReference(study_instance_uid=uid, frontal_object_key=keys[0])
    stored = Inference(sqlite_sessions, store, both).infer(reference)
    from_file = both.analyse(store.path(keys[0]))
    assert list(stored.findings) == list(from_file.findings)
    assert not any(store.exists(model_inputs_key(key)) for key in keys)
