"""The minimal JPEG encoders: frames pydicom's decoders read back to the very pixels encoded."""

from __future__ import annotations

import numpy as np
from pydicom.uid import JPEGBaseline8Bit, JPEGExtended12Bit, JPEGLosslessSV1

from hilum.common.dicom.pixels import decode_radiograph
from hilum.samples.jpeg_encoders import dc_only_jpeg, lossless_jpeg
from hilum.samples.variant_files import encapsulated, variant_dataset


def test_lossless_jpeg_decodes_to_the_image() -> None:
    ds = variant_dataset("jpeg-encoder-lossless")
    native = decode_radiograph(ds).pixels
    frame = lossless_jpeg(np.frombuffer(ds.PixelData, "<u2").reshape(ds.Rows, ds.Columns), 12)
    assert frame.startswith(b"\xff\xd8\xff\xc3") and frame.endswith(b"\xff\xd9")
    np.testing.assert_array_equal(decode_radiograph(encapsulated(ds, frame, JPEGLosslessSV1)).pixels, native)


def test_dc_only_jpeg_carries_flat_blocks_exactly() -> None:
    blocks = np.array([[0, 255, 128], [64, 3, 250]], np.uint16)
    image = np.kron(blocks, np.ones((8, 8), np.uint16))
    for precision, syntax, scale in ((8, JPEGBaseline8Bit, 1), (12, JPEGExtended12Bit, 16)):
        frame = dc_only_jpeg(image * scale, precision)
        assert frame[frame.index(b"\xff\xdb") :].startswith(b"\xff\xdb\x00\x43\x00" + b"\x01" * 64)
        ds = variant_dataset("jpeg-encoder-baseline", rows=16, columns=24)
        ds.BitsStored, ds.HighBit = (8, 7) if precision == 8 else (12, 11)
        if precision == 8:
            ds.BitsAllocated = 8
        del ds.WindowCenter, ds.WindowWidth
        stored = decode_radiograph(encapsulated(ds, frame, syntax))
        pixels = stored.pixels
        assert pixels.shape == (16, 24) and np.unique(pixels).size == blocks.size, precision
        np.testing.assert_array_equal(pixels[::8, ::8].repeat(8, 0).repeat(8, 1), pixels)
