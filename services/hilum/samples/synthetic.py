"""Synthetic chest radiographs: fictional DX studies with a chest-like picture, written as DICOM Part 10.

They let Hilum be demonstrated and tested end to end without any patient data. Every file is
deterministic in its seed and says plainly (Image Comments) that it shows no patient.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from pathlib import Path

import numpy as np
import numpy.typing as npt
from pydicom import dcmwrite
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import UID, CTImageStorage, DigitalXRayImageStorageForPresentation, ExplicitVRLittleEndian

# UIDs are "2.25." + the integer of a name-based (version 5) UUID (PS3.5 B.2): no registered org
# root is needed, and the same seed and role always give the same UID.
UID_ROOT = "2.25"
_UID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:hilum:samples:synthetic")
_IMPLEMENTATION_VERSION = "HILUM_SYNTH_01"
MANUFACTURER = "Hilum synthetic"
ISSUER = "HILUM-SYNTHETIC"

_BITS_STORED = 12
_MAX_VALUE = (1 << _BITS_STORED) - 1
IMAGER_PIXEL_SPACING_MM = 0.139
_STRIP_ROWS = 32


class ViewPosition(StrEnum):
    """DICOM View Position (0018,5101) of a chest radiograph."""

    PA = "PA"
    AP = "AP"
    LL = "LL"


@dataclass(frozen=True)
class _Geometry:
    """Acquisition geometry of one view: source distances (mm), tube voltage, orientation, view code."""

    description: str
    source_to_detector_mm: float
    source_to_patient_mm: float
    kvp: float
    patient_orientation: tuple[str, str]  # direction of increasing column, then of increasing row
    view_code: tuple[str, str]  # SNOMED CT code value and meaning (CID 4010, DX View)
    calibrated: bool  # whether Pixel Spacing is given, corrected for the magnification factor


_GEOMETRY = {
    ViewPosition.PA: _Geometry(
        description="XR CHEST PA",
        source_to_detector_mm=1800.0,
        source_to_patient_mm=1650.0,
        kvp=125.0,
        patient_orientation=("L", "F"),
        view_code=("272479007", "postero-anterior"),
        calibrated=True,
    ),
    # A bedside film: short distance, low tube voltage, geometry too uncertain to calibrate.
    ViewPosition.AP: _Geometry(
        description="XR CHEST AP PORTABLE",
        source_to_detector_mm=1000.0,
        source_to_patient_mm=820.0,
        kvp=90.0,
        patient_orientation=("L", "F"),
        view_code=("399348003", "antero-posterior"),
        calibrated=False,
    ),
    ViewPosition.LL: _Geometry(
        description="XR CHEST LATERAL",
        source_to_detector_mm=1800.0,
        source_to_patient_mm=1620.0,
        kvp=125.0,
        patient_orientation=("P", "F"),
        view_code=("399173006", "left lateral"),
        calibrated=True,
    ),
}
_CHEST_CODE = ("816094009", "Chest")  # SNOMED CT, CID 4009 (DX Anatomy Imaged)


@dataclass(frozen=True)
class SyntheticStudy:
    """One fictional single-image chest DX study: who, when, which view, how large, and its seed.

    label: a file-name-safe name for the study that carries no patient data, e.g. "patient-a-current".
    """

    patient_id: str
    patient_name: str  # DICOM PN, e.g. "SYNTHETIC^ADA"
    birth_date: date
    sex: str  # "M", "F" or "O"
    study_started: datetime
    view_position: ViewPosition
    seed: int
    label: str
    rows: int = 2500
    columns: int = 2000
    issuer: str = ISSUER

    @property
    def study_description(self) -> str:
        """Study Description for the view, e.g. "XR CHEST PA"."""
        return _GEOMETRY[self.view_position].description

    @property
    def accession_number(self) -> str:
        """A deterministic 11-character accession number derived from the seed."""
        return f"SYN{uuid.uuid5(_UID_NAMESPACE, f'{self.seed}:accession').int % 10**8:08d}"

    @property
    def study_instance_uid(self) -> str:
        """Study Instance UID, deterministic in the seed."""
        return make_uid(self.seed, "study")

    @property
    def series_instance_uid(self) -> str:
        """Series Instance UID, deterministic in the seed."""
        return make_uid(self.seed, "series")

    @property
    def sop_instance_uid(self) -> str:
        """SOP Instance UID of the study's one image, deterministic in the seed."""
        return make_uid(self.seed, "instance")


