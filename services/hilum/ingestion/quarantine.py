"""`hilum quarantine`: what an administrator sees of refused instances, and releasing or deleting them.

Release runs acceptance again on the kept bytes (after the sender fixed a patient identity, say); the
study it joins is handed on by the assembler, and a study already reported gets no second report.
"""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from hilum.common.db import records
from hilum.common.db.models import RejectionRow
from hilum.common.dicom.header import NotDicom, parse_dataset, read_header
from hilum.common.object_store import ObjectStore
from hilum.ingestion.service import Ingestion, QuarantineNotFound
from hilum.v1 import ingestion_pb2


def _line(row: RejectionRow) -> str:
    """One entry: id, when, door, code, label."""
    code = row.code.removeprefix("REJECTION_CODE_")
    return f"{row.id:>6}  {row.received_at:%Y-%m-%d %H:%M:%S}  {row.door or '-':7} {code:28} {row.label}"


def list_lines(sessions: sessionmaker[Session], everything: bool = False) -> list[str]:
    """The held entries (all entries with everything), oldest first, one line each."""
    with sessions() as session:
        rows = records.quarantined(session, None if everything else records.QuarantineStatus.HELD)
        return [_line(row) + ("" if row.status == "held" else f"  [{row.status}]") for row in rows]


def show_lines(sessions: sessionmaker[Session], store: ObjectStore, quarantine_id: int) -> list[str]:
    """One entry in full: the reason, where the bytes are, and the identifiers their header carries."""
    with sessions() as session:
        row = session.get(RejectionRow, quarantine_id)
        if row is None:
            raise QuarantineNotFound(f"no quarantine entry {quarantine_id}")
        lines = [_line(row), f"status:  {row.status}", f"reason:  {row.reason}", f"sha256:  {row.content_sha256}"]
        key = row.object_key
    if not key or not store.exists(key):
        return [*lines, "bytes:   not kept"]
    lines.append(f"bytes:   {store.path(key)}")
    try:
        header = read_header(parse_dataset(store.get(key)))
    except NotDicom:
        return lines
    return [
        *lines,
        f"patient: {header.patient.patient_id or '(none)'} (issuer {header.patient.issuer or '(none)'})",
        f"study:   {header.study_instance_uid or '(none)'}",
        f"series:  {header.instance.series_instance_uid or '(none)'}",
        f"sop:     {header.instance.sop_instance_uid or '(none)'}",
    ]


def release_line(ingestion: Ingestion, quarantine_id: int) -> tuple[str, bool]:
    """Release one entry; the line to print and whether it was accepted."""
    result = ingestion.release(quarantine_id)
    if result.accepted:
        return f"released {quarantine_id}: accepted into study {result.study_instance_uid}", True
    code = ingestion_pb2.RejectionCode.Name(result.rejection.code).removeprefix("REJECTION_CODE_")
    return f"still held {quarantine_id}: {result.rejection.reason} [{code}]", False
