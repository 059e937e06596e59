"""Builders of bad inputs whose fault is in the file: each fault is the one its name says."""

from __future__ import annotations

import struct

import pytest

from hilum.samples.faulty_files import cut, garbage, j2k_bomb, png_header, three_component_jpeg
from hilum.samples.variant_files import part10, variant_dataset

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def test_garbage_is_the_same_for_a_name_and_differs_between_names() -> None:
    assert garbage("x") == garbage("x") != garbage("y")
    assert len(garbage("x", 10)) == 10
    assert png_header("x").startswith(b"\x89PNG\r\n\x1a\n")


def test_a_file_is_cut_at_a_fraction_or_after_a_marker() -> None:
    whole = part10(variant_dataset("cut"))
    assert cut(0.5)("cut") == whole[: len(whole) // 2]
    assert cut(b"DICM", -28)("cut") == whole[:100]


def test_the_frame_faults_are_in_the_frame_header() -> None:
    ds = variant_dataset("frames")
    bomb = j2k_bomb(ds)
    siz = bomb.index(b"\xff\x51")
    assert struct.unpack_from(">II", bomb, siz + 6) == (40_000, 40_000)
    colour = three_component_jpeg(ds)
    assert colour[colour.index(b"\xff\xc0") + 9] == 3
