"""The models' inputs kept beside an image: made as inference makes them, read back whole, and never trusted when
they are missing, damaged, of another layout or without an input the engine needs."""

from __future__ import annotations

import dataclasses
import io
import zipfile
from pathlib import Path

import numpy as np
import pytest

from hilum.common.dicom.pixels import read_radiograph
from hilum.common.model_inputs import (
    ModelInputs,
    drop_model_inputs,
    load_model_inputs,
    make_model_inputs,
    model_inputs_key,
    stage_model_inputs,
)
from hilum.common.object_store import ObjectStore, dicom_key
from hilum.common.preprocessing import WHOLE_IMAGE_INPUT_SIZE, to_model_input, whole_image_input
from hilum.samples.dicom_files import write_study
from hilum.samples.sample_studies import SAMPLE_STUDIES

KEY = dicom_key("1.2.3", "1.2.3.1", "1.2.3.1.1")


@pytest.fixture(scope="module")
def image_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    spec = dataclasses.replace(SAMPLE_STUDIES[0], rows=300, columns=240)
    return write_study(spec, tmp_path_factory.mktemp("image"))


@pytest.fixture
def inputs(image_file: Path) -> ModelInputs:
    return make_model_inputs(read_radiograph(image_file), devices=True)


def test_inputs_are_those_the_preprocessing_makes_from_the_image(image_file: Path, inputs: ModelInputs) -> None:
    image = read_radiograph(image_file)
    np.testing.assert_array_equal(inputs.findings, to_model_input(image))
    assert inputs.devices is not None
    np.testing.assert_array_equal(inputs.devices, whole_image_input(image, WHOLE_IMAGE_INPUT_SIZE))
    assert (inputs.rows, inputs.columns) == (300, 240)
    assert make_model_inputs(image, devices=False).devices is None


def test_kept_inputs_sit_beside_the_image_and_read_back_the_same(store: ObjectStore, inputs: ModelInputs) -> None:
    stage_model_inputs(store, KEY, inputs).publish()

    assert model_inputs_key(KEY) == "dicom/1.2.3/1.2.3.1/1.2.3.1.1.inputs.npz"
    loaded = load_model_inputs(store, KEY, devices=True)
    assert loaded is not None and loaded.devices is not None and inputs.devices is not None
    np.testing.assert_array_equal(loaded.findings, inputs.findings)
    np.testing.assert_array_equal(loaded.devices, inputs.devices)
    assert (loaded.rows, loaded.columns) == (inputs.rows, inputs.columns)
    without_devices = load_model_inputs(store, KEY, devices=False)
    assert without_devices is not None and without_devices.devices is None

    drop_model_inputs(store, KEY)
    assert load_model_inputs(store, KEY, devices=True) is None
    drop_model_inputs(store, KEY)  # gone already: not an error


def test_inputs_made_without_the_devices_model_do_not_do_for_an_engine_that_runs_it(
    store: ObjectStore, inputs: ModelInputs
) -> None:
    stage_model_inputs(store, KEY, dataclasses.replace(inputs, devices=None)).publish()
    assert load_model_inputs(store, KEY, devices=True) is None
    assert load_model_inputs(store, KEY, devices=False) is not None


def _archive(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=False, **arrays)
    return buffer.getvalue()


def _good(inputs: ModelInputs) -> dict[str, np.ndarray]:
    assert inputs.devices is not None
    return {"layout": np.array("hilum-model-inputs-1"), "size": np.array([300, 240]), "findings": inputs.findings,
            "devices": inputs.devices}


@pytest.mark.parametrize("change", [
    pytest.param({"layout": np.array("hilum-model-inputs-0")}, id="another layout"),
    pytest.param({"size": np.array([0, 240])}, id="no size"),
    pytest.param({"size": np.array([300])}, id="half a size"),
    pytest.param({"findings": np.zeros((1, 112, 112), np.float32)}, id="findings input of another size"),
    pytest.param({"findings": np.zeros((1, 224, 224), np.float64)}, id="findings input of another type"),
    pytest.param({"findings": np.full((1, 224, 224), np.nan, np.float32)}, id="findings input not finite"),
    pytest.param({"devices": np.zeros((1, 224, 224), np.float32)}, id="devices input of another size"),
    pytest.param({"layout": np.array([1, 2], dtype=object)}, id="an object array, which needs pickle"),
])
def test_inputs_that_do_not_fit_are_not_used(store: ObjectStore, inputs: ModelInputs,
                                             change: dict[str, np.ndarray]) -> None:
    arrays = {**_good(inputs), **change}
    if arrays["layout"].dtype == object:
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)  # pickled: load must refuse it, never unpickle
        content = buffer.getvalue()
    else:
        content = _archive(**arrays)
    store.put(model_inputs_key(KEY), content)
    assert load_model_inputs(store, KEY, devices=True) is None


def test_a_damaged_or_truncated_file_is_not_used(store: ObjectStore, inputs: ModelInputs) -> None:
    content = _archive(**_good(inputs))
    assert zipfile.is_zipfile(io.BytesIO(content))
    flipped = bytearray(content)
    flipped[len(content) // 2] ^= 0xFF  # inside the findings array: its CRC no longer holds
    for damaged in (bytes(flipped), content[: len(content) // 2], b"", b"not an archive"):
        store.put(model_inputs_key(KEY), damaged)
        assert load_model_inputs(store, KEY, devices=True) is None
