"""Acceptance rule 8: an image of a plausible size, whose frame header agrees, that decodes to something."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import (
    JPEGLosslessSV1,
)

from hilum.ingestion.acceptance import AcceptanceRules, accept_instance
from hilum.ingestion.rejection import RejectedInstance
from hilum.ingestion.rules_image import MAX_IMAGE_PIXELS, check_codestream, check_geometry
from hilum.samples import bad_inputs as bad
from hilum.samples.jpeg_encoders import lossless_jpeg
from hilum.v1 import ingestion_pb2
from tests.unit.common.dicom.sample_bytes import COLUMNS, ROWS
from tests.unit.ingestion.acceptance_checks import RULES, Edit, rejection

Code = ingestion_pb2.RejectionCode
# pydicom warns about the values these tests make malformed on purpose.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def test_the_image_rules_check_size_and_frame_header_before_decoding() -> None:
    check_geometry(256, 200, 128, 3.0)
    with pytest.raises(RejectedInstance, match="too small to assess"):
        check_geometry(100, 200, 128, 3.0)
    frame = lossless_jpeg(np.zeros((16, 24), np.uint16), 12)
    check_codestream(frame, JPEGLosslessSV1, 16, 24)
    with pytest.raises(RejectedInstance) as raised:
        check_codestream(frame, JPEGLosslessSV1, 24, 16)
    assert raised.value.code == Code.REJECTION_CODE_PIXEL_DATA_UNDECODABLE


# Through accept_instance


# 8. Assessable images


def test_size_and_aspect_limits_come_from_the_rules(sample_files: list[Path]) -> None:
    content = sample_files[0].read_bytes()
    small = rejection(content, dataclasses.replace(RULES, min_image_side_px=COLUMNS + 1))
    assert small.code == Code.REJECTION_CODE_NOT_ASSESSABLE
    assert small.reason == f"The image is {ROWS} x {COLUMNS} pixels: too small to assess (at least 201 on each side)"
    narrow = rejection(content, dataclasses.replace(RULES, max_aspect_ratio=1.2))  # 256 / 200 = 1.28
    assert narrow.code == Code.REJECTION_CODE_NOT_ASSESSABLE
    assert "aspect ratio is beyond 1.2 to 1" in narrow.reason
    lenient = AcceptanceRules(min_image_side_px=1, max_aspect_ratio=50)
    assert accept_instance(dict(bad.acceptable_oddities())["eight-bit"], lenient).notes == ()
    strip = next(v for v in bad.bad_inputs() if v.name == "strip-4000x100")
    assert accept_instance(strip.content, lenient).header.instance.rows == 4000


@pytest.mark.parametrize(("varying", "accepted"), [(0, False), (0.004, False), (0.03, True)])
def test_a_blank_plate_is_not_assessable(edited: Edit, varying: float, accepted: bool) -> None:
    """Blank: fewer than 1% of the pixels differ from the most common value, after the VOI window."""

    def blank(ds: Dataset) -> None:
        image = np.full(ROWS * COLUMNS, 1000, dtype="<u2")
        image[: int(varying * image.size)] = np.arange(int(varying * image.size)) % 3000 + 1001
        ds.PixelData = np.random.default_rng(1).permutation(image).tobytes()

    content = edited(blank)
    if accepted:
        assert accept_instance(content, RULES).notes == ()
    else:
        assert rejection(content).reason.startswith("The image is blank")


def test_declared_sizes_beyond_any_detector_are_refused_before_decoding() -> None:
    variant = next(v for v in bad.bad_inputs() if v.name == "oversized-compressed")
    assert str(MAX_IMAGE_PIXELS) in rejection(variant.content).reason
