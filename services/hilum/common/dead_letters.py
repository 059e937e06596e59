"""Where messages go that can never succeed: a dead-letter row, and the study marked FAILED with why; and how a person
hands them to their queue again once the cause is mended (`hilum dead-letters replay`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from google.protobuf.message import Message
from sqlalchemy.orm import Session, sessionmaker

from hilum.common.db import records, studies
from hilum.common.db.models import DeadLetterRow
from hilum.common.metrics import DEAD_LETTERS
from hilum.common.queue import DeadLetterSink, Stage, study_uid_of

# Sends a dead letter's payload to its stage's queue: (stage, payload, the study's UID or "").
SendPayload = Callable[[Stage, bytes, str], None]


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


def replay(sessions: sessionmaker[Session], send: SendPayload, now: datetime, *, stage: Stage | None = None,
           ids: Sequence[int] = (), progress: Callable[[int, int], None] | None = None) -> list[int]:
    """Hand each dead letter not yet replayed (of `stage`, or of `ids`) to its stage's queue again, oldest first, and
    record when; a study that failed for it starts again (RECEIVED). Returns the ids replayed. progress, if given, is
    told (letters done, letters chosen) after each.

    One transaction per letter, the message sent before its commit: if the broker refuses, that letter stays
    waiting and the error propagates; a commit lost after the send replays the letter twice, which the stages'
    idempotency makes harmless.
    """
    with sessions() as session:
        waiting = [row.id for row in records.dead_letters(session, stage=stage.value if stage else None, ids=ids)]
    replayed = []
    for letter_id in waiting:
        with sessions.begin() as session:
            row = session.get(DeadLetterRow, letter_id)
            if row is None or row.replayed_at is not None:  # replayed meanwhile by another command
                continue
            uid = row.study_instance_uid
            if uid and studies.get_study(session, uid) is not None:
                studies.restart(session, uid)
            row.replayed_at = now
            send(Stage(row.stage), row.payload, uid)
        replayed.append(letter_id)
        if progress is not None:
            progress(len(replayed), len(waiting))
    return replayed
