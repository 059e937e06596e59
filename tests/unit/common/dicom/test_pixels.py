"""The one decode path: transfer syntaxes, signed pixels, modality and VOI LUTs, MONOCHROME1, frames, errors."""

from __future__ import annotations

from collections.abc import Callable
from io import BytesIO
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.pixels.utils import pixel_array
from pydicom.sequence import Sequence
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    DigitalXRayImageStorageForPresentation,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLosslessSV1,
    RLELossless,
    generate_uid,
)

from hilum.common.dicom.pixels import ImageUnreadable, Radiograph, decode_radiograph, display_values, read_radiograph
from tests.unit.common.dicom.jpeg_writer import baseline_jpeg, lossless_jpeg

FULL_12_BIT = 4095
PATIENT_NAME = "SECRET^PATIENT"  # must never reach an error message


def ramp(rows: int = 32, cols: int = 40, top: int = FULL_12_BIT) -> npt.NDArray[np.uint16]:
    """A left-to-right ramp from 0 to top, uint16 (rows, cols)."""
    return np.tile(np.linspace(0, top, cols).round().astype(np.uint16), (rows, 1))


def dataset(pixels: npt.NDArray[np.generic], bits_stored: int = 12, photometric: str = "MONOCHROME2") -> Dataset:
    """An uncompressed DX dataset (explicit VR little endian) holding pixels, (rows, cols) or (frames, ...)."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = DigitalXRayImageStorageForPresentation
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientName = PATIENT_NAME
    ds.Modality = "DX"
    ds.set_pixel_data(pixels, photometric_interpretation=photometric, bits_stored=bits_stored)
    return ds


def encapsulated(ds: Dataset, frame: bytes, syntax: UID) -> Dataset:
    """ds with its pixels replaced by one compressed frame in the given transfer syntax."""
    ds.file_meta.TransferSyntaxUID = syntax
    ds.PixelData = encapsulate([frame])
    ds["PixelData"].VR = "OB"
    return ds


@pytest.fixture
def decoded(tmp_path: Path) -> Callable[[Dataset], Radiograph]:
    """Writes a dataset as a Part 10 file in tmp_path and decodes it from there."""

    def decode(ds: Dataset) -> Radiograph:
        path = tmp_path / f"{generate_uid()}.dcm"
        ds.save_as(path, enforce_file_format=True)
        return read_radiograph(path)

    return decode


Decoded = Callable[[Dataset], Radiograph]


def unreadable(source: Path | bytes | Dataset) -> ImageUnreadable:
    """The ImageUnreadable that decoding source raises; its message names no patient data."""
    with pytest.raises(ImageUnreadable) as raised:
        decode_radiograph(source) if isinstance(source, Dataset) else read_radiograph(source)
    assert "SECRET" not in str(raised.value)
    return raised.value


# Stored values and transfer syntaxes


def test_uncompressed_monochrome2_keeps_its_values(decoded: Decoded) -> None:
    stored = ramp()
    image = decoded(dataset(stored))
    assert image.pixels.dtype == np.float32 and image.pixels.shape == (32, 40)
    np.testing.assert_array_equal(image.pixels, stored)
    assert (image.value_range, image.bits_stored) == ((0.0, FULL_12_BIT), 12)


def test_path_bytes_and_dataset_decode_alike(tmp_path: Path) -> None:
    ds = dataset(ramp())
    path = tmp_path / "ramp.dcm"
    ds.save_as(path, enforce_file_format=True)
    images = [read_radiograph(path), read_radiograph(path.read_bytes()), decode_radiograph(ds)]
    for image in images[1:]:
        np.testing.assert_array_equal(image.pixels, images[0].pixels)
        assert image.value_range == images[0].value_range


def test_bits_above_bits_stored_are_ignored(decoded: Decoded) -> None:
    ds = dataset(np.array([[1, FULL_12_BIT]], np.uint16))
    ds.PixelData = np.array([[0xF001, 0x1FFF]], np.uint16).tobytes()  # overlay bits set above bit 11
    np.testing.assert_array_equal(decoded(ds).pixels, [[1, FULL_12_BIT]])


def test_rle_lossless(decoded: Decoded) -> None:
    ds = dataset(ramp())
    ds.compress(RLELossless)
    assert ds.file_meta.TransferSyntaxUID == RLELossless
    np.testing.assert_array_equal(decoded(ds).pixels, ramp())


def test_jpeg_2000_lossless(decoded: Decoded) -> None:
    stored = (np.arange(32 * 48).reshape(32, 48) * 7 % 4096).astype(np.uint16)
    ds = dataset(stored)
    ds.compress(JPEG2000Lossless)
    np.testing.assert_array_equal(decoded(ds).pixels, stored)


def test_jpeg_lossless_first_order_prediction(decoded: Decoded) -> None:
    stored = np.random.default_rng(7).integers(0, FULL_12_BIT + 1, (24, 40)).astype(np.uint16)
    ds = encapsulated(dataset(stored), lossless_jpeg(stored, 12), JPEGLosslessSV1)
    image = decoded(ds)
    np.testing.assert_array_equal(image.pixels, stored)
    assert image.value_range == (0.0, FULL_12_BIT)


def test_jpeg_baseline(decoded: Decoded) -> None:
    blocks = np.array([[0, 255, 128, 17, 200], [64, 3, 250, 99, 128], [1, 2, 254, 100, 30]], np.uint8)
    stored = np.kron(blocks, np.ones((8, 8), np.uint8))
    ds = encapsulated(dataset(stored, bits_stored=8), baseline_jpeg(stored), JPEGBaseline8Bit)
    image = decoded(ds)
    np.testing.assert_array_equal(image.pixels, stored)
    assert (image.value_range, image.bits_stored) == ((0.0, 255.0), 8)


def test_bare_dataset_without_file_meta_is_decoded() -> None:
    ds = dataset(ramp())
    out = BytesIO()
    pydicom.dcmwrite(out, Dataset(ds), implicit_vr=True, little_endian=True)
    content = out.getvalue()
    assert content[128:132] != b"DICM"
    np.testing.assert_array_equal(read_radiograph(content).pixels, ramp())
    bare = pydicom.dcmread(BytesIO(content), force=True)
    decode_radiograph(bare)
    assert "TransferSyntaxUID" not in bare.file_meta  # the caller's dataset is left as it was


@pytest.mark.parametrize("compress", [False, True])
def test_multi_frame_takes_the_first_frame(decoded: Decoded, compress: bool) -> None:
    frames = np.stack([ramp(), np.full((32, 40), 9, np.uint16), np.full((32, 40), 5, np.uint16)])
    ds = dataset(frames)
    assert ds.NumberOfFrames == 3
    if compress:
        ds.compress(RLELossless)
    np.testing.assert_array_equal(decoded(ds).pixels, ramp())


# Signed pixels and the modality LUT


def test_signed_pixels_keep_their_sign(decoded: Decoded) -> None:
    stored = np.array([[-2048, -5, 0, 2047]], np.int16)
    ds = dataset(stored)
    assert ds.PixelRepresentation == 1
    image = decoded(ds)
    np.testing.assert_array_equal(image.pixels, stored)
    assert image.value_range == (-2048.0, 2047.0)


def test_signed_pixels_compressed(decoded: Decoded) -> None:
    stored = np.tile(np.array([-2048, -5, 0, 2047], np.int16), (8, 4))
    ds = dataset(stored)
    ds.compress(RLELossless)
    np.testing.assert_array_equal(decoded(ds).pixels, stored)


@pytest.mark.parametrize(
    ("slope", "intercept", "expected_range"),
    [
        (2.0, -100.0, (-100.0, 2.0 * FULL_12_BIT - 100.0)),
        (-1.0, 0.0, (-FULL_12_BIT, 0.0)),  # a negative slope: the range is sorted
        (0.0, 10.0, (10.0, FULL_12_BIT + 10.0)),  # a zero slope is an encoding fault, read as 1
    ],
)
def test_rescale_slope_and_intercept(
    decoded: Decoded, slope: float, intercept: float, expected_range: tuple[float, float]
) -> None:
    ds = dataset(ramp())
    ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    image = decoded(ds)
    np.testing.assert_allclose(image.pixels, (slope or 1.0) * ramp().astype(np.float64) + intercept)
    assert image.value_range == expected_range


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_an_absurd_rescale_overflows_to_infinity_quietly(decoded: Decoded) -> None:
    ds = dataset(ramp())
    ds.RescaleSlope = "1e300"
    pixels = decoded(ds).pixels
    assert np.isinf(pixels[:, 1:]).all()  # callers (acceptance) test for it


def test_signed_pixels_with_rescale(decoded: Decoded) -> None:
    ds = dataset(np.array([[-2048, 0, 2047]], np.int16))
    ds.RescaleSlope, ds.RescaleIntercept = 1.0, -1024.0
    image = decoded(ds)
    np.testing.assert_array_equal(image.pixels, [[-3072, -1024, 1023]])
    assert image.value_range == (-3072.0, 1023.0)


def lut_item(first_mapped: int, entries: list[int], bits: int, as_bytes: bool = False) -> Dataset:
    """A Modality or VOI LUT Sequence item; LUT Data as US values, or as OW bytes."""
    item = Dataset()
    item.LUTDescriptor = [len(entries), first_mapped, bits]
    if as_bytes:
        item.LUTData = np.asarray(entries, "<u2").tobytes()
        item["LUTData"].VR = "OW"
    else:
        item.LUTData = entries
        item["LUTData"].VR = "US"
    item["LUTDescriptor"].VR = "US"
    return item


@pytest.mark.parametrize("as_bytes", [False, True])
def test_modality_lut_sequence(decoded: Decoded, as_bytes: bool) -> None:
    ds = dataset(np.array([[0, 9, 10, 11, 12, 13, 4000]], np.uint16))
    ds.ModalityLUTSequence = Sequence([lut_item(10, [100, 200, 300, 400], 10, as_bytes)])
    image = decoded(ds)
    # Below the first mapped value: the first entry; beyond the last: the last entry.
    np.testing.assert_array_equal(image.pixels, [[100, 100, 100, 200, 300, 400, 400]])
    assert image.value_range == (0.0, 1023.0)


def test_modality_lut_takes_precedence_over_rescale(decoded: Decoded) -> None:
    ds = dataset(np.array([[0, 1]], np.uint16))
    ds.ModalityLUTSequence = Sequence([lut_item(0, [7, 8], 8)])
    ds.RescaleSlope, ds.RescaleIntercept = 2.0, 5.0
    image = decoded(ds)
    np.testing.assert_array_equal(image.pixels, [[7, 8]])
    assert image.value_range == (0.0, 255.0)


def test_modality_lut_first_mapped_is_signed_for_signed_pixels(decoded: Decoded) -> None:
    ds = dataset(np.array([[-2, -1, 0]], np.int16))
    ds.ModalityLUTSequence = Sequence([lut_item(65534, [10, 20, 30], 8)])  # 65534 as US is -2 as SS
    np.testing.assert_array_equal(decoded(ds).pixels, [[10, 20, 30]])


def test_malformed_modality_lut_is_unreadable() -> None:
    ds = dataset(ramp())
    ds.ModalityLUTSequence = Sequence([lut_item(0, [1, 2], 8)])
    ds.ModalityLUTSequence[0].LUTDescriptor = [4, 0, 8]  # four entries promised, two given
    assert "Modality LUT" in str(unreadable(ds))


# The VOI LUT


def windowed(centre: float, width: float, function: str = "") -> Dataset:
    """A dataset of stored values 0..20 (12 bits) with a window."""
    ds = dataset(np.arange(21, dtype=np.uint16).reshape(1, 21))
    ds.WindowCenter, ds.WindowWidth = centre, width
    if function:
        ds.VOILUTFunction = function
    return ds


def test_linear_window_maps_onto_the_modality_range(decoded: Decoded) -> None:
    image = decoded(windowed(10.5, 10))
    # PS3.3 C.11.2.1.2.1: x <= c - 0.5 - (w-1)/2 is darkest, x > c - 0.5 + (w-1)/2 brightest.
    expected = np.clip((np.arange(21) - 10.0) / 9.0 + 0.5, 0.0, 1.0) * FULL_12_BIT
    np.testing.assert_allclose(image.pixels[0], expected, rtol=1e-6)
    assert image.pixels[0, 5] == 0.0 and image.pixels[0, 15] == FULL_12_BIT
    assert image.value_range == (0.0, FULL_12_BIT)


def test_linear_window_of_width_one_is_a_threshold(decoded: Decoded) -> None:
    image = decoded(windowed(10, 1))
    np.testing.assert_array_equal(image.pixels[0], np.where(np.arange(21) > 9.5, FULL_12_BIT, 0))


def test_linear_exact_window(decoded: Decoded) -> None:
    image = decoded(windowed(10, 8, "LINEAR_EXACT"))
    expected = np.clip((np.arange(21) - 10.0) / 8.0 + 0.5, 0.0, 1.0) * FULL_12_BIT
    np.testing.assert_allclose(image.pixels[0], expected, rtol=1e-6)


def test_sigmoid_window(decoded: Decoded) -> None:
    image = decoded(windowed(10, 4, "SIGMOID"))
    expected = FULL_12_BIT / (1.0 + np.exp(-4.0 * (np.arange(21) - 10.0) / 4.0))
    np.testing.assert_allclose(image.pixels[0], expected, rtol=1e-5)
    assert image.pixels[0, 10] == pytest.approx(FULL_12_BIT / 2)


def test_window_applies_after_rescale_and_keeps_its_range(decoded: Decoded) -> None:
    ds = windowed(0.5, 10)
    ds.RescaleSlope, ds.RescaleIntercept = 1.0, -10.0  # stored 0..20 become -10..10
    image = decoded(ds)
    assert image.value_range == (-10.0, FULL_12_BIT - 10.0)
    assert image.pixels[0, 5] == -10.0 and image.pixels[0, 15] == FULL_12_BIT - 10.0


def test_first_of_several_windows_is_used(decoded: Decoded) -> None:
    ds = windowed(10.5, 10)
    ds.WindowCenter, ds.WindowWidth = [10.5, 1000], [10, 3000]
    np.testing.assert_array_equal(decoded(ds).pixels, decoded(windowed(10.5, 10)).pixels)


@pytest.mark.parametrize(("width", "function"), [(0.5, "LINEAR"), (0, "LINEAR_EXACT"), (10, "CUBIC")])
def test_invalid_window_is_passed_over(decoded: Decoded, width: float, function: str) -> None:
    np.testing.assert_array_equal(decoded(windowed(10, width, function)).pixels[0], np.arange(21))


@pytest.mark.parametrize("as_bytes", [False, True])
def test_voi_lut_sequence_is_preferred_to_the_window(decoded: Decoded, as_bytes: bool) -> None:
    ds = windowed(10.5, 10)
    ds.VOILUTSequence = Sequence([lut_item(2, [0, 1000, 60000], 16, as_bytes), lut_item(0, [5, 5, 5], 16, as_bytes)])
    image = decoded(ds)
    assert image.value_range == (0.0, 65535.0)  # the LUT's output range, from its descriptor
    np.testing.assert_array_equal(image.pixels[0, :6], [0, 0, 0, 1000, 60000, 60000])


def test_malformed_voi_lut_falls_back_to_the_window(decoded: Decoded) -> None:
    ds = windowed(10.5, 10)
    ds.VOILUTSequence = Sequence([lut_item(0, [1, 2], 16)])
    ds.VOILUTSequence[0].LUTDescriptor = [4, 0, 16]
    np.testing.assert_array_equal(decoded(ds).pixels, decoded(windowed(10.5, 10)).pixels)


# MONOCHROME1


def test_monochrome1_is_inverted_within_the_range(decoded: Decoded) -> None:
    plain = decoded(dataset(ramp()))
    inverted = decoded(dataset(ramp(), photometric="MONOCHROME1"))
    assert inverted.value_range == plain.value_range == (0.0, FULL_12_BIT)
    np.testing.assert_array_equal(inverted.pixels, FULL_12_BIT - plain.pixels)


def test_monochrome1_inverts_after_the_voi_lut(decoded: Decoded) -> None:
    ds = windowed(10.5, 10)
    ds.PhotometricInterpretation = "MONOCHROME1"
    image = decoded(ds)
    assert image.pixels[0, 5] == FULL_12_BIT and image.pixels[0, 15] == 0.0


def test_monochrome1_signed_with_rescale(decoded: Decoded) -> None:
    ds = dataset(np.array([[-2048, 0, 2047]], np.int16), photometric="MONOCHROME1")
    ds.RescaleSlope, ds.RescaleIntercept = 1.0, 1000.0
    image = decoded(ds)
    low, high = image.value_range
    assert (low, high) == (-1048.0, 3047.0)
    np.testing.assert_array_equal(image.pixels, [[high, low + high - 1000, low]])


# Errors


def test_not_dicom_is_unreadable(tmp_path: Path) -> None:
    note = tmp_path / "note.txt"
    note.write_text("not an image")
    assert "not DICOM" in str(unreadable(note))
    assert "could not be read" in str(unreadable(tmp_path / "absent.dcm"))
    assert "not DICOM" in str(unreadable(b""))


@pytest.mark.filterwarnings("ignore:Invalid value for VR CS")
def test_colour_is_unreadable() -> None:
    colour = dataset(np.zeros((8, 8, 3), np.uint8), bits_stored=8, photometric="RGB")
    assert "not greyscale (Photometric Interpretation RGB)" in str(unreadable(colour))
    odd = dataset(ramp())
    odd.PhotometricInterpretation = PATIENT_NAME.lower()
    assert "(unreadable value)" in str(unreadable(odd))


def test_missing_pixel_data_is_unreadable() -> None:
    ds = dataset(ramp())
    del ds.PixelData
    assert "no Pixel Data" in str(unreadable(ds))


def test_truncated_pixel_data_is_unreadable(tmp_path: Path) -> None:
    ds = dataset(ramp())
    ds.PixelData = ds.PixelData[:100]
    assert "could not be decoded (Explicit VR Little Endian)" in str(unreadable(ds))


def test_corrupt_compressed_pixel_data_is_unreadable() -> None:
    ds = encapsulated(dataset(ramp()), b"\xff\xd8\x00garbage", JPEGLosslessSV1)
    assert "could not be decoded (JPEG Lossless" in str(unreadable(ds))


def test_unusable_bits_stored_is_unreadable() -> None:
    ds = dataset(ramp())
    ds.BitsStored = 40
    assert "Bits Stored 40 is not usable" in str(unreadable(ds))
    del ds.BitsStored, ds.BitsAllocated
    assert "Bits Stored 0 is not usable" in str(unreadable(ds))


def test_unknown_transfer_syntax_is_unreadable() -> None:
    ds = dataset(ramp())
    del ds.file_meta  # built in memory, never read: no encoding to fall back on
    assert "transfer syntax is unknown" in str(unreadable(ds))
    compressed = dataset(ramp())
    compressed.compress(RLELossless)
    out = BytesIO()
    pydicom.dcmwrite(out, Dataset(compressed), implicit_vr=False, little_endian=True)
    bare = pydicom.dcmread(BytesIO(out.getvalue()), force=True)  # encapsulated frames, no syntax to name
    assert "transfer syntax is unknown" in str(unreadable(bare))


@pytest.mark.parametrize(("attributes", "signed", "photometric"), [
    ({}, False, "MONOCHROME2"),
    ({"WindowCenter": 1500, "WindowWidth": 1000}, False, "MONOCHROME2"),
    ({"WindowCenter": 1500, "WindowWidth": 1000, "VOILUTFunction": "SIGMOID"}, False, "MONOCHROME1"),
    ({"WindowCenter": 1500.5, "WindowWidth": 700, "VOILUTFunction": "LINEAR_EXACT"}, False, "MONOCHROME2"),
    ({"RescaleSlope": 0.5, "RescaleIntercept": -100, "WindowCenter": 200, "WindowWidth": 300}, True, "MONOCHROME1"),
])
def test_the_value_table_gives_what_the_pipeline_gives_pixel_by_pixel(
    attributes: dict[str, object], signed: bool, photometric: str
) -> None:
    """decode_radiograph maps integer pixels through a table of every possible value; the same steps on each
    pixel (the path for other pixel types) give the same image."""
    stored = np.random.default_rng(7).integers(-2048 if signed else 0, 2048 if signed else 4096, (64, 48))
    ds = dataset(stored.astype(np.int16 if signed else np.uint16), photometric=photometric)
    ds.PixelRepresentation = int(signed)
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    image = decode_radiograph(ds)
    half = 2.0 ** 11
    stored_range = (-half, half - 1) if signed else (0.0, 2 * half - 1)
    expected, value_range = display_values(ds, stored.astype(np.float32), stored_range, signed, photometric)
    assert image.value_range == value_range
    np.testing.assert_array_equal(image.pixels, expected)


@pytest.mark.parametrize(("bits_allocated", "bits_stored", "signed"), [
    (16, 12, False), (16, 12, True), (16, 16, False), (16, 16, True), (16, 10, True), (8, 8, False), (8, 6, True),
])
@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian,
                                    None, ExplicitVRBigEndian])
def test_samples_read_where_they_lie_decode_as_pydicom_decodes_them(
    bits_allocated: int, bits_stored: int, signed: bool, syntax: UID | None
) -> None:
    """Native little-endian samples are read in the dataset's own bytes, their unused bits masked (and the rest
    sign-extended) through the value table: the image is what the pipeline makes of pydicom's decode, pixel by pixel,
    whatever the bits above Bits Stored hold, from a Part 10 file in each such syntax or a bare dataset (None). A
    big-endian dataset's samples, which pydicom decodes, look its values up in their own byte order."""
    raw = np.random.default_rng(bits_stored).integers(0, 2**bits_allocated, (3, 24, 20))  # unused bits set at random
    ds = dataset(raw.astype(np.uint16 if bits_allocated == 16 else np.uint8), bits_stored=bits_allocated)
    ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits_stored, bits_stored - 1, int(signed)
    ds.RescaleSlope, ds.RescaleIntercept, ds.WindowCenter, ds.WindowWidth = 0.5, -10, 20, 300
    out = BytesIO()
    if syntax is None:
        pydicom.dcmwrite(out, Dataset(ds), implicit_vr=True, little_endian=True)
    else:
        ds.file_meta.TransferSyntaxUID = syntax
        ds.save_as(out, enforce_file_format=True)
    read = pydicom.dcmread(BytesIO(out.getvalue()), force=True)
    image = read_radiograph(out.getvalue())

    stored = pixel_array(read if syntax is not None else ds, index=0)  # pydicom masks and sign-extends
    assert stored.dtype.kind == ("i" if signed else "u")
    half = 2.0 ** (bits_stored - 1)
    stored_range = (-half, half - 1) if signed else (0.0, 2 * half - 1)
    expected, value_range = display_values(read, stored.astype(np.float32), stored_range, signed, "MONOCHROME2")
    assert image.value_range == value_range
    np.testing.assert_array_equal(image.pixels, expected)
