"""HL7 v2.5.1 ORU^R01 for one study's preliminary chest radiograph report, and the checks it must pass.

The message carries the draft narrative (one TX OBX per line) and one coded CWE OBX per reported finding,
for integration engines that take results over HL7 v2 rather than FHIR.
"""

from __future__ import annotations

import re
import tempfile
import textwrap
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from pathlib import Path

from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.exceptions import HL7apyException
from hl7apy.parser import parse_message
from hl7apy.validation import Validator

from hilum.common.fhir.diagnostic_report import exam_code
from hilum.common.reported_findings import FindingStatus, ReportedFinding, ReportedFindings
from hilum.common.study import StudyInfo
from hilum.common.wording import DEMO_NOTICE, DEMO_WARNING
from hilum.v1 import messages_pb2

HL7_VERSION = "2.5.1"
# The longest narrative line one OBX-5 carries (escaped): receivers and hl7apy hold a TX line to this.
MAX_TX_CHARS = 199
# Field, component, repetition, escape and subcomponent separators (MSH-1, MSH-2).
ENCODING_CHARACTERS = "^~\\&"
# The narrative holds non-ASCII text (the demo notice has an em dash).
CHARACTER_SET = "UNICODE UTF-8"
# Hilum's own code system for labels without a SNOMED CT concept and for finding status (HL7 table 0396: local).
HILUM_CODE_SYSTEM = "HILUM"
SNOMED_CODE_SYSTEM = "SCT"
LOINC_CODE_SYSTEM = "LN"

# LOINC report sections: the heading that opens each in the draft text, and the section's code.
_GENERAL_SECTION = ("18782-3", "Radiology Study observation (narrative)")
_SECTIONS = {
    "FINDINGS:": ("59776-5", "Procedure findings"),
    "IMPRESSION:": ("19005-8", "Radiology Imaging study [Impression] (narrative)"),
}
# OBX-3 of a coded finding says what is asserted about it, so a resolved finding never reads as present.
_FINDING_OBSERVATION = {
    FindingStatus.PRESENT: ("finding-present", "Finding present"),
    FindingStatus.UNCERTAIN: ("finding-uncertain", "Finding possible"),
    FindingStatus.RESOLVED: ("finding-resolved", "Finding resolved since prior"),
}
# DICOM Patient's Sex to HL7 table 0001.
_SEX = {"M": "M", "F": "F", "O": "O"}
# Characters that break a segment or an MLLP frame (CR, LF, 0x0B, 0x1C, ...): replaced by a space.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_ESCAPES = {"\\": "\\E\\", "|": "\\F\\", "^": "\\S\\", "&": "\\T\\", "~": "\\R\\"}
_ESCAPED = re.compile(r"[\\|^&~]")
# Warnings hl7apy raises that Hilum accepts: its copy of table 0125 (value type) lacks CWE, which v2.5.1 defines;
# and HILUM, Hilum's local code system, is by design not in table 0396.
_ACCEPTED_WARNINGS = re.compile(rf"Value (CWE not in table HL70125|{HILUM_CODE_SYSTEM} not in table HL70396)\b")


class ResultStatus(StrEnum):
    """OBR-25 / OBX-11 result status (HL7 tables 0123, 0085): preliminary, final, corrected, or cancelled
    (0123 "X": no results available, order cancelled; 0085 "X": results cannot be obtained).
    """

    PRELIMINARY = "P"
    FINAL = "F"
    CORRECTED = "C"
    CANCELLED = "X"


@dataclass(frozen=True)
class OruOptions:
    """Who sends the ORU to whom, its control id and status, and how patient identifiers are issued.

    control_id: MSH-10, chosen deterministically by the caller so a resent message keeps it.
    patient_id_authority: PID-3.4.1 namespace; "" uses the study's DICOM Issuer of Patient ID.
    patient_id_system: PID-3.4.2 universal id, "urn:oid:..." (type ISO) or another URI (type URI); "" for none.
    """

    sending_application: str
    sending_facility: str
    receiving_application: str
    receiving_facility: str
    control_id: str
    result_status: ResultStatus
    message_datetime: datetime
    patient_id_authority: str = ""
    patient_id_system: str = ""


