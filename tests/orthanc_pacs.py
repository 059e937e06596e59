"""A real Orthanc PACS holding the bundled sample studies (small), a CT-only study and a "mixed" study with a DX
and a CT instance: what the pull door, the PACS clients and the priors stage's PACS source are tested against."""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path

import pydicom
from pydicom.uid import generate_uid

from hilum.common.dicom.pacs_client import DimseClient
from hilum.runtime.orthanc import DicomModality, OrthancServer
from hilum.runtime.ports import free_port
from hilum.samples.dicom_files import write_sample_studies, write_study
from hilum.samples.rejectable_inputs import write_rejectable_inputs
from hilum.samples.sample_studies import SAMPLE_STUDIES

HILUM_AE = "HILUM"
PACS_AE = "TESTPACS"


@dataclasses.dataclass(frozen=True)
class Pacs:
    """The Orthanc, what it holds, and the port Hilum's DICOM door listens on for C-MOVE."""

    server: OrthancServer
    samples: dict[str, bytes]  # Study Instance UID -> the Part 10 file uploaded
    dates: dict[str, date]
    ct_only_uid: str
    mixed_uid: str
    mixed_dx: bytes
    scp_port: int

    @property
    def chest_uids(self) -> set[str]:
        return {*self.samples, self.mixed_uid}

    def dimse(self, calling_ae_title: str = HILUM_AE) -> DimseClient:
        return DimseClient(PACS_AE, "127.0.0.1", self.server.dicom_port, calling_ae_title, timeout_s=10.0)


def _mixed_study(out: Path, ct_file: Path) -> tuple[str, bytes, bytes]:
    """A study holding a DX image and a CT image of the same patient: (its UID, the DX file, the CT file)."""
    spec = dataclasses.replace(SAMPLE_STUDIES[2], seed=777, label="mixed", rows=160, columns=128,
                               study_started=datetime(2025, 3, 1, 8, 0))
    dx = write_study(spec, out)
    ct = pydicom.dcmread(ct_file)
    ct.StudyInstanceUID = spec.study_instance_uid
    ct.StudyDate = spec.study_started.strftime("%Y%m%d")
    for keyword in ("PatientID", "PatientName", "PatientBirthDate", "PatientSex", "IssuerOfPatientID"):
        setattr(ct, keyword, getattr(pydicom.dcmread(dx), keyword))
    ct.SeriesInstanceUID = generate_uid()
    ct.SOPInstanceUID = ct.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    buffer = io.BytesIO()
    ct.save_as(buffer)
    return spec.study_instance_uid, dx.read_bytes(), buffer.getvalue()


@contextmanager
def sample_pacs(root: Path) -> Iterator[Pacs]:
    """An Orthanc under root that knows HILUM_AE (at a free port, for C-MOVE), loaded with the studies above."""
    scp_port = free_port()
    hilum = DicomModality(HILUM_AE, "127.0.0.1", scp_port)
    with OrthancServer(root / "orthanc", ae_title=PACS_AE, modalities={"hilum": hilum}) as server:
        samples, dates = {}, {}
        for path in write_sample_studies(root / "samples", rows=160, columns=128):
            header = pydicom.dcmread(path, stop_before_pixels=True)
            samples[header.StudyInstanceUID] = path.read_bytes()
            dates[header.StudyInstanceUID] = datetime.strptime(header.StudyDate, "%Y%m%d").date()
        ct_file = write_rejectable_inputs(root / "rejectable")["ct_image"]
        mixed_uid, mixed_dx, mixed_ct = _mixed_study(root / "mixed", ct_file)
        for content in [*samples.values(), ct_file.read_bytes(), mixed_dx, mixed_ct]:
            server.upload(content)
        yield Pacs(server, samples, dates, pydicom.dcmread(ct_file).StudyInstanceUID, mixed_uid, mixed_dx, scp_port)
