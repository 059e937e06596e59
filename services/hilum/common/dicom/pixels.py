"""The one decode path for radiograph pixels: a DICOM dataset to a float32 image as it is meant to be seen.

decode_radiograph follows the DICOM greyscale pipeline (PS3.4 N.2.1) on the first frame:
  1. stored values, in any transfer syntax pydicom decodes: native, deflated, RLE, and (through the
     pylibjpeg plugins) JPEG baseline, extended and lossless, JPEG-LS and JPEG 2000; signed or
     unsigned, the bits above Bits Stored masked and signed values sign-extended. Native little-endian
     samples of 8 or 16 bits are read where they lie in the dataset, and the masking is part of the value
     table below; pydicom decodes the rest;
  2. the modality LUT: the Modality LUT Sequence, else Rescale Slope and Intercept;
  3. the VOI LUT: the first VOI LUT Sequence item, else the first Window Center and Width (with VOI
     LUT Function LINEAR, LINEAR_EXACT or SIGMOID);
  4. MONOCHROME1 inverted, so that every Radiograph is in MONOCHROME2 orientation (dense = bright).
"""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.multival import MultiValue
from pydicom.pixels.utils import pixel_array
from pydicom.sequence import Sequence
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from hilum.common.cores import usable_cores
from hilum.common.dicom.attributes import floats, integer, printable, raw_value, text, uid
from hilum.common.dicom.header import NotDicom, parse_dataset

GREY_PHOTOMETRICS = ("MONOCHROME1", "MONOCHROME2")
MAX_BITS_STORED = 32
_LUT_MAX_ENTRIES = 2**16  # a LUT Descriptor's first value 0 means 65536 entries
_VOI_FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")

Range = tuple[float, float]

# Decodes one process runs at once, whatever its threads: a decode is CPU work that holds tens of MB (a 2500 x 2000
# image is 10 MB stored and 20 MB decoded), so more decodes than cores add memory, not speed. A gRPC server or a
# threads pool with many requests in flight waits here instead of holding every image decoded at once. The cores are
# those the process may use (a pod's CPU limit, not its node's CPUs).
DECODE_SLOTS = threading.BoundedSemaphore(usable_cores())


class ImageUnreadable(ValueError):
    """The pixels cannot be decoded into a greyscale image; the message names no patient data."""


@dataclass(frozen=True, eq=False)
class Radiograph:
    """A greyscale radiograph as displayed (MONOCHROME2: higher = brighter = denser).

    pixels: float32 (rows, cols), the first frame after the modality and VOI LUTs, within value_range.
    value_range: (darkest, brightest) values the pixels can take:
      - after a VOI LUT Sequence: (0, 2^n - 1), n the bits per entry in its LUT Descriptor;
      - otherwise the modality range, what the stored bits can express after the modality LUT:
        (0, 2^BitsStored - 1) when unsigned, (-2^(BitsStored-1), 2^(BitsStored-1) - 1) when signed,
        through Rescale Slope and Intercept, or (0, 2^n - 1) after a Modality LUT Sequence. A window
        (Window Center/Width) maps onto this same range: below the window is darkest, above brightest.
    bits_stored: Bits Stored of the source image.
    """

    pixels: npt.NDArray[np.float32]
    value_range: Range
    bits_stored: int


def read_radiograph(source: Path | bytes) -> Radiograph:
    """decode_radiograph for a DICOM file, or its bytes (Part 10 or a bare dataset).

    Raises ImageUnreadable when the file cannot be read, is not DICOM, or its pixels cannot be decoded.
    """
    if isinstance(source, Path):
        try:
            content = source.read_bytes()
        except OSError as error:
            raise ImageUnreadable("The image file could not be read") from error
    else:
        content = source
    try:
        ds = parse_dataset(content)
    except NotDicom as error:
        raise ImageUnreadable(str(error)) from error
    return decode_radiograph(ds)


