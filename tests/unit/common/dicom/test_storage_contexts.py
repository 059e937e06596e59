"""The contexts Hilum negotiates are the ones its decoder and its acceptance rules take."""

from __future__ import annotations

from pydicom.pixels import get_decoder
from pydicom.uid import UID

from hilum.common.dicom.storage_contexts import STORAGE_SOP_CLASSES, TRANSFER_SYNTAXES


def test_every_negotiated_transfer_syntax_has_an_installed_decoder() -> None:
    assert TRANSFER_SYNTAXES[0] == UID("1.2.840.10008.1.2.1")  # explicit VR little endian preferred
    for syntax in TRANSFER_SYNTAXES:
        assert syntax.is_transfer_syntax
        assert get_decoder(syntax).is_available, syntax.name


def test_the_storage_classes_are_radiographs_and_secondary_capture() -> None:
    assert [sop_class.name for sop_class in STORAGE_SOP_CLASSES] == [
        "Computed Radiography Image Storage",
        "Digital X-Ray Image Storage - For Presentation",
        "Digital X-Ray Image Storage - For Processing",
        "Secondary Capture Image Storage",
    ]
