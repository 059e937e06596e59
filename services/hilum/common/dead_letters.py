"""Where messages go that can never succeed: a dead-letter row, and the study marked FAILED with why."""

from __future__ import annotations

from google.protobuf.message import Message
from sqlalchemy.orm import Session, sessionmaker

from hilum.common.db import records, studies
from hilum.common.metrics import DEAD_LETTERS
from hilum.common.queue import DeadLetterSink, Stage, study_uid_of


def dead_letter_sink(sessions: sessionmaker[Session]) -> DeadLetterSink:
    """A sink that records the message for replay and fails its study with the reason."""

    def sink(stage: Stage, message: Message, error: str) -> None:
        uid = study_uid_of(message)
        with sessions.begin() as session:
            records.record_dead_letter(session, stage.value, uid, error, message.SerializeToString())
            if uid:
                studies.fail(session, uid, f"{stage.value}: {error}")
        DEAD_LETTERS.labels(stage=stage.value).inc()

    return sink
