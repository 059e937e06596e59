"""The models' inputs for one radiograph, made where the image is first decoded and kept beside it until inference.

The ingestion door decodes every image to check it (hilum.ingestion.rules_image); for an image that can be a
study's frontal view it also makes both models' inputs from that decode and stores them beside the image, so that
inference reads 1.2 MB instead of decoding the 10 MB image again. The file is a cache, never the record: inference
decodes the image itself when it is missing, unreadable or of another layout, and deletes it once the findings are
stored; the retention purge deletes it with the image.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from hilum.common.atomic_file import StagedFile
from hilum.common.dicom.pixels import Radiograph
from hilum.common.object_store import ObjectStore
from hilum.common.preprocessing import MODEL_INPUT_SIZE, WHOLE_IMAGE_INPUT_SIZE, to_model_input, whole_image_input

log = logging.getLogger(__name__)

# Named in the file: inputs made by another preprocessing (a later release) are not used, but made again. Change it
# with any change to preprocessing.py's transforms or sizes that changes the numbers more than float32 rounding.
LAYOUT = "hilum-model-inputs-1"
_IMAGE_SUFFIX = ".dcm"
_SUFFIX = ".inputs.npz"


@dataclass(frozen=True)
class ModelInputs:
    """One radiograph's model inputs: the findings model's (1, 224, 224), the devices model's (1, 512, 512) or None
    when no devices model runs, both float32 in [-1024, 1024], and the image's size (landmarks map back to it)."""

    findings: npt.NDArray[np.float32]
    devices: npt.NDArray[np.float32] | None
    rows: int
    columns: int


def make_model_inputs(image: Radiograph, devices: bool) -> ModelInputs:
    """Both models' inputs from one decoded image (the devices model's only when devices is true)."""
    rows, columns = image.pixels.shape
    whole = whole_image_input(image, WHOLE_IMAGE_INPUT_SIZE) if devices else None
    return ModelInputs(to_model_input(image), whole, rows, columns)


def model_inputs_key(image_key: str) -> str:
    """The object key of the inputs kept for the image stored under image_key: the same name, another suffix."""
    return image_key.removesuffix(_IMAGE_SUFFIX) + _SUFFIX


def stage_model_inputs(store: ObjectStore, image_key: str, inputs: ModelInputs) -> StagedFile:
    """Write inputs for the image without putting them in place (StagedFile.publish does, atomically: a reader sees
    the whole file or none), and not durably: no fsync delays the door's answer for a cache whose loss costs a
    decode, and whose damage load_model_inputs detects."""
    arrays: dict[str, npt.NDArray[np.generic]] = {
        "layout": np.array(LAYOUT), "size": np.array([inputs.rows, inputs.columns], dtype=np.int64),
        "findings": inputs.findings}
    if inputs.devices is not None:
        arrays["devices"] = inputs.devices
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=False, **arrays)
    return store.stage(model_inputs_key(image_key), buffer.getvalue(), durable=False)


def load_model_inputs(store: ObjectStore, image_key: str, devices: bool) -> ModelInputs | None:
    """The inputs kept for the image, or None when there are none that fit: missing, damaged (each array carries a
    CRC), of another layout, or without the devices model's input when devices is true. Never raises for the
    file's content: the caller then decodes the image."""
    try:
        content = store.get(model_inputs_key(image_key))
    except FileNotFoundError:
        return None
    except OSError as error:
        log.warning("kept model inputs unreadable; the image is decoded instead", extra={"error": type(error).__name__})
        return None
    try:
        with np.load(io.BytesIO(content), allow_pickle=False) as saved:
            if str(saved["layout"]) != LAYOUT:
                return None
            rows, columns = (int(side) for side in saved["size"])
            findings = saved["findings"]
            whole = saved["devices"] if devices and "devices" in saved.files else None
    except Exception as error:  # whatever the archive's bytes make numpy or zipfile raise is the file's fault
        log.warning("kept model inputs unreadable; the image is decoded instead", extra={"error": type(error).__name__})
        return None
    if rows < 1 or columns < 1 or not _fits(findings, MODEL_INPUT_SIZE):
        return None
    if devices and (whole is None or not _fits(whole, WHOLE_IMAGE_INPUT_SIZE)):
        return None
    return ModelInputs(findings, whole, rows, columns)


def drop_model_inputs(store: ObjectStore, image_key: str) -> None:
    """Delete the inputs kept for the image, if any."""
    store.delete(model_inputs_key(image_key))


def _fits(array: npt.NDArray[np.generic], size: int) -> bool:
    """True for a float32 (1, size, size) array of finite values, the shape and type the models take."""
    return array.dtype == np.float32 and array.shape == (1, size, size) and bool(np.isfinite(array).all())