SAMPLE_STUDIES: tuple[SyntheticStudy, ...] = (
    # Patient A: a prior PA study and the current one thirteen months later.
    SyntheticStudy(
        patient_id="SYN-000101",
        patient_name="SYNTHETIC^ADA",
        birth_date=date(1956, 3, 14),
        sex="F",
        study_started=datetime(2024, 1, 22, 9, 41, 7),
        view_position=ViewPosition.PA,
        seed=101,
        label="patient-a-prior",
    ),
    SyntheticStudy(
        patient_id="SYN-000101",
        patient_name="SYNTHETIC^ADA",
        birth_date=date(1956, 3, 14),
        sex="F",
        study_started=datetime(2025, 2, 18, 10, 5, 32),
        view_position=ViewPosition.PA,
        seed=102,
        label="patient-a-current",
    ),
    # Patient B: a single outpatient PA study.
    SyntheticStudy(
        patient_id="SYN-000202",
        patient_name="SYNTHETIC^BORIS",
        birth_date=date(1971, 11, 2),
        sex="M",
        study_started=datetime(2025, 2, 18, 11, 17, 0),
        view_position=ViewPosition.PA,
        seed=201,
        label="patient-b-current",
    ),
    # Patient C: a portable AP study, as taken at the bedside.
    SyntheticStudy(
        patient_id="SYN-000303",
        patient_name="SYNTHETIC^CLARA",
        birth_date=date(1948, 6, 30),
        sex="F",
        study_started=datetime(2025, 2, 18, 3, 52, 45),
        view_position=ViewPosition.AP,
        seed=301,
        label="patient-c-portable",
    ),
)

# The patient of the rejectable inputs: a CT of the chest, and a DX image that lost its pixels.
_CT_STUDY = SyntheticStudy(
    patient_id="SYN-000909",
    patient_name="SYNTHETIC^DMITRI",
    birth_date=date(1965, 8, 9),
    sex="M",
    study_started=datetime(2025, 2, 18, 14, 0, 0),
    view_position=ViewPosition.PA,
    seed=909,
    label="ct-image",
    rows=64,
    columns=64,
)
_NO_PIXELS_STUDY = dataclasses.replace(
    _CT_STUDY, study_started=datetime(2025, 2, 18, 14, 30, 0), seed=910, label="no-pixel-data"
)


def make_uid(seed: int, role: str) -> str:
    """A UID under 2.25 for (seed, role), e.g. role "study"; the same arguments give the same UID."""
    return f"{UID_ROOT}.{uuid.uuid5(_UID_NAMESPACE, f'{seed}:{role}').int}"


# ---------------------------------------------------------------------------------------------
# Pixels


def _soft(value: npt.NDArray[np.float32], width: float) -> npt.NDArray[np.float32]:
    """A soft-edged mask: 0 where value <= 0, 1 where value >= width, a linear ramp between."""
    mask: npt.NDArray[np.float32] = np.clip(value * np.float32(1.0 / width), 0.0, 1.0)
    return mask


def _f(value: float) -> np.float32:
    """A float32 scalar, so that arithmetic on float32 arrays stays float32."""
    return np.float32(value)


