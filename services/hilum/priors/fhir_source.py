"""The hospital's FHIR R4 server as a prior source: the patient's most recent earlier CR/DX ImagingStudy, and the
DiagnosticReport that reports it.

Three searches, each defined by FHIR R4:
1. `Patient?identifier=<system>|<MRN>`: the patient's logical ids. Chained search (`ImagingStudy?patient.identifier=`)
   is optional in R4, and servers without it (Medplum's in-memory repository among them) answer it with nothing.
2. `ImagingStudy?subject=Patient/<id>&modality=DCM|CR,DCM|DX&started=lt<current start>&_sort=-started&_count=N`,
   following `next` links for at most max_pages pages: the first study that is not the current one, names its
   Study Instance UID (identifier `urn:dicom:uid`) and is of the chest (or names no body site) is the prior.
3. `DiagnosticReport?subject=Patient/<id>&_sort=-date`: R4 has no search parameter on DiagnosticReport.imagingStudy,
   so the newest report that refers to the prior is picked from the patient's reports (never one of Hilum's own
   AI-asserted drafts, nor a withdrawn one).

Every search says `Prefer: handling=strict`, so that a server that does not support a parameter refuses the search
rather than ignoring it. Failures: TransientError for a timeout, a connection error, HTTP 408, 429 or 5xx;
PermanentError for HTTP 401 (after one fresh SMART token) and any other 4xx. Error messages name the resource type
searched and the status, never the query (it holds the MRN) nor the server's diagnostics (which may echo it).
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import httpx

from hilum.common.errors import PermanentError, TransientError
from hilum.common.fhir.identifiers import AI_ASSERTED_CODE, DICOM_DCM, DICOM_UID_SYSTEM, V3_OBSERVATION_VALUE
from hilum.common.fhir.references import escape_token
from hilum.common.http_failures import is_transient_status, transport_failure
from hilum.common.logs import study_ref
from hilum.common.settings import PriorsFhirServer
from hilum.common.smart_backend import smart_auth
from hilum.common.study import RADIOGRAPH_MODALITIES, PatientInfo, StudyInfo
from hilum.priors.candidate import PriorCandidate, PriorReport

log = logging.getLogger(__name__)

FHIR_JSON = "application/fhir+json"
# Body sites that mean the chest: SNOMED CT "Thoracic structure" and DICOM Body Part Examined values.
CHEST_SITES = frozenset({"51185008", "CHEST", "THORAX", "LUNG"})
CHEST_WORDS = ("chest", "thora", "lung")
# Reports that say nothing about the study: withdrawn, or not yet written.
UNUSABLE_REPORT_STATUSES = frozenset({"cancelled", "entered-in-error", "registered"})
JsonObject = dict[str, Any]


class FhirServerSource:
    """Finds priors on a hospital FHIR server, the patient matched by MRN (identifier system and value), never by name.

    The MRN's system is `identifier_system` (Hilum's fhir.patient_identifier_system), or, where the server settings
    map DICOM Issuer of Patient ID to systems (issuer_systems), the system of the study's issuer.
    """

    name = "fhir"

    def __init__(self, server: PriorsFhirServer, identifier_system: str, client: httpx.Client | None = None) -> None:
        if not server.url:
            raise ValueError("priors.fhir_server.url is empty: there is no FHIR server to search for priors")
        self._server = server
        self._base = server.url.rstrip("/")
        self._identifier_system = identifier_system
        self._auth = smart_auth(server)
        self._headers = {"Accept": FHIR_JSON, "Prefer": "handling=strict"}
        if self._auth is None and server.bearer_token:
            self._headers["Authorization"] = f"Bearer {server.bearer_token}"
        self._http = client if client is not None else httpx.Client()

    def find_prior(self, study: StudyInfo) -> PriorCandidate | None:
        """The patient's most recent CR/DX ImagingStudy that started before `study`, with its report where there is
        one; None when the study has no start time, its issuer has no system, or the server holds no such study.
        """
        system = self.identifier_system(study.patient)
        if study.started is None or not system or not study.patient.patient_id:
            self._log(study, found=False)
            return None
        patients = self._patients(system, study.patient.patient_id)
        before = search_instant(study.started)
        found = self._latest_study(patients, before, study.study_instance_uid) if patients else None
        self._log(study, found=found is not None)
        if found is None:
            return None
        resource, uid, modality, started = found
        return PriorCandidate(
            study_instance_uid=uid, started=started, modality=modality, source=self.name,
            reason=(f"most recent CR/DX ImagingStudy before {before} of the Patient with the study's MRN in "
                    f"{system}, on {self._base}"),
            report=self._report_of(patients, resource, uid),
        )

    def identifier_system(self, patient: PatientInfo) -> str:
        """The FHIR identifier system the patient's MRN (DICOM PatientID) belongs to; "" when the issuer is unmapped."""
        if self._server.issuer_systems:
            return self._server.issuer_systems.get(patient.issuer, "")
        return self._identifier_system

    def _patients(self, system: str, value: str) -> list[str]:
        """References ("Patient/<id>") of the Patients holding exactly this identifier (a server may match loosely)."""
        params = {"identifier": f"{escape_token(system)}|{escape_token(value)}", "_count": str(self._server.page_size)}
        first_page = next(self._pages("Patient", params))
        return [f"Patient/{patient['id']}" for patient in matches(first_page, "Patient")
                if patient.get("id") and any(i.get("system") == system and i.get("value") == value
                                             for i in patient.get("identifier") or [])]

    def _latest_study(
        self, patients: list[str], before: str, current_uid: str
    ) -> tuple[JsonObject, str, str, datetime | date] | None:
        """The first chest radiograph, newest first, that is not the current study: (resource, UID, modality, start)."""
        modalities = ",".join(f"{DICOM_DCM}|{modality}" for modality in RADIOGRAPH_MODALITIES)
        params = {"subject": ",".join(patients), "modality": modalities, "started": f"lt{before}",
                  "_sort": "-started", "_count": str(self._server.page_size)}
        for page in self._pages("ImagingStudy", params):
            for resource in matches(page, "ImagingStudy"):
                uid, modality = study_uid(resource), radiograph_modality(resource)
                started = parse_fhir_date_time(str(resource.get("started") or ""))
                subject = str((resource.get("subject") or {}).get("reference") or "")
                if (uid and uid != current_uid and modality and started is not None and of_the_chest(resource)
                        and any(refers_to(subject, patient) for patient in patients)):
                    return resource, uid, modality, started
        return None

    def _report_of(self, patients: list[str], imaging_study: JsonObject, uid: str) -> PriorReport | None:
        """The newest usable DiagnosticReport of the patient that refers to the ImagingStudy (by id or by UID)."""
        target = f"ImagingStudy/{imaging_study.get('id')}"
        params = {"subject": ",".join(patients), "_sort": "-date", "_count": str(self._server.page_size)}
        for page in self._pages("DiagnosticReport", params):
            for report in matches(page, "DiagnosticReport"):
                if report.get("status") in UNUSABLE_REPORT_STATUSES or ai_asserted(report):
                    continue
                if any(refers_to_study(reference, target, uid) for reference in report.get("imagingStudy") or []):
                    return prior_report(report)
        return None

    def _pages(self, resource_type: str, params: dict[str, str]) -> Iterator[JsonObject]:
        """The searchset pages of a search, following `next` links on the same server for at most max_pages pages."""
        url: str = f"{self._base}/{resource_type}"
        query: dict[str, str] | None = params
        for _ in range(self._server.max_pages):
            page = self._get(url, query, resource_type)
            yield page
            link = next_link(page)
            if not link:
                return
            url, query = self._on_this_server(link), None

    def _on_this_server(self, link: str) -> str:
        """A `next` link, refused when it points at another server (the token must never go elsewhere)."""
        here, there = httpx.URL(self._base), httpx.URL(link)
        if (there.scheme, there.host, there.port) != (here.scheme, here.host, here.port):
            raise PermanentError("the FHIR server's next page link points at another server; Hilum does not follow it")
        return link

    def _get(self, url: str, params: dict[str, str] | None, resource_type: str) -> JsonObject:
        """One search request; its failure raised as TransientError or PermanentError (see the module docstring)."""
        what = f"the FHIR server's {resource_type} search"
        timeout = self._server.timeout_s
        try:
            response = self._http.get(url, params=params, headers=self._headers, timeout=timeout, auth=self._auth)
        except httpx.TransportError as exc:
            raise transport_failure(exc, what, timeout) from exc
        status = response.status_code
        if status == 401:
            raise PermanentError(f"{what} was refused: HTTP 401 (credentials not accepted"
                                 f"{', even with a fresh token' if self._auth else ''})")
        if is_transient_status(status):
            raise TransientError(f"{what} failed: HTTP {status}")
        if not 200 <= status < 300:
            raise PermanentError(f"{what} was refused: HTTP {status}")
        try:
            body = response.json()
        except ValueError as exc:
            raise TransientError(f"{what} answered HTTP {status} without JSON") from exc
        if not isinstance(body, dict) or body.get("resourceType") != "Bundle":
            raise TransientError(f"{what} answered HTTP {status} without a Bundle")
        return body

    def _log(self, study: StudyInfo, *, found: bool) -> None:
        log.info("prior searched on the FHIR server",
                 extra={"study_ref": study_ref(study.study_instance_uid), "has_prior": found})


