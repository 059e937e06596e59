"""DICOM Part 10 files for synthetic studies: the shared header, the DX chest image, and writing them.

Every file is deterministic in its study's seed and says plainly (Image Comments) that it shows no patient.
"""

from __future__ import annotations

import dataclasses
from datetime import date
from pathlib import Path

from pydicom import dcmwrite
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import UID, DigitalXRayImageStorageForPresentation, ExplicitVRLittleEndian

from hilum.samples.chest_pixels import BITS_STORED, chest_pixels
from hilum.samples.chest_views import VIEW_GEOMETRY, ViewPosition
from hilum.samples.identifiers import make_uid
from hilum.samples.sample_studies import SAMPLE_STUDIES, SyntheticStudy

MANUFACTURER = "Hilum synthetic"
IMAGER_PIXEL_SPACING_MM = 0.139
_IMPLEMENTATION_VERSION = "HILUM_SYNTH_01"
_CHEST_CODE = ("816094009", "Chest")  # SNOMED CT, CID 4009 (DX Anatomy Imaged)


def _file_meta(sop_class_uid: str, sop_instance_uid: str) -> FileMetaDataset:
    """Part 10 file meta information for explicit VR little endian."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class_uid)
    meta.MediaStorageSOPInstanceUID = UID(sop_instance_uid)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = UID(make_uid(0, "implementation"))
    meta.ImplementationVersionName = _IMPLEMENTATION_VERSION
    return meta


def _code_item(value: str, meaning: str) -> Dataset:
    """A SNOMED CT code sequence item."""
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = "SCT"
    item.CodeMeaning = meaning
    return item


def _age(birth: date, on: date) -> str:
    """DICOM Patient's Age (AS) on a date, in years, e.g. "068Y"."""
    years = on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))
    return f"{years:03d}Y"


def common_dataset(spec: SyntheticStudy, sop_class_uid: str, modality: str) -> Dataset:
    """What DX and CT synthetic images share: file meta, Patient, Study, Series, Equipment and SOP Common,
    and Image Pixel for spec.rows x spec.columns 12-bit MONOCHROME2 pixels (without the Pixel Data)."""
    ds = Dataset()
    ds.file_meta = _file_meta(sop_class_uid, spec.sop_instance_uid)
    started = spec.study_started
    study_date, study_time = started.strftime("%Y%m%d"), started.strftime("%H%M%S")
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.InstanceCreationDate = study_date
    ds.InstanceCreationTime = study_time
    ds.SOPClassUID = sop_class_uid
    ds.SOPInstanceUID = spec.sop_instance_uid
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = study_date
    ds.StudyTime = ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = study_time
    ds.AccessionNumber = spec.accession_number
    ds.Modality = modality
    ds.Manufacturer = MANUFACTURER
    ds.ReferringPhysicianName = ""
    ds.StationName = "SYNTH01"
    ds.ManufacturerModelName = "Hilum synthetic chest generator"
    ds.DeviceSerialNumber = "0001"
    ds.SoftwareVersions = _IMPLEMENTATION_VERSION
    ds.PatientName = spec.patient_name
    ds.PatientID = spec.patient_id
    ds.IssuerOfPatientID = spec.issuer
    ds.PatientBirthDate = spec.birth_date.strftime("%Y%m%d")
    ds.PatientSex = spec.sex
    ds.PatientAge = _age(spec.birth_date, started.date())
    ds.BodyPartExamined = "CHEST"
    ds.StudyInstanceUID = spec.study_instance_uid
    ds.SeriesInstanceUID = spec.series_instance_uid
    ds.StudyID = spec.accession_number[-8:]
    ds.SeriesNumber = 1
    ds.AcquisitionNumber = 1
    ds.InstanceNumber = 1
    ds.ImageComments = "Synthetic image made by Hilum for demonstration and testing; it shows no patient."
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = spec.rows
    ds.Columns = spec.columns
    ds.BitsAllocated = 16
    ds.BitsStored = BITS_STORED
    ds.HighBit = BITS_STORED - 1
    ds.PixelRepresentation = 0
    return ds


