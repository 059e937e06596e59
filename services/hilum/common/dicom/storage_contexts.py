"""The presentation contexts Hilum takes images on, as the DICOM door's C-STORE SCP and as a C-GET SCU fetching
from a PACS: the storage SOP classes of chest radiographs and the transfer syntaxes its pixel decoder reads."""

from __future__ import annotations

from pydicom.uid import (
    JPEG2000,
    UID,
    ComputedRadiographyImageStorage,
    DeflatedExplicitVRLittleEndian,
    DigitalXRayImageStorageForPresentation,
    DigitalXRayImageStorageForProcessing,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLosslessSV1,
    RLELossless,
    SecondaryCaptureImageStorage,
)

# The storage SOP classes negotiated; acceptance decides per instance (Secondary Capture included).
STORAGE_SOP_CLASSES: tuple[UID, ...] = (
    ComputedRadiographyImageStorage,
    DigitalXRayImageStorageForPresentation,
    DigitalXRayImageStorageForProcessing,
    SecondaryCaptureImageStorage,
)
# Every transfer syntax Hilum's pixel decoder reads, in order of preference: of those a peer proposes
# for a context, the first here is chosen.
TRANSFER_SYNTAXES: tuple[UID, ...] = (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,  # retired, still sent by old modalities
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLosslessSV1,
    JPEG2000Lossless,
    JPEG2000,
    RLELossless,
)