def chest_pixels(rows: int, columns: int, view: ViewPosition, seed: int) -> npt.NDArray[np.uint16]:
    """A chest-radiograph-like picture: uint16 (rows, columns), values in [0, 4095], bone bright.

    Densities add up as on a log-processed radiograph: air, soft tissue, darker lungs, bright
    mediastinum, spine, ribs and clavicles, and Gaussian detector noise. Deterministic in the seed.
    """
    rng = np.random.default_rng(seed)
    jitter = [float(v) for v in rng.uniform(-1.0, 1.0, size=8)]
    noise_sigma = _f(0.018 if view is ViewPosition.AP else 0.012)
    # Coordinates in image heights: y from 0 (top) to 1 down a column, x centred along a row.
    # Both stay one-dimensional ((rows, 1) and (1, columns)) until a shape needs both.
    y = (np.arange(rows, dtype=np.float32) / _f(rows))[:, None]
    x = ((np.arange(columns, dtype=np.float32) - _f(columns / 2)) / _f(rows))[None, :]
    x = x + _f(0.008 * jitter[0])  # the patient is never perfectly centred

    pixels = np.empty((rows, columns), dtype=np.uint16)
    # Drawn in strips of rows: the intermediate arrays stay small, which makes drawing fast.
    for start in range(0, rows, _STRIP_ROWS):
        strip = slice(start, start + _STRIP_ROWS)
        if view is ViewPosition.LL:
            image = _lateral(x, y[strip], jitter)
        else:
            image = _frontal(x, y[strip], jitter, portable=view is ViewPosition.AP)
        image += rng.standard_normal(image.shape, dtype=np.float32) * noise_sigma
        np.clip(image, 0.0, 1.0, out=image)
        pixels[strip] = np.rint(image * _f(_MAX_VALUE))
    return pixels


def _frontal(
    x: npt.NDArray[np.float32], y: npt.NDArray[np.float32], jitter: list[float], portable: bool
) -> npt.NDArray[np.float32]:
    """Density (float32, about 0 to 1) of a frontal PA or AP chest; image left is the patient's right."""
    ax = np.abs(x)
    # Torso with rounded shoulders, thicker (denser) in the midline; a neck above it.
    torso = _soft(_f(1.0) - (x / _f(0.37)) ** 6 - ((y - _f(0.64)) / _f(0.6)) ** 6, 0.2)
    thickness = _f(0.3) + _f(0.14) * np.sqrt(np.clip(_f(1.0) - (x / _f(0.37)) ** 2, 0.0, 1.0))
    neck = _soft(_f(0.075) - ax, 0.02) * _soft(_f(0.2) - y, 0.05)
    image: npt.NDArray[np.float32] = _f(0.05) + thickness * np.maximum(torso, neck)

    # Hemidiaphragm domes, highest at mid-lung; the right (image left) one sits a little higher,
    # and lung volumes are lower on a supine portable film.
    lift = 0.05 if portable else 0.0
    dome = (
        np.where(x < 0, _f(0.655 - lift), _f(0.675 - lift))
        + _f(0.01 * jitter[1])
        + _f(3.0) * (ax - _f(0.14)) ** 2
    )
    below = _soft(y - dome, 0.012)
    image += _f(0.12) * below * torso  # liver and bowel below the diaphragm

    # Lungs narrow at the apex and widen towards the costophrenic angles; the domes cut them below.
    widening = _f(0.6) + _f(0.4) * np.clip((y - _f(0.15)) / _f(0.4), 0.0, 1.0)
    half_width = _f(0.115 + 0.006 * jitter[3]) * widening
    cy, half_height = _f(0.5), _f(0.36 + 0.01 * jitter[2])
    lung_centre = _f(0.15) + _f(0.04) * (widening - _f(1.0))
    lungs = _soft(_f(1.0) - ((ax - lung_centre) / half_width) ** 2 - ((y - cy) / half_height) ** 4, 0.35)
    lungs *= _f(1.0) - below

    # Heart, leaning to the patient's left (image right), larger on a portable AP; the mediastinum.
    heart_width = (0.15 if portable else 0.13) + 0.008 * jitter[4]
    heart_y = 0.625 - lift  # its lower part lies behind the diaphragm, as on a real film
    heart = _soft(
        _f(1.0) - ((x - _f(0.045)) / _f(heart_width)) ** 2 - ((y - _f(heart_y)) / _f(0.12)) ** 2, 0.3
    )
    mediastinum = np.maximum(_soft(_f(0.065) - ax, 0.03) * _soft(y - _f(0.12), 0.05), heart)

    # Vessels branch out from the hila: denser near them, a fine texture everywhere in the lungs.
    hila = np.exp(-(((ax - _f(0.07)) / _f(0.07)) ** 2)) * np.exp(-(((y - _f(0.47)) / _f(0.12)) ** 2))
    texture = np.cos(_f(95.0) * x + _f(jitter[6])) * np.cos(_f(70.0) * y + _f(jitter[7]))
    lung_density = _f(0.3) - _f(0.15) * hila - _f(0.025) * texture - _f(0.05) * (y - _f(0.3))
    image -= lungs * lung_density * (_f(1.0) - _f(0.9) * mediastinum)
    image += _f(0.2) * mediastinum * (_f(1.0) - below)

    # Spine with vertebral bodies, seen through the mediastinum.
    vertebrae = _f(0.75) + _f(0.25) * np.cos(_f(2 * math.pi / 0.036) * y) ** 2
    image += _f(0.12) * (_soft(_f(0.026) - ax, 0.008) * vertebrae * _soft(y - _f(0.05), 0.05))

    # Ribs over the thorax: posterior arcs falling away laterally, fainter anterior ones falling medially.
    thorax = _soft(_f(0.3) - ax, 0.03) * _soft(y - _f(0.13), 0.02) * _soft(ax - _f(0.03), 0.02)
    thorax = thorax * _soft(dome + _f(0.04) - y, 0.03)
    posterior = _bands(y, -_f(1.6) * (ax - _f(0.05)) ** 2, 0.06)
    anterior = _bands(y, _f(0.5) * ax, 0.07)
    image += _f(0.1) * (posterior + _f(0.4) * anterior) * thorax

    # Clavicles, sloping up from the sternal notch towards the shoulders.
    clavicle_line = _f(0.16 + 0.005 * jitter[5]) - _f(0.2) * (ax - _f(0.03))
    clavicles = _soft(_f(0.009) - np.abs(y - clavicle_line), 0.004)
    image += _f(0.16) * clavicles * (_soft(_f(0.25) - ax, 0.02) * _soft(ax - _f(0.02), 0.01))
    if portable:
        # Scapulae project over the lateral lung fields when the arms cannot be moved away.
        scapulae = _soft(_f(1.0) - ((ax - _f(0.27)) / _f(0.06)) ** 2 - ((y - _f(0.3)) / _f(0.14)) ** 2, 0.5)
        image += _f(0.06) * scapulae * torso
    return image