def dx_dataset(spec: SyntheticStudy) -> Dataset:
    """The DX (for presentation) chest dataset for a study, its chest_pixels picture included."""
    geometry = VIEW_GEOMETRY[spec.view_position]
    ds = common_dataset(spec, DigitalXRayImageStorageForPresentation, "DX")
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.StudyDescription = spec.study_description
    ds.SeriesDescription = f"CHEST {spec.view_position.value}"
    ds.PresentationIntentType = "FOR PRESENTATION"

    # DX Anatomy Imaged: a chest is unpaired anatomy as a whole.
    ds.ImageLaterality = "U"
    ds.AnatomicRegionSequence = Sequence([_code_item(*_CHEST_CODE)])

    # DX Positioning and X-Ray Generation.
    ds.KVP = geometry.kvp
    ds.ExposureTime = 12 if spec.view_position is ViewPosition.PA else 20
    ds.XRayTubeCurrent = 250
    ds.DistanceSourceToDetector = geometry.source_to_detector_mm
    ds.DistanceSourceToPatient = geometry.source_to_patient_mm
    ds.EstimatedRadiographicMagnificationFactor = round(geometry.magnification, 4)
    ds.PositionerType = "COLUMN"  # mobile units hold the tube on a column too
    ds.ViewPosition = spec.view_position.value
    ds.ViewCodeSequence = Sequence([_code_item(*geometry.view_code)])
    ds.ViewCodeSequence[0].ViewModifierCodeSequence = Sequence()
    ds.PatientOrientation = list(geometry.patient_orientation)

    # DX Detector: a flat-panel scintillator; Pixel Spacing only where the geometry is known.
    ds.DetectorType = "SCINTILLATOR"
    ds.DetectorConfiguration = "AREA"
    ds.ImagerPixelSpacing = [IMAGER_PIXEL_SPACING_MM, IMAGER_PIXEL_SPACING_MM]
    if geometry.calibrated:
        spacing = round(IMAGER_PIXEL_SPACING_MM / geometry.magnification, 4)
        ds.PixelSpacing = [spacing, spacing]
        ds.PixelSpacingCalibrationType = "GEOMETRY"
        ds.PixelSpacingCalibrationDescription = "Corrected for the estimated radiographic magnification factor"

    # DX Image.
    ds.PixelIntensityRelationship = "LOG"
    ds.PixelIntensityRelationshipSign = -1  # higher values: less X-ray reached the detector
    ds.RescaleIntercept = 0
    ds.RescaleSlope = 1
    ds.RescaleType = "US"
    ds.PresentationLUTShape = "IDENTITY"
    ds.LossyImageCompression = "00"
    ds.BurnedInAnnotation = "NO"
    ds.WindowCenter = 2048
    ds.WindowWidth = 4096
    ds.WindowCenterWidthExplanation = "FULL RANGE"
    ds.AcquisitionContextSequence = Sequence()
    ds.PixelData = chest_pixels(spec.rows, spec.columns, spec.view_position, spec.seed).tobytes()
    return ds


def write_dataset(ds: Dataset, path: Path) -> Path:
    """Write a dataset as a Part 10 file at path, creating its folder; return path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    dcmwrite(path, ds, enforce_file_format=True)
    return path


def write_study(spec: SyntheticStudy, out_dir: Path) -> Path:
    """Write the study's one DX image to out_dir/<label>.dcm and return that path."""
    return write_dataset(dx_dataset(spec), out_dir / f"{spec.label}.dcm")


def write_sample_studies(out_dir: Path, rows: int = 2500, columns: int = 2000) -> list[Path]:
    """Write the bundled sample studies (SAMPLE_STUDIES) at the given size; return their paths."""
    return [
        write_study(dataclasses.replace(spec, rows=rows, columns=columns), out_dir) for spec in SAMPLE_STUDIES
    ]
