"""A PACS as a prior source: the patient's most recent earlier chest radiograph found with QIDO-RS (or C-FIND), its
images fetched with WADO-RS (or C-GET) and handed to ingestion as a comparison-only study, so that Hilum's own models
read the prior and the comparison is image to image.

The patient is matched by PatientID and Issuer of Patient ID, exactly as the PACS returns them, never by name: a PACS
that does not return both for a study, or returns others, has not named this patient. DICOM matching treats "*" and
"?" in a PatientID as wildcards, so the exact comparison here is what keeps another patient's study out.

The fetched instances go through the object store's spool and ingestion's queue (store first, then enqueue): the
priors stage never writes studies itself. A marker per fetched prior keeps a refused or lost fetch from being
repeated; the stage stops waiting for the prior's analysis after queue.prior_wait_s.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, date, datetime, time

from hilum.common.dicom.pacs_client import FoundStudy, PacsError, StudySource, first_of_each
from hilum.common.errors import TransientError
from hilum.common.object_store import ObjectStore
from hilum.common.study import RADIOGRAPH_MODALITIES, StudyInfo
from hilum.priors.candidate import PriorCandidate
from hilum.v1 import messages_pb2

SPOOL = "spool"
FETCH_MARKERS = "prior-fetches"

HandToIngestion = Callable[[messages_pb2.SpooledInstances], None]


def started_before(found: FoundStudy, started: datetime) -> bool:
    """Whether the PACS's study began before `started` (naive local time, as DICOM keeps it). On the same day both
    Study Times must be known to tell; an earlier Study Date is enough on its own."""
    if found.study_date is None:
        return False
    if found.study_date != started.date():
        return found.study_date < started.date()
    return found.study_time is not None and datetime.combine(found.study_date, found.study_time) < started


def _newest_first(found: FoundStudy) -> tuple[date, time, str]:
    return found.study_date or date.min, found.study_time or time.min, found.study_instance_uid


class PacsSource:
    """Finds priors on a PACS and fetches their CR and DX images for Hilum's models.

    client: the PACS (pacs_client.DicomwebClient or DimseClient); describe: how logs and reasons name it (its
    DICOMweb URL or AE title, never a patient's); store: the object store (the spool and the fetch markers);
    hand_to_ingestion: enqueues SpooledInstances on ingestion's queue.
    """

    name = "pacs"

    def __init__(self, client: StudySource, describe: str, store: ObjectStore,
                 hand_to_ingestion: HandToIngestion, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._client = client
        self._describe = describe
        self._store = store
        self._hand_to_ingestion = hand_to_ingestion
        self._clock = clock

    def find_prior(self, study: StudyInfo) -> PriorCandidate | None:
        """The same patient's newest CR or DX study on the PACS that started before `study`; None when there is
        none, or when the study has no start or no PatientID. Raises TransientError when the PACS fails."""
        patient = study.patient
        if study.started is None or not patient.patient_id:
            return None
        match = {"PatientID": patient.patient_id, "StudyDate": f"-{study.started:%Y%m%d}"}
        try:  # one search per modality: not every PACS matches a list of modalities
            found = [answer for modality in RADIOGRAPH_MODALITIES
                     for answer in self._client.search_studies({**match, "ModalitiesInStudy": modality})]
        except PacsError as exc:
            raise TransientError(f"the PACS could not be searched: {exc}") from exc
        priors = [
            answer for answer in first_of_each(found, lambda answer: answer.study_instance_uid)
            if answer.patient_id == patient.patient_id and answer.patient_issuer == patient.issuer
            and answer.study_instance_uid != study.study_instance_uid and started_before(answer, study.started)
        ]
        if not priors:
            return None
        prior = max(priors, key=_newest_first)
        assert prior.study_date is not None  # started_before holds
        modality = next((m for m in RADIOGRAPH_MODALITIES if m in prior.modalities), "")
        return PriorCandidate(
            study_instance_uid=prior.study_instance_uid,
            started=datetime.combine(prior.study_date, prior.study_time) if prior.study_time else prior.study_date,
            modality=modality, source=self.name,
            reason=(f"most recent CR/DX study before {study.started.isoformat()} with the same PatientID and Issuer of "
                    f"Patient ID on the PACS {self._describe}"),
        )

    def fetch(self, study_instance_uid: str) -> int:
        """Retrieve the prior's CR and DX series, spool each instance and hand them all to ingestion as one
        comparison-only SpooledInstances; the number handed. Then marks the prior fetched, so that the fetch is
        not repeated while its instances are being ingested, nor after ingestion refused them. Raises
        TransientError when the PACS fails (nothing is handed or marked then)."""
        try:
            series = [s for s in self._client.search_series(study_instance_uid)
                      if s.modality in RADIOGRAPH_MODALITIES or not s.modality]
            contents = [content for s in series
                        for content in self._client.retrieve_series(study_instance_uid, s.series_instance_uid)]
        except PacsError as exc:
            raise TransientError(f"the prior could not be retrieved from the PACS: {exc}") from exc
        keys = []
        for content in contents:  # named by content: a fetch repeated after a crash spools the same keys
            key = f"{SPOOL}/prior-{hashlib.sha256(content).hexdigest()}.dcm"
            self._store.put(key, content)
            keys.append(key)
        if keys:
            self._hand_to_ingestion(messages_pb2.SpooledInstances(spool_keys=keys, comparison_only=True))
        self._store.put(_marker(study_instance_uid), self._clock().isoformat().encode())
        return len(keys)

    def fetched_at(self, study_instance_uid: str) -> datetime | None:
        """When this source fetched the prior; None when it never did."""
        marker = _marker(study_instance_uid)
        if not self._store.exists(marker):
            return None
        return datetime.fromisoformat(self._store.get(marker).decode())


def _marker(study_instance_uid: str) -> str:
    """The object-store key that records a prior's fetch (hashed: a UID is not a path, nor for anyone to read)."""
    return f"{FETCH_MARKERS}/{hashlib.sha256(study_instance_uid.encode()).hexdigest()}"
