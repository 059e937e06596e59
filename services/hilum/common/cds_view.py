"""The precomputed CDS result per patient: written to Redis by reporting, read by the CDS Hooks service.

Keys carry no PHI: the patient id is hashed under the reference key ("hilum:cds:patient:<HMAC-SHA256 hex>"). Each
key keeps the view of the patient's most recent study; a late report for an older study never replaces it.
"""

from __future__ import annotations

from datetime import UTC, date, time

import redis
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from hilum.common.logs import keyed_digest
from hilum.common.reported_findings import ChangeSincePrior, DevicePosition, FindingStatus, ReportedFinding

KEY_PREFIX = "hilum:cds:patient:"

# Atomic "replace only if not older": compares fixed-width rank strings, so the check and the write
# cannot interleave with a concurrent publish for the same patient.
_WRITE_IF_NEWER = """
local current = redis.call('HGET', KEYS[1], 'rank')
if current and current > ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1], 'rank', ARGV[1], 'view', ARGV[2])
return 1
"""

# Removes the patient's view only while it is still the withdrawn report's (a later study's view stays).
_REMOVE_IF_REPORT = """
local raw = redis.call('HGET', KEYS[1], 'view')
if raw and cjson.decode(raw)['diagnostic_report_id'] == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""


class CdsFinding(BaseModel):
    """A reported finding: Hilum code, display, status, probability in [0, 1], change (None: no prior compared)."""

    model_config = ConfigDict(frozen=True)

    code: str = Field(min_length=1)
    display: str = Field(min_length=1)
    # Views stored before findings carried a status held present findings only.
    status: FindingStatus = FindingStatus.PRESENT
    probability: float = Field(ge=0.0, le=1.0)
    change: ChangeSincePrior | None = None

    @classmethod
    def of(cls, finding: ReportedFinding) -> CdsFinding:
        """The CDS form of a reported finding (its display names the side when one is known)."""
        return cls(code=finding.code, display=finding.label, status=finding.status,
                   probability=finding.probability, change=finding.change)


class CdsDevice(BaseModel):
    """A reported tube or line: its code ("device:ett"), name, placement call (None: no call was made), tip distance
    in mm from its landmark (None: not measured), and the report's sentence on it."""

    model_config = ConfigDict(frozen=True)

    code: str = Field(min_length=1)
    display: str = Field(min_length=1)
    position: DevicePosition | None = None
    tip_distance_mm: float | None = None
    landmark: str | None = None
    text: str = Field(min_length=1)


class CdsView(BaseModel):
    """What the CDS service shows for a patient: the latest study's impression, reported findings, tubes and lines.

    findings: the study's ReportedFindings in report order (present, uncertain, resolved).
    """

    model_config = ConfigDict(frozen=True)

    patient_id: str = Field(min_length=1)  # DICOM PatientID (PHI: only ever stored hashed in keys)
    # The identifier system the PatientID belongs to (HILUM_FHIR__PATIENT_IDENTIFIER_SYSTEM): a patient
    # is found by system and value together, never by the value alone.
    patient_system: str = Field(min_length=1)
    study_instance_uid: str = Field(min_length=1)
    study_date: date
    study_time: time | None = None  # DICOM StudyTime, local wall clock; orders studies within a day
    impression: str
    findings: list[CdsFinding] = Field(default_factory=list)
    devices: list[CdsDevice] = Field(default_factory=list)  # the study's tubes and lines (views stored before: none)
    # The compared prior's study date; None when no prior was compared (or its date is unknown).
    prior_study_date: date | None = None
    critical: bool = False
    demo_weights: bool
    model_name: str = Field(min_length=1)
    model_version: str = Field(min_length=1)
    diagnostic_report_id: str = Field(min_length=1)
    published_at: AwareDatetime
    # The model version of the study's earlier result this one supersedes (a reprocessed study); None: the first.
    amends_model_version: str | None = None

    def rank(self) -> str:
        """Fixed-width sort key: study date, study time, then publication instant (UTC)."""
        study_time = self.study_time.strftime("%H%M%S%f") if self.study_time else "0" * 12
        published = self.published_at.astimezone(UTC).strftime("%Y%m%d%H%M%S%f")
        return f"{self.study_date.strftime('%Y%m%d')}{study_time}{published}"


def patient_key(system: str, patient_id: str) -> str:
    """The Redis key of a patient's view: prefix + the keyed digest (logs.keyed_digest) of "system|value": no PHI in
    the key, and no guessed MRN can be tested against it without the reference key; the same MRN value in two
    identifier systems is two patients."""
    return KEY_PREFIX + keyed_digest(f"{system}|{patient_id}")


def write_view(client: redis.Redis, view: CdsView) -> bool:
    """Store `view` unless the patient already has one of a later study; True when it was stored."""
    key = patient_key(view.patient_system, view.patient_id)
    return bool(client.eval(_WRITE_IF_NEWER, 1, key, view.rank(), view.model_dump_json()))


def withdraw_view(client: redis.Redis, system: str, patient_id: str, diagnostic_report_id: str) -> bool:
    """Remove the patient's view if it shows this (cancelled) report, so no card cites it; True when removed."""
    return bool(client.eval(_REMOVE_IF_REPORT, 1, patient_key(system, patient_id), diagnostic_report_id))


def read_latest(client: redis.Redis, system: str, patient_id: str) -> CdsView | None:
    """The view of the latest study of the patient with this identifier (system and value), or None when
    Hilum has published nothing for them."""
    raw = client.hget(patient_key(system, patient_id), "view")
    if raw is None:
        return None
    return CdsView.model_validate_json(raw)