def _bands(
    y: npt.NDArray[np.float32], shift: npt.NDArray[np.float32], period: float
) -> npt.NDArray[np.float32]:
    """Thin bright bands along the curves y + shift(x) = k * period, as a (rows, columns) array in [0, 1].

    cos(w(y + s)) is expanded as cos(wy)cos(ws) - sin(wy)sin(ws), so only one-dimensional
    cosines are evaluated; that keeps rib drawing fast on full-size images.
    """
    w = _f(2 * math.pi / period)
    wave: npt.NDArray[np.float32] = np.cos(w * y) * np.cos(w * shift) - np.sin(w * y) * np.sin(w * shift)
    np.clip(wave, 0.0, 1.0, out=wave)
    np.square(wave, out=wave)
    np.square(wave, out=wave)
    return wave


def _lateral(
    x: npt.NDArray[np.float32], y: npt.NDArray[np.float32], jitter: list[float]
) -> npt.NDArray[np.float32]:
    """Density (float32, about 0 to 1) of a left lateral chest; anterior is image left, posterior right."""
    torso = _soft(_f(1.0) - (x / _f(0.29)) ** 6 - ((y - _f(0.6)) / _f(0.58)) ** 6, 0.2)
    image: npt.NDArray[np.float32] = _f(0.05) + _f(0.47) * torso
    dome = _f(0.66 + 0.01 * jitter[1]) + _f(1.5) * x**2 - _f(0.1) * x
    below = _soft(y - dome, 0.012)
    image += _f(0.1) * below * torso
    lung = _soft(
        _f(1.0) - ((x - _f(0.02)) / _f(0.21)) ** 2 - ((y - _f(0.47)) / _f(0.33 + 0.01 * jitter[2])) ** 4, 0.3
    )
    lung *= _f(1.0) - below
    heart = _soft(
        _f(1.0) - ((x + _f(0.08)) / _f(0.12 + 0.006 * jitter[4])) ** 2 - ((y - _f(0.62)) / _f(0.12)) ** 2, 0.4
    )
    texture = np.cos(_f(80.0) * x + _f(jitter[6])) * np.cos(_f(70.0) * y + _f(jitter[7]))
    image -= lung * (_f(0.25) - _f(0.02) * texture) * (_f(1.0) - _f(0.7) * heart)
    image += _f(0.1) * heart
    # Thoracic spine posteriorly, with vertebral bodies; the sternum anteriorly.
    vertebrae = _f(0.6) + _f(0.4) * np.cos(_f(2 * math.pi / 0.036) * y) ** 2
    spine = _soft(_f(0.03) - np.abs(x - _f(0.19) + _f(0.06) * y), 0.012)
    image += _f(0.1) * spine * vertebrae * torso
    sternum = _soft(_f(0.008) - np.abs(x + _f(0.22) - _f(0.05) * y), 0.004)
    image += _f(0.08) * sternum * (_soft(y - _f(0.18), 0.02) * _soft(_f(0.55) - y, 0.02))
    image += _f(0.05) * _bands(y, _f(0.35) * x, 0.06) * lung
    return image