def decode_radiograph(ds: Dataset) -> Radiograph:
    """The first frame of ds as a Radiograph, through the pipeline in the module docstring.

    Malformed VOI attributes are passed over (the VOI LUT is a presentation choice); anything else
    that prevents decoding raises ImageUnreadable. ds is left unchanged. A caller that keeps the image only to
    reduce it (check it, make a model input) does so holding one of DECODE_SLOTS, so that its memory is bounded too.
    """
    photometric = _greyscale(ds)
    bits_stored = integer(ds, "BitsStored") or integer(ds, "BitsAllocated") or 0
    if not 1 <= bits_stored <= MAX_BITS_STORED:
        raise ImageUnreadable(f"Bits Stored {bits_stored} is not usable: Hilum reads 1 to {MAX_BITS_STORED}")
    signed = integer(ds, "PixelRepresentation") == 1
    half = 2.0 ** (bits_stored - 1)
    stored_range = (-half, half - 1) if signed else (0.0, 2 * half - 1)
    samples = _native_first_frame(ds, bits_stored)
    if samples is not None:
        # The samples as they lie in the dataset, unused bits and all: what each holds once masked (and sign-extended)
        # is part of the value table, so no pass over the image masks it, and no copy of the Pixel Data is made.
        meant = _stored_values(8 * samples.dtype.itemsize, bits_stored, signed)
    else:
        stored = _first_frame(ds)
        if stored.dtype.kind not in "iu" or stored.dtype.itemsize > 2:
            values, value_range = display_values(ds, stored.astype(np.float32), stored_range, signed, photometric)
            return Radiograph(pixels=values, value_range=value_range, bits_stored=bits_stored)
        # pydicom's values, already masked and sign-extended: each bit pattern means what the values' type says
        # (read in the values' own byte order: a big-endian dataset's come big-endian).
        bits = 8 * stored.dtype.itemsize
        samples = stored.view(np.dtype(f"u{stored.dtype.itemsize}").newbyteorder(stored.dtype.byteorder))
        meant = _stored_values(bits, bits, stored.dtype.kind == "i")
    # Every step of the pipeline maps each stored value on its own, so it runs once per bit pattern a sample can hold
    # (at most 65536) and the image takes its values from that table: one pass over millions of pixels.
    table, value_range = display_values(ds, meant, stored_range, signed, photometric)
    return Radiograph(pixels=_looked_up(table, samples), value_range=value_range, bits_stored=bits_stored)


# Rows of the image looked up in the value table at a time: numpy copies the indices of each call to a wider integer
# type, and a block of rows keeps that copy in the processor's cache (measured: a third of the time of one call).
LOOKUP_ROWS = 128


