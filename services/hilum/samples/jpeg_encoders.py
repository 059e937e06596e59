"""Minimal JPEG encoders, since neither pydicom nor the pylibjpeg plugins write JPEG.

lossless_jpeg: JPEG lossless, process 14, selection value 1 (ITU T.81 Annex H).
dc_only_jpeg: JPEG baseline (8-bit) or extended (12-bit) DCT of an image flat in each 8 x 8 block.
Both write one greyscale component with fixed-length Huffman codes: small, not efficient.
"""

from __future__ import annotations

import struct

import numpy as np
import numpy.typing as npt


def _segment(marker: int, payload: bytes) -> bytes:
    return struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload


def _entropy_coded(codes: list[str]) -> bytes:
    """Bits (as '0'/'1' strings) packed most significant first, padded with ones, 0xFF stuffed (T.81 F.1.2.3)."""
    bits = "".join(codes)
    bits += "1" * (-len(bits) % 8)
    packed = int(bits, 2).to_bytes(len(bits) // 8, "big") if bits else b""
    return packed.replace(b"\xff", b"\xff\x00")


def _difference_code(difference: int, code_length: int) -> str:
    """A difference's category as a fixed-length code, then its low bits (one's complement if negative)."""
    size = abs(difference).bit_length()
    extra = difference if difference > 0 else difference - 1 + (1 << size)
    return f"{size:0{code_length}b}" + (f"{extra:0{size}b}" if size else "")


def _huffman_table(table_class: int, symbols: list[int], code_length: int) -> bytes:
    counts = [0] * 16
    counts[code_length - 1] = len(symbols)
    return _segment(0xC4, bytes([table_class << 4, *counts, *symbols]))


def _frame_header(marker: int, precision: int, rows: int, columns: int) -> bytes:
    return _segment(marker, struct.pack(">BHHB", precision, rows, columns, 1) + bytes([1, 0x11, 0]))


def lossless_jpeg(image: npt.NDArray[np.uint16], precision: int) -> bytes:
    """JPEG lossless, process 14, selection value 1 (predict from the left; first column from above)."""
    values = image.astype(np.int64)
    predictions = np.empty_like(values)
    predictions[:, 1:] = values[:, :-1]
    predictions[1:, 0] = values[:-1, 0]
    predictions[0, 0] = 1 << (precision - 1)
    differences = (values - predictions).ravel().tolist()
    scan = _entropy_coded([_difference_code(int(d), 5) for d in differences])
    return b"".join(
        [
            b"\xff\xd8",
            _frame_header(0xC3, precision, *image.shape),
            _huffman_table(0, list(range(17)), 5),
            _segment(0xDA, bytes([1, 1, 0x00, 1, 0, 0])),  # Ss = 1: the predictor selection value
            scan,
            b"\xff\xd9",
        ]
    )


def dc_only_jpeg(image: npt.NDArray[np.uint16], precision: int) -> bytes:
    """JPEG baseline (8-bit) or extended (12-bit) DCT of an image flat in each 8 x 8 block: every block is
    its DC coefficient alone, which a quantisation table of ones carries exactly (lossless here)."""
    rows, columns = image.shape
    level = 1 << (precision - 1)
    codes, previous = [], 0
    for top in range(0, rows, 8):
        for left in range(0, columns, 8):
            dc = 8 * (int(image[top, left]) - level)
            codes += [_difference_code(dc - previous, 5), "00"]  # then the AC end of block, code 00
            previous = dc
    return b"".join(
        [
            b"\xff\xd8",
            _segment(0xDB, bytes([0]) + bytes([1] * 64)),
            _frame_header(0xC0 if precision == 8 else 0xC1, precision, rows, columns),
            _huffman_table(0, list(range(16)), 5),
            _huffman_table(1, [0x00, 0xF0], 2),
            _segment(0xDA, bytes([1, 1, 0x00, 0, 63, 0])),
            _entropy_coded(codes),
            b"\xff\xd9",
        ]
    )