# ---------------------------------------------------------------------------------------------
# DICOM


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


def _common(spec: SyntheticStudy, sop_class_uid: str, sop_instance_uid: str, modality: str) -> Dataset:
    """Patient, General Study, General Series, General Equipment and SOP Common attributes."""
    ds = Dataset()
    ds.file_meta = _file_meta(sop_class_uid, sop_instance_uid)
    started = spec.study_started
    study_date, study_time = started.strftime("%Y%m%d"), started.strftime("%H%M%S")
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.InstanceCreationDate = study_date
    ds.InstanceCreationTime = study_time
    ds.SOPClassUID = sop_class_uid
    ds.SOPInstanceUID = sop_instance_uid
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
    return ds


def _dx_dataset(spec: SyntheticStudy) -> Dataset:
    """The DX (for presentation) dataset for a study, pixel data included."""
    geometry = _GEOMETRY[spec.view_position]
    ds = _common(spec, DigitalXRayImageStorageForPresentation, spec.sop_instance_uid, "DX")
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.StudyDescription = spec.study_description
    ds.SeriesDescription = f"CHEST {spec.view_position.value}"
    ds.PresentationIntentType = "FOR PRESENTATION"

    # DX Anatomy Imaged: a chest is unpaired anatomy as a whole.
    ds.ImageLaterality = "U"
    ds.AnatomicRegionSequence = Sequence([_code_item(*_CHEST_CODE)])

    # DX Positioning and X-Ray Generation.
    magnification = geometry.source_to_detector_mm / geometry.source_to_patient_mm
    ds.KVP = geometry.kvp
    ds.ExposureTime = 12 if spec.view_position is ViewPosition.PA else 20
    ds.XRayTubeCurrent = 250
    ds.DistanceSourceToDetector = geometry.source_to_detector_mm
    ds.DistanceSourceToPatient = geometry.source_to_patient_mm
    ds.EstimatedRadiographicMagnificationFactor = round(magnification, 4)
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
        spacing = round(IMAGER_PIXEL_SPACING_MM / magnification, 4)
        ds.PixelSpacing = [spacing, spacing]
        ds.PixelSpacingCalibrationType = "GEOMETRY"
        ds.PixelSpacingCalibrationDescription = (
            "Corrected for the estimated radiographic magnification factor"
        )

    # DX Image and Image Pixel.
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = spec.rows
    ds.Columns = spec.columns
    ds.BitsAllocated = 16
    ds.BitsStored = _BITS_STORED
    ds.HighBit = _BITS_STORED - 1
    ds.PixelRepresentation = 0
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


