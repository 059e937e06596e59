"""The places priors looks for a patient's earlier chest radiograph: Hilum's own store, and the configured list.

The store knows only the studies Hilum itself received; a PACS (pacs_source.py) holds the images of studies made
before Hilum was installed or that never passed through it, and a hospital FHIR server (fhir_source.py) their reports.
"""

from __future__ import annotations

from celery import Celery
from sqlalchemy.orm import Session, sessionmaker

from hilum.common.connections import open_object_store
from hilum.common.db import studies
from hilum.common.dicom.pacs_client import study_source
from hilum.common.queue import Stage, enqueue
from hilum.common.settings import HilumSettings
from hilum.common.study import StudyInfo
from hilum.priors.candidate import PriorCandidate, PriorSource
from hilum.priors.fhir_source import FhirServerSource
from hilum.priors.pacs_source import PacsSource


class StoreSource:
    """Hilum's own store: the same patient (PatientID and issuer) and the study that started last before this one.

    It holds no radiologist's report (Hilum stores its own AI drafts only), so its candidates carry none.
    """

    name = "store"

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def find_prior(self, study: StudyInfo) -> PriorCandidate | None:
        """studies.find_prior's answer as a candidate, its modality that of its first stored instance."""
        with self._sessions() as session:
            row = studies.find_prior(session, study)
            if row is None or row.started is None or study.started is None:
                return None
            instances = studies.instances_of(session, row.study_instance_uid)
            patient = study.patient
            return PriorCandidate(
                study_instance_uid=row.study_instance_uid, started=row.started,
                modality=instances[0].modality if instances else "", source=self.name,
                reason=(f"most recent study before {study.started.isoformat()} for PatientID {patient.patient_id} "
                        f"(issuer {patient.issuer or 'none'}) in Hilum's store"),
            )


def configured_sources(settings: HilumSettings, sessions: sessionmaker[Session], app: Celery) -> list[PriorSource]:
    """The sources named by priors.sources, in that order; a PACS hands what it fetches to ingestion's queue through
    app. Raises ValueError when "fhir" is named without a url, or "pacs" without a PACS."""
    sources: list[PriorSource] = []
    for name in settings.priors.sources:
        if name == "store":
            sources.append(StoreSource(sessions))
        elif name == "pacs":
            pacs = settings.pacs
            sources.append(PacsSource(
                study_source(pacs, settings.dicom.ae_title), pacs.dicomweb_url or f"{pacs.ae_title}@{pacs.host}",
                open_object_store(settings), lambda spooled: enqueue(app, Stage.INGESTION, spooled)))
        else:
            sources.append(FhirServerSource(settings.priors.fhir_server, settings.fhir.patient_identifier_system))
    return sources