def escape(value: str) -> str:
    """A free-text value made safe for an ER7 field: HL7 delimiters escaped, CR/LF and control characters blanked."""
    return _ESCAPED.sub(lambda m: _ESCAPES[m.group(0)], _CONTROL.sub(" ", value))


def _components(*values: str) -> str:
    """Escaped values joined as components, with trailing empty components dropped."""
    return "^".join(escape(v) for v in values).rstrip("^")


def _hl7_datetime(value: datetime | None) -> str:
    """An HL7 TS: YYYYMMDDHHMMSS, with the UTC offset when the datetime has one; "" when unknown."""
    if value is None:
        return ""
    return value.strftime("%Y%m%d%H%M%S%z")


def _hl7_date(value: date | None) -> str:
    """An HL7 DT: YYYYMMDD; "" when unknown."""
    return value.strftime("%Y%m%d") if value is not None else ""


def _segment(name: str, *fields: str) -> str:
    """One segment from already-encoded fields, trailing empty fields dropped."""
    return "|".join((name, *fields)).rstrip("|")


def _person_name(dicom_pn: str) -> str:
    """PID-5 XPN from a DICOM PN (family^given^middle^prefix^suffix; XPN puts suffix before prefix)."""
    alphabetic = dicom_pn.split("=", 1)[0]
    family, given, middle, prefix, suffix = ([*alphabetic.split("^"), "", "", "", "", ""])[:5]
    return _components(family.strip(), given.strip(), middle.strip(), suffix.strip(), prefix.strip())


def _assigning_authority(study: StudyInfo, options: OruOptions) -> str:
    """PID-3.4 HD as subcomponents: namespace & universal id & universal id type."""
    namespace = options.patient_id_authority or study.patient.issuer
    system = options.patient_id_system
    if system.startswith("urn:oid:"):
        universal, kind = system.removeprefix("urn:oid:"), "ISO"
    else:
        universal, kind = system, "URI" if system else ""
    return "&".join(escape(v) for v in (namespace, universal, kind)).rstrip("&")


def _msh(options: OruOptions) -> str:
    """MSH: ORU^R01^ORU_R01, v2.5.1, processing id P, UTF-8."""
    return _segment(
        "MSH",
        ENCODING_CHARACTERS,
        escape(options.sending_application),
        escape(options.sending_facility),
        escape(options.receiving_application),
        escape(options.receiving_facility),
        _hl7_datetime(options.message_datetime),
        "",
        "ORU^R01^ORU_R01",
        escape(options.control_id),
        "P",
        HL7_VERSION,
        "", "", "", "", "",
        CHARACTER_SET,
    )


def _pid(study: StudyInfo, options: OruOptions) -> str:
    """PID: MRN with assigning authority (PID-3), name (PID-5), birth date (PID-7), sex (PID-8)."""
    patient = study.patient
    mrn = "^".join((escape(patient.patient_id), "", "", _assigning_authority(study, options), "MR"))
    return _segment(
        "PID", "1", "", mrn, "", _person_name(patient.name), "", _hl7_date(patient.birth_date),
        _SEX.get(patient.sex.strip().upper(), "U"),
    )


def _filler_order_number(study: StudyInfo) -> str:
    """The accession number; a study without one is identified by its Study Instance UID instead."""
    return escape(study.accession_number or study.study_instance_uid)


def _orc(study: StudyInfo) -> str:
    """ORC: observations to follow (RE) for the placer's order, filled under the accession number."""
    return _segment("ORC", "RE", escape(study.placer_order_number), _filler_order_number(study))


def _obr(study: StudyInfo, options: OruOptions) -> str:
    """OBR: the chest radiograph exam (LOINC), when it was taken, when the result changed, RAD, status."""
    coding = (exam_code(study).coding or [])[0]
    fields = [""] * 25
    fields[0] = "1"
    fields[1] = escape(study.placer_order_number)
    fields[2] = _filler_order_number(study)
    fields[3] = _components(str(coding.code or ""), str(coding.display or ""), LOINC_CODE_SYSTEM)
    fields[6] = _hl7_datetime(study.started)
    fields[21] = _hl7_datetime(options.message_datetime)
    fields[23] = "RAD"
    fields[24] = options.result_status.value
    return _segment("OBR", *fields)


