"""Acceptable oddities: each decodes to the image it encodes, in its transfer syntax, of a fictional patient."""

from __future__ import annotations

import numpy as np
import pytest
from pydicom.uid import UID, ExplicitVRLittleEndian

from hilum.common.dicom.header import parse_dataset
from hilum.common.dicom.pixels import decode_radiograph
from hilum.common.dicom.storage_contexts import TRANSFER_SYNTAXES
from hilum.samples.acceptable_oddities import ACCEPTABLE_ODDITIES, ODD_NAME_PATIENT_ID, ODD_PATIENT_NAME
from hilum.samples.bad_inputs import acceptable_oddities
from hilum.samples.dicom_files import dx_dataset
from hilum.samples.sample_studies import SAMPLE_STUDIES
from hilum.samples.variant_files import COLUMNS, PATIENT_ID, ROWS, variant_study

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # some values are malformed on purpose


@pytest.fixture(scope="module")
def oddities() -> dict[str, bytes]:
    return dict(acceptable_oddities())


def test_the_table_builds_each_oddity_by_its_name(oddities: dict[str, bytes]) -> None:
    builders = dict(ACCEPTABLE_ODDITIES)
    assert list(builders) == list(oddities)
    named = parse_dataset(builders["odd-characters-in-names"]("odd-characters-in-names"))
    assert (named.PatientID, str(named.PatientName)) == (ODD_NAME_PATIENT_ID, ODD_PATIENT_NAME)


def test_oddities_belong_to_the_fictional_patients(oddities: dict[str, bytes]) -> None:
    patients = {str(parse_dataset(content).PatientID) for content in oddities.values()}
    assert patients == {PATIENT_ID, ODD_NAME_PATIENT_ID}
    assert not patients & {spec.patient_id for spec in SAMPLE_STUDIES}



def test_oddities_decode_to_the_image_they_encode(oddities: dict[str, bytes]) -> None:
    """Each encoding of the picture decodes to the very pixels of its uncompressed original."""

    def image(name: str) -> np.ndarray:
        return decode_radiograph(parse_dataset(oddities[name])).pixels

    def original(name: str) -> np.ndarray:
        native = dx_dataset(variant_study(name))
        native.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        return decode_radiograph(native).pixels

    lossless = ["rle-lossless", "jpeg-lossless", "jpeg2000-lossless", "jpeg2000-lossless-codestream-as-lossy",
                "implicit-vr-little-endian", "explicit-vr-big-endian", "deflated", "bare-dataset-implicit-vr",
                "tiff-like-preamble", "monochrome1", "signed-pixels"]
    for name in lossless:
        # Display values are float32: MONOCHROME1's mirror through the window may round in the last bit.
        np.testing.assert_allclose(image(name), original(name), rtol=0, atol=1e-3, err_msg=name)
    for name in ("jpeg-baseline", "jpeg-extended-12-bit"):  # 8 x 8 blocks of the 8-bit picture
        pixels = image(name)
        assert pixels.shape == (ROWS, COLUMNS) and np.unique(pixels).size > 50, name
        np.testing.assert_array_equal(pixels[::8, ::8].repeat(8, 0).repeat(8, 1), pixels, err_msg=name)


def test_compressed_oddities_are_in_their_transfer_syntax(oddities: dict[str, bytes]) -> None:
    expected = {
        "rle-lossless": "1.2.840.10008.1.2.5",
        "jpeg-lossless": "1.2.840.10008.1.2.4.70",
        "jpeg-baseline": "1.2.840.10008.1.2.4.50",
        "jpeg-extended-12-bit": "1.2.840.10008.1.2.4.51",
        "jpeg2000-lossless": "1.2.840.10008.1.2.4.90",
        "jpeg2000-lossless-codestream-as-lossy": "1.2.840.10008.1.2.4.91",
        "deflated": "1.2.840.10008.1.2.1.99",
        "explicit-vr-big-endian": "1.2.840.10008.1.2.2",
    }
    for name, syntax in expected.items():
        ds = parse_dataset(oddities[name])
        assert ds.file_meta.TransferSyntaxUID == syntax, name
        assert UID(syntax) in TRANSFER_SYNTAXES  # every oddity can be sent over DIMSE too
    assert oddities["bare-dataset-implicit-vr"][128:132] != b"DICM"
    assert oddities["tiff-like-preamble"].startswith(b"II*\0")