def _looked_up(table: npt.NDArray[np.float32], index: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
    """table[index] for an index array whose values all lie within the table (it holds every value of their type),
    a block of rows at a time; mode "clip" lets numpy write straight into the output (no bounds left to check)."""
    values = np.empty(index.shape, dtype=np.float32)
    for start in range(0, index.shape[0], LOOKUP_ROWS):
        block = slice(start, start + LOOKUP_ROWS)
        np.take(table, index[block], out=values[block], mode="clip")
    return values


def display_values(
    ds: Dataset, stored: npt.NDArray[np.float32], stored_range: Range, signed: bool, photometric: str
) -> tuple[npt.NDArray[np.float32], Range]:
    """Stored values through steps 2 to 4 of the pipeline (modality LUT, VOI LUT, MONOCHROME1), with their range."""
    values, value_range = _modality_lut(ds, stored, stored_range, signed)
    values, value_range = _voi_lut(ds, values, value_range, signed)
    low, high = value_range
    with np.errstate(over="ignore"):  # an absurd rescale's range is beyond float32: inf, for callers to test
        np.clip(values, low, high, out=values)
        if photometric == "MONOCHROME1":
            values = (low + high) - values  # MONOCHROME1 shows low values bright; mirror within the range
    return values.astype(np.float32, copy=False), value_range


def _greyscale(ds: Dataset) -> str:
    """The Photometric Interpretation of a one-sample greyscale image; raises ImageUnreadable otherwise."""
    photometric = text(ds, "PhotometricInterpretation").upper()
    if photometric not in GREY_PHOTOMETRICS or integer(ds, "SamplesPerPixel") not in (None, 1):
        shown = printable(photometric) if photometric else "absent"
        raise ImageUnreadable(
            f"The image is not greyscale (Photometric Interpretation {shown}): "
            "Hilum reads one-sample MONOCHROME1 and MONOCHROME2 images"
        )
    return photometric


def _native_first_frame(ds: Dataset, bits_stored: int) -> npt.NDArray[np.uint8 | np.uint16] | None:
    """The first frame's raw samples as a read-only view of the Pixel Data (no copy), when they are uncompressed
    little-endian samples of 8 or 16 bits holding Bits Stored; None otherwise (pydicom decodes them, and says what is
    wrong with data that does not fit).

    A sample's bits above Bits Stored are left as they are: _stored_values says what each raw sample means.
    """
    element = ds["PixelData"] if "PixelData" in ds else None
    data = element.value if element is not None and not element.is_undefined_length else None
    bits_allocated = integer(ds, "BitsAllocated")
    rows, columns = integer(ds, "Rows") or 0, integer(ds, "Columns") or 0
    if not isinstance(data, bytes) or bits_allocated not in (8, 16) or not 1 <= bits_stored <= bits_allocated:
        return None
    if rows < 1 or columns < 1 or len(data) < rows * columns * bits_allocated // 8:
        return None
    if uid(_with_transfer_syntax(ds).file_meta, "TransferSyntaxUID") not in _NATIVE_LITTLE_ENDIAN:
        return None
    dtype = np.dtype("<u2") if bits_allocated == 16 else np.dtype(np.uint8)
    samples: npt.NDArray[np.uint8 | np.uint16] = np.frombuffer(data, dtype=dtype, count=rows * columns)
    return samples.reshape(rows, columns)


# Syntaxes whose Pixel Data, once pydicom has read the dataset (and inflated a deflated one), is the samples
# themselves, least significant byte first.
_NATIVE_LITTLE_ENDIAN = (ImplicitVRLittleEndian, ExplicitVRLittleEndian, DeflatedExplicitVRLittleEndian)


def _stored_values(bits_allocated: int, bits_stored: int, signed: bool) -> npt.NDArray[np.float32]:
    """The stored value each bit pattern of a bits_allocated-bit sample holds, by pattern: the bits above bits_stored
    dropped (they may hold anything, e.g. an old overlay) and, when signed, the rest sign-extended."""
    values = np.arange(2**bits_allocated, dtype=np.int64) & (2**bits_stored - 1)
    if signed:
        values = np.where(values >= 2 ** (bits_stored - 1), values - 2**bits_stored, values)
    meant: npt.NDArray[np.float32] = values.astype(np.float32)
    return meant


def _first_frame(ds: Dataset) -> npt.NDArray[np.generic]:
    """The stored values of the first frame, (rows, cols), signed or unsigned as Pixel Representation says."""
    if "PixelData" not in ds:
        raise ImageUnreadable("The dataset has no Pixel Data")
    decodable = _with_transfer_syntax(ds)
    syntax = UID(uid(decodable.file_meta, "TransferSyntaxUID"))
    try:
        stored: npt.NDArray[np.generic] = np.asarray(pixel_array(decodable, index=0))
    except Exception as error:  # pydicom and its plugins raise many exception types for bad pixel data
        raise ImageUnreadable(
            f"Pixel Data could not be decoded ({syntax.name}): the bytes do not match the transfer syntax, "
            "or are damaged"
        ) from error
    if stored.ndim != 2 or min(stored.shape) < 1:
        raise ImageUnreadable(f"Expected a 2-D greyscale frame, got pixel shape {stored.shape}")
    return stored


def _with_transfer_syntax(ds: Dataset) -> Dataset:
    """ds when its file meta names its transfer syntax; otherwise (a bare dataset) a shallow copy whose
    file meta names the uncompressed syntax it was read with.
    """
    file_meta = getattr(ds, "file_meta", None)
    if isinstance(file_meta, Dataset) and uid(file_meta, "TransferSyntaxUID"):
        return ds
    implicit, little_endian = ds.original_encoding
    if little_endian is None or ds["PixelData"].is_undefined_length:
        raise ImageUnreadable("The transfer syntax is unknown: the dataset has no file meta information")
    if implicit:
        syntax = ImplicitVRLittleEndian
    else:
        syntax = ExplicitVRLittleEndian if little_endian else ExplicitVRBigEndian
    named = copy.copy(ds)
    named.file_meta = FileMetaDataset()
    named.file_meta.TransferSyntaxUID = syntax
    return named


def _modality_lut(
    ds: Dataset, stored: npt.NDArray[np.float32], stored_range: Range, signed: bool
) -> tuple[npt.NDArray[np.float32], Range]:
    """Modality values and their range: the Modality LUT Sequence, else Rescale Slope and Intercept."""
    if _sequence_item(ds, "ModalityLUTSequence") is not None:
        lut = _lut(ds, "ModalityLUTSequence", signed)
        if lut is None:
            raise ImageUnreadable("The Modality LUT Sequence is malformed: its LUT Descriptor and LUT Data disagree")
        return lut.apply(stored), lut.output_range
    slope = next(iter(floats(ds, "RescaleSlope")), 1.0) or 1.0  # a zero slope is an encoding fault
    intercept = next(iter(floats(ds, "RescaleIntercept")), 0.0)
    if (slope, intercept) == (1.0, 0.0):
        return stored, stored_range
    low, high = sorted(slope * bound + intercept for bound in stored_range)
    # An absurd rescale overflows float32 to inf (and 0 x inf to nan): non-finite values, for callers to test.
    with np.errstate(over="ignore", invalid="ignore"):
        return stored * np.float32(slope) + np.float32(intercept), (low, high)


def _voi_lut(
    ds: Dataset, values: npt.NDArray[np.float32], value_range: Range, signed: bool
) -> tuple[npt.NDArray[np.float32], Range]:
    """VOI output and its range: the first VOI LUT Sequence item, else the first window, else unchanged."""
    lut = _lut(ds, "VOILUTSequence", signed)
    if lut is not None:
        return lut.apply(values), lut.output_range
    centres, widths = floats(ds, "WindowCenter"), floats(ds, "WindowWidth")
    function = text(ds, "VOILUTFunction").upper() or "LINEAR"
    if not centres or not widths or function not in _VOI_FUNCTIONS:
        return values, value_range
    centre, width = centres[0], widths[0]
    if width <= 0 or (function == "LINEAR" and width < 1):
        return values, value_range
    low, high = value_range
    windowed = _window_position(values, centre, width, function)
    windowed *= high - low
    windowed += low
    return windowed, value_range


def _window_position(
    values: npt.NDArray[np.float32], centre: float, width: float, function: str
) -> npt.NDArray[np.float32]:
    """Where each value falls in the window, 0 (darkest) to 1 (brightest), by PS3.3 C.11.2.1.2 and C.11.2.1.3."""
    if function == "SIGMOID":
        with np.errstate(over="ignore"):  # far below the centre exp overflows to inf, which gives 0
            sigmoid: npt.NDArray[np.float32] = 1.0 / (1.0 + np.exp(-4.0 * (values - centre) / width))
        return sigmoid
    # One new array, then in place: these images have millions of pixels.
    if function == "LINEAR_EXACT":
        position = values - centre
        position /= width
    elif width == 1:  # LINEAR with width 1 is a threshold
        position = (values > centre - 0.5).astype(np.float32)
    else:
        position = values - (centre - 0.5)
        position /= width - 1
    if width != 1 or function == "LINEAR_EXACT":
        position += 0.5
    np.clip(position, 0.0, 1.0, out=position)
    return position


@dataclass(frozen=True)
class _Lut:
    """A lookup table (PS3.3 C.11.1.1): inputs below first_mapped take the first entry, above the last
    the last entry; outputs are unsigned with `bits` bits.
    """

    first_mapped: int
    entries: npt.NDArray[np.float32]
    bits: int

    @property
    def output_range(self) -> Range:
        return 0.0, 2.0**self.bits - 1

    def apply(self, values: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        index = np.clip(np.rint(values) - self.first_mapped, 0, len(self.entries) - 1).astype(np.intp)
        mapped: npt.NDArray[np.float32] = self.entries[index]
        return mapped


def _sequence_item(ds: Dataset, keyword: str) -> Dataset | None:
    """The first item of a sequence attribute; None when absent or empty."""
    items = raw_value(ds, keyword)
    if isinstance(items, Sequence) and len(items) > 0 and isinstance(items[0], Dataset):
        return items[0]
    return None


def _lut(ds: Dataset, keyword: str, signed: bool) -> _Lut | None:
    """The LUT in the first item of a Modality or VOI LUT Sequence; None when absent or malformed."""
    item = _sequence_item(ds, keyword)
    descriptor = raw_value(item, "LUTDescriptor") if item is not None else None
    if item is None or not isinstance(descriptor, MultiValue | list | tuple) or len(descriptor) != 3:
        return None
    try:
        count, first_mapped, bits = (int(value) for value in descriptor)
    except (TypeError, ValueError):
        return None
    count = count or _LUT_MAX_ENTRIES
    if signed and first_mapped >= 2**15:  # the descriptor's US or SS: read as SS for signed pixels
        first_mapped -= 2**16
    entries = _lut_entries(ds, raw_value(item, "LUTData"), count)
    if entries is None or not 1 <= bits <= 16:
        return None
    return _Lut(first_mapped=first_mapped, entries=entries, bits=bits)


def _lut_entries(ds: Dataset, data: object, count: int) -> npt.NDArray[np.float32] | None:
    """count LUT Data entries as floats: US values, or OW bytes of 16-bit (or packed 8-bit) entries."""
    if isinstance(data, bytes):
        if len(data) >= 2 * count:
            byte_order = ">" if ds.original_encoding[1] is False else "<"
            values = np.frombuffer(data, dtype=f"{byte_order}u2", count=count)
        elif len(data) >= count:
            values = np.frombuffer(data, dtype=np.uint8, count=count)
        else:
            return None
        return values.astype(np.float32)
    numbers = [data] if isinstance(data, int) else data
    if not isinstance(numbers, MultiValue | list | tuple) or len(numbers) < count:
        return None
    try:
        return np.asarray(list(numbers)[:count], dtype=np.float32)
    except (TypeError, ValueError):
        return None