def _obx(set_id: int, value_type: str, observation: str, sub_id: str, value: str, abnormal: str,
         options: OruOptions, equipment: str = "") -> str:
    """One OBX; the caller encodes observation (OBX-3), value (OBX-5) and equipment (OBX-18)."""
    fields = [""] * 18
    fields[0] = str(set_id)
    fields[1] = value_type
    fields[2] = observation
    fields[3] = sub_id
    fields[4] = value
    fields[7] = abnormal
    fields[10] = options.result_status.value
    fields[17] = equipment
    return _segment("OBX", *fields)


def _fitting(line: str) -> list[str]:
    """The line in word-wrapped pieces whose escaped form fits one TX value (MAX_TX_CHARS)."""
    width = MAX_TX_CHARS
    while True:
        pieces = textwrap.wrap(line, width, break_long_words=True, break_on_hyphens=False) or [line]
        if all(len(escape(piece)) <= MAX_TX_CHARS for piece in pieces):
            return pieces
        width = width * 2 // 3


def narrative_lines(draft: messages_pb2.DraftReport, *, demo_weights: bool) -> list[str]:
    """The draft text's non-blank lines, long ones wrapped to fit a TX value; with demo weights the first is a
    demo notice (added if missing)."""
    lines = [piece for line in draft.text.splitlines() if line.strip() for piece in _fitting(line.strip())]
    if demo_weights and not (lines and lines[0].startswith("DEMO")):
        lines.insert(0, DEMO_NOTICE)
    return lines


def _narrative(lines: list[str], first_set_id: int, options: OruOptions) -> list[str]:
    """One TX OBX per line, coded with the LOINC section the line belongs to (general until FINDINGS)."""
    section = _GENERAL_SECTION
    segments = []
    for offset, line in enumerate(lines):
        section = next((s for heading, s in _SECTIONS.items() if line.startswith(heading)), section)
        observation = _components(*section, LOINC_CODE_SYSTEM)
        segments.append(_obx(first_set_id + offset, "TX", observation, "1", escape(line), "", options))
    return segments


def _finding_value(finding: ReportedFinding) -> str:
    """OBX-5 CWE: SNOMED CT with Hilum's code as the alternate, or Hilum's code alone."""
    display = finding.display or finding.code
    if finding.snomed_code:
        return _components(
            finding.snomed_code, display, SNOMED_CODE_SYSTEM, finding.code, display, HILUM_CODE_SYSTEM
        )
    return _components(finding.code, display, HILUM_CODE_SYSTEM)


def finding_note(finding: ReportedFinding) -> str:
    """The NTE after a finding's OBX: status, side, probability against threshold, change since prior."""
    parts = [f"Status: {finding.status.value}"]
    if finding.laterality.value != "unspecified":
        parts.append(f"laterality: {finding.laterality.value}")
    parts.append(f"probability {finding.probability:.2f} (threshold {finding.threshold:.2f})")
    if finding.change is not None:
        parts.append(f"change since prior: {finding.change.value}")
    return "; ".join(parts) + "."


def _findings(reported: ReportedFindings, first_set_id: int, options: OruOptions) -> list[str]:
    """One CWE OBX per reported finding, each followed by its NTE; OBX-18 names the algorithm."""
    segments = []
    for index, finding in enumerate(reported.findings):
        observation = _components(*_FINDING_OBSERVATION[finding.status], HILUM_CODE_SYSTEM)
        abnormal = "A" if finding.status == FindingStatus.PRESENT else ""
        equipment = _components(finding.model.name, finding.model.version)
        segments.append(_obx(
            first_set_id + index, "CWE", observation, str(index + 1), _finding_value(finding), abnormal, options,
            equipment,
        ))
        segments.append(_segment("NTE", "1", "L", escape(finding_note(finding))))
    return segments