def search_instant(started: datetime) -> str:
    """A study's start as a FHIR search dateTime: in UTC ("Z") when its offset is known; otherwise the local time
    without an offset, which FHIR search reads as the server's local time.
    """
    if started.tzinfo is not None and started.utcoffset() is not None:
        return started.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return started.strftime("%Y-%m-%dT%H:%M:%S")


def parse_fhir_date_time(value: str) -> datetime | date | None:
    """A FHIR date or dateTime with at least the day ("2026-11-30", "2026-11-30T09:15:00+01:00"); else None."""
    try:
        return date.fromisoformat(value) if len(value) == 10 else datetime.fromisoformat(value)
    except ValueError:
        return None


def matches(page: JsonObject, resource_type: str) -> list[JsonObject]:
    """The page's resources of resource_type that matched the search (not those it included)."""
    found = []
    for entry in page.get("entry") or []:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        mode = (entry.get("search") or {}).get("mode", "match") if isinstance(entry, dict) else ""
        if isinstance(resource, dict) and resource.get("resourceType") == resource_type and mode == "match":
            found.append(resource)
    return found


def next_link(page: JsonObject) -> str:
    """The URL of the searchset's next page; "" on the last page."""
    for link in page.get("link") or []:
        if isinstance(link, dict) and link.get("relation") == "next" and link.get("url"):
            return str(link["url"])
    return ""


