"""Minimal JPEG encoders for test images, since neither pydicom nor the pylibjpeg plugins encode JPEG.

lossless_jpeg: JPEG lossless, process 14, selection value 1 (ITU T.81 Annex H), any image of 2 to 16 bits.
baseline_jpeg: JPEG baseline (process 1) for 8-bit images made of flat 8 x 8 blocks: every block is its
DC coefficient alone, which a quantisation table of ones carries exactly, so decoding is lossless.
Both write one greyscale component with fixed-length Huffman codes: small, not efficient.
"""

from __future__ import annotations

import struct

import numpy as np
import numpy.typing as npt

SOI, EOI = b"\xff\xd8", b"\xff\xd9"


class _Bits:
    """An entropy-coded segment: bits written most significant first, 0xFF bytes stuffed with 0x00."""

    def __init__(self) -> None:
        self._bits: list[int] = []

    def write(self, value: int, length: int) -> None:
        self._bits.extend((value >> shift) & 1 for shift in range(length - 1, -1, -1))

    def to_bytes(self) -> bytes:
        bits = self._bits + [1] * (-len(self._bits) % 8)  # pad the last byte with ones
        out = bytearray()
        for start in range(0, len(bits), 8):
            byte = int("".join(map(str, bits[start : start + 8])), 2)
            out.append(byte)
            if byte == 0xFF:
                out.append(0x00)
        return bytes(out)


def _segment(marker: int, payload: bytes) -> bytes:
    return struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload


def _huffman_table(table_class: int, symbols: list[int], code_length: int) -> bytes:
    """A DHT segment giving every symbol a code of code_length bits (symbol i gets code i)."""
    counts = [0] * 16
    counts[code_length - 1] = len(symbols)
    return _segment(0xC4, bytes([table_class << 4, *counts, *symbols]))


def _frame(marker: int, precision: int, rows: int, columns: int) -> bytes:
    """A start-of-frame segment for one component (id 1, no subsampling, quantisation table 0)."""
    return _segment(marker, struct.pack(">BHHB", precision, rows, columns, 1) + bytes([1, 0x11, 0]))


def _scan(start: int, end: int) -> bytes:
    """A start-of-scan segment for component 1 with Huffman tables 0."""
    return _segment(0xDA, bytes([1, 1, 0x00, start, end, 0]))


def _category(value: int) -> int:
    """The number of bits of |value| (the SSSS category)."""
    return abs(value).bit_length()


def _write_difference(bits: _Bits, difference: int, code_length: int) -> None:
    """A category code, then the difference's low bits (one's complement for negatives), T.81 F.1.2.1."""
    size = _category(difference)
    bits.write(size, code_length)
    if size:
        bits.write(difference if difference > 0 else difference - 1 + (1 << size), size)


def lossless_jpeg(image: npt.NDArray[np.integer], precision: int) -> bytes:
    """image: unsigned (rows, cols) within precision bits. Predictor 1 (left), first column from above."""
    rows, columns = image.shape
    values = image.astype(np.int64)
    bits = _Bits()
    for row in range(rows):
        for column in range(columns):
            if row == column == 0:
                prediction = 1 << (precision - 1)
            elif column == 0:
                prediction = int(values[row - 1, 0])
            else:
                prediction = int(values[row, column - 1])
            difference = (int(values[row, column]) - prediction) % (1 << 16)
            difference = difference - (1 << 16) if difference >= 1 << 15 else difference
            if difference == -(1 << 15):  # category 16 carries no extra bits
                bits.write(16, 5)
            else:
                _write_difference(bits, difference, 5)
    return b"".join(
        [
            SOI,
            _frame(0xC3, precision, rows, columns),
            _huffman_table(0, list(range(17)), 5),
            _scan(1, 0),  # Ss is the predictor selection value
            bits.to_bytes(),
            EOI,
        ]
    )


def baseline_jpeg(image: npt.NDArray[np.uint8]) -> bytes:
    """image: uint8 (rows, cols), both multiples of 8, each 8 x 8 block of one value."""
    rows, columns = image.shape
    bits = _Bits()
    previous = 0
    for top in range(0, rows, 8):
        for left in range(0, columns, 8):
            block = image[top : top + 8, left : left + 8]
            assert (block == block[0, 0]).all(), "baseline_jpeg takes flat 8 x 8 blocks only"
            dc = 8 * (int(block[0, 0]) - 128)  # the level-shifted block's DC coefficient, quantised by 1
            _write_difference(bits, dc - previous, 4)
            bits.write(0, 2)  # AC: end of block at once
            previous = dc
    return b"".join(
        [
            SOI,
            _segment(0xDB, bytes([0]) + bytes([1] * 64)),
            _frame(0xC0, 8, rows, columns),
            _huffman_table(0, list(range(12)), 4),
            _huffman_table(1, [0x00, 0xF0], 2),  # end of block (code 00) and a spare run of zeros
            _scan(0, 63),
            bits.to_bytes(),
            EOI,
        ]
    )