def build_oru(
    study: StudyInfo, reported: ReportedFindings, draft: messages_pb2.DraftReport, options: OruOptions
) -> str:
    """The ORU^R01 ER7 message (segments joined by CR) for the study's draft report and reported findings.

    MSH, PID, ORC, OBR (+ a DEMO NTE with demo weights), one TX OBX per narrative line, then one CWE OBX
    (+ NTE) per finding. Deterministic: the same inputs give the same message.
    """
    demo = reported.model.demo_weights or draft.model.demo_weights
    segments = [_msh(options), _pid(study, options), _orc(study), _obr(study, options)]
    if demo:
        segments.append(_segment("NTE", "1", "L", escape(DEMO_WARNING)))
    lines = narrative_lines(draft, demo_weights=demo)
    segments += _narrative(lines, 1, options)
    segments += _findings(reported, len(lines) + 1, options)
    return "\r".join(segments)


def _fields(segment: str) -> list[str]:
    """A segment's fields indexed by HL7 position: [n] is SEG-n (MSH counts its field separator as MSH-1)."""
    parts = segment.split("|")
    return [parts[0], "|", *parts[1:]] if parts[0] == "MSH" else parts


def _field(fields: list[str], position: int) -> str:
    """SEG-position, "" when absent."""
    return fields[position] if position < len(fields) else ""


# Fields Hilum always fills (the first component at least): an ORU missing one is not sent.
_REQUIRED = {
    "MSH": (3, 7, 9, 10, 11, 12),
    "PID": (3, 5),
    "ORC": (1, 3),
    "OBR": (3, 4, 22, 24, 25),
    "OBX": (1, 2, 3, 5, 11),
}


def _hl7apy_problems(message: str) -> list[str]:
    """What hl7apy finds: parse errors (strict), then structure, datatype, table and length problems."""
    try:
        parsed = parse_message(message, validation_level=VALIDATION_LEVEL.STRICT, find_groups=True)
    except (HL7apyException, ValueError) as error:
        return [f"hl7apy cannot parse the message: {error}"]
    problems = []
    if parsed.version != HL7_VERSION:
        problems.append(f"version is {parsed.version}, expected {HL7_VERSION}")
    if parsed.name != "ORU_R01":
        problems.append(f"message structure is {parsed.name}, expected ORU_R01")
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "report.txt"
        try:
            Validator.validate(parsed, report_file=str(report))
        except HL7apyException:
            pass  # the report file lists every problem, not only the first one raised
        lines = report.read_text(encoding="utf-8").splitlines() if report.exists() else []
    problems += [line for line in lines if line.strip() and not _ACCEPTED_WARNINGS.search(line)]
    return problems


def _hilum_problems(message: str) -> list[str]:
    """Hilum's own rules: required fields, one PID and OBR, OBX set ids 1..n, every OBX-11 equal to OBR-25."""
    segments = [_fields(s) for s in message.split("\r") if s]
    if not segments or segments[0][0] != "MSH":
        return ["the message does not start with MSH"]
    problems = []
    for name in ("PID", "ORC", "OBR"):
        count = sum(1 for s in segments if s[0] == name)
        if count != 1:
            problems.append(f"{count} {name} segments, expected 1")
    for fields in segments:
        for position in _REQUIRED.get(fields[0], ()):
            if not _field(fields, position).split("^", 1)[0].strip():
                problems.append(f"{fields[0]}-{position} is empty")
    observations = [s for s in segments if s[0] == "OBX"]
    if not observations:
        problems.append("no OBX segments")
    set_ids = [_field(s, 1) for s in observations]
    if set_ids != [str(n) for n in range(1, len(observations) + 1)]:
        problems.append(f"OBX set ids are not consecutive from 1: {', '.join(set_ids)}")
    status = next((_field(s, 25) for s in segments if s[0] == "OBR"), "")
    if status and status not in {s.value for s in ResultStatus}:
        problems.append(f"OBR-25 is {status!r}, expected P, F or C")
    mismatched = [_field(s, 1) for s in observations if _field(s, 11) != status]
    if mismatched:
        problems.append(f"OBX-11 differs from OBR-25 ({status!r}) in OBX {', '.join(mismatched)}")
    return problems


def validate_oru(message: str) -> list[str]:
    """Problems with an ORU^R01 (hl7apy v2.5.1 strict parse and validation, then Hilum's rules); [] when valid."""
    return _hl7apy_problems(message) + _hilum_problems(message)