def study_uid(imaging_study: JsonObject) -> str:
    """The DICOM Study Instance UID from the identifier with system urn:dicom:uid ("urn:oid:<uid>"); "" if none."""
    for identifier in imaging_study.get("identifier") or []:
        value = str(identifier.get("value") or "")
        if identifier.get("system") == DICOM_UID_SYSTEM and value.startswith("urn:oid:"):
            return value.removeprefix("urn:oid:")
    return ""


def radiograph_modality(imaging_study: JsonObject) -> str:
    """"CR" or "DX" when the study or one of its series has that DICOM modality; "" otherwise."""
    codings = list(imaging_study.get("modality") or [])
    codings += [series.get("modality") or {} for series in imaging_study.get("series") or []]
    for coding in codings:
        if coding.get("system") == DICOM_DCM and coding.get("code") in RADIOGRAPH_MODALITIES:
            return str(coding["code"])
    return ""


def of_the_chest(imaging_study: JsonObject) -> bool:
    """Whether a series' body site is the chest; True also when no series names a body site (unknown is kept)."""
    sites = [series["bodySite"] for series in imaging_study.get("series") or [] if series.get("bodySite")]
    return not sites or any(
        str(site.get("code") or "").upper() in CHEST_SITES
        or any(word in str(site.get("display") or "").lower() for word in CHEST_WORDS)
        for site in sites
    )


def refers_to(reference: str, target: str) -> bool:
    """Whether a reference ("Patient/1", "https://host/fhir/Patient/1/_history/2") names target ("Patient/1")."""
    reference = reference.split("/_history/", 1)[0]
    return reference == target or reference.endswith(f"/{target}")


def refers_to_study(reference: JsonObject, target: str, uid: str) -> bool:
    """Whether a report's imagingStudy reference names the ImagingStudy: by its id, or by its DICOM UID identifier."""
    identifier = reference.get("identifier") or {}
    by_uid = identifier.get("system") == DICOM_UID_SYSTEM and identifier.get("value") == f"urn:oid:{uid}"
    return by_uid or refers_to(str(reference.get("reference") or ""), target)


def ai_asserted(report: JsonObject) -> bool:
    """Whether the report carries the AI-asserted security label (Hilum's own drafts do): not a radiologist's report."""
    labels = (report.get("meta") or {}).get("security") or []
    return any(label.get("system") == V3_OBSERVATION_VALUE and label.get("code") == AI_ASSERTED_CODE
               for label in labels)


def prior_report(report: JsonObject) -> PriorReport:
    """The report's identifier ("system|value"), status, conclusion and its first text/plain presentedForm, decoded."""
    identifier = next((f"{i['system']}|{i['value']}" for i in report.get("identifier") or []
                       if i.get("system") and i.get("value")), "")
    return PriorReport(identifier=identifier, status=str(report.get("status") or ""),
                       conclusion=str(report.get("conclusion") or ""),
                       text=next(filter(None, map(plain_text, report.get("presentedForm") or [])), ""))


def plain_text(attachment: JsonObject) -> str:
    """The text of a text/plain Attachment with inline data (base64, in its charset, UTF-8 by default); "" otherwise."""
    content_type = str(attachment.get("contentType") or "")
    media_type, _, parameters = content_type.partition(";")
    if media_type.strip().lower() != "text/plain" or not attachment.get("data"):
        return ""
    charset = parameters.partition("charset=")[2].strip().strip('"') or "utf-8"
    try:
        return base64.b64decode(str(attachment["data"]), validate=True).decode(charset, errors="replace")
    except (binascii.Error, LookupError):
        return ""