def _write(ds: Dataset, path: Path) -> Path:
    """Write a dataset as a Part 10 file, creating the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    dcmwrite(path, ds, enforce_file_format=True)
    return path


def write_study(spec: SyntheticStudy, out_dir: Path) -> Path:
    """Write the study's one DX image to out_dir/<label>.dcm and return that path."""
    return _write(_dx_dataset(spec), out_dir / f"{spec.label}.dcm")


def write_sample_studies(out_dir: Path, rows: int = 2500, columns: int = 2000) -> list[Path]:
    """Write the bundled sample studies (SAMPLE_STUDIES) at the given size; return their paths."""
    return [
        write_study(dataclasses.replace(spec, rows=rows, columns=columns), out_dir) for spec in SAMPLE_STUDIES
    ]


def _ct_dataset(spec: SyntheticStudy) -> Dataset:
    """A small valid CT Image Storage object of the chest: a water disc in air, in Hounsfield units."""
    ds = _common(spec, CTImageStorage, spec.sop_instance_uid, "CT")
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.StudyDescription = "CT CHEST"
    ds.PatientPosition = "HFS"
    ds.FrameOfReferenceUID = make_uid(spec.seed, "frame-of-reference")
    ds.PositionReferenceIndicator = ""
    ds.KVP = 120
    ds.SliceThickness = 5
    ds.PixelSpacing = [6, 6]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.ImagePositionPatient = [-192, -192, -100]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = spec.rows
    ds.Columns = spec.columns
    ds.BitsAllocated = 16
    ds.BitsStored = _BITS_STORED
    ds.HighBit = _BITS_STORED - 1
    ds.PixelRepresentation = 0
    ds.RescaleIntercept = -1024
    ds.RescaleSlope = 1
    ds.WindowCenter = 40
    ds.WindowWidth = 400
    yy, xx = np.mgrid[0 : spec.rows, 0 : spec.columns]
    radius = 0.4 * min(spec.rows, spec.columns)
    disc = (yy - spec.rows / 2) ** 2 + (xx - spec.columns / 2) ** 2 < radius**2
    ds.PixelData = np.where(disc, 1024, 24).astype(np.uint16).tobytes()  # stored 1024 is 0 HU
    return ds


def write_rejectable_inputs(out_dir: Path) -> dict[str, Path]:
    """Write inputs ingestion must reject; keys "not_dicom", "ct_image" and "no_pixel_data".

    not_dicom: a text file named .dcm; ct_image: a valid CT Image Storage object of the chest;
    no_pixel_data: a DX chest object without Pixel Data.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    not_dicom = out_dir / "not-dicom.dcm"
    not_dicom.write_text("This is a text file with a .dcm name, not a DICOM object.\n", encoding="ascii")
    no_pixels = _dx_dataset(_NO_PIXELS_STUDY)
    del no_pixels.PixelData
    return {
        "not_dicom": not_dicom,
        "ct_image": _write(_ct_dataset(_CT_STUDY), out_dir / f"{_CT_STUDY.label}.dcm"),
        "no_pixel_data": _write(no_pixels, out_dir / f"{_NO_PIXELS_STUDY.label}.dcm"),
    }


def main(argv: list[str] | None = None) -> int:
    """Command line: write the sample studies to OUT_DIR and print their paths."""
    parser = argparse.ArgumentParser(
        prog="python -m hilum.samples.synthetic", description="Write Hilum's synthetic sample chest studies."
    )
    parser.add_argument("out_dir", type=Path, metavar="OUT_DIR")
    parser.add_argument("--rows", type=int, default=2500)
    parser.add_argument("--columns", type=int, default=2000)
    args = parser.parse_args(argv)
    for path in write_sample_studies(args.out_dir, rows=args.rows, columns=args.columns):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
