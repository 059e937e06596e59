"""Operator records: rejections and dead letters are kept with what an administrator needs."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from hilum.common.db import records
from hilum.common.db.models import DeadLetterRow, RejectionRow


def test_rejection_and_dead_letter_rows(sqlite_sessions: sessionmaker[Session]) -> None:
    with sqlite_sessions.begin() as session:
        records.record_rejection(session, "file.dcm", "REJECTION_CODE_NOT_DICOM", "not DICOM")
        records.record_dead_letter(session, "inference", "1.2.3", "image unreadable", b"\x0a\x05")
    with sqlite_sessions() as session:
        rejection = session.scalars(select(RejectionRow)).one()
        letter = session.scalars(select(DeadLetterRow)).one()
    assert (rejection.label, rejection.code, rejection.reason) == ("file.dcm", "REJECTION_CODE_NOT_DICOM", "not DICOM")
    assert rejection.received_at is not None
    assert (letter.stage, letter.study_instance_uid, letter.error) == ("inference", "1.2.3", "image unreadable")
    assert letter.payload == b"\x0a\x05"
