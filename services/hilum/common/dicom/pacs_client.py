"""Two clients that find and retrieve studies on a PACS, each in its own standard's terms: DicomwebClient with
QIDO-RS and WADO-RS, DimseClient with C-FIND and C-GET (or C-MOVE to a destination AE) for a PACS that speaks
only DIMSE. Ingestion's pull door polls a PACS with them; the priors stage finds and fetches priors with them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, time
from types import TracebackType
from typing import Any, Protocol, TypeVar

import httpx
from pydicom.dataset import Dataset
from pydicom.uid import UID
from pynetdicom import AE, build_role, evt
from pynetdicom.association import Association
from pynetdicom.events import Event

from hilum.common.dicom.attributes import date_of, parse_time, text, uid
from hilum.common.dicom.storage_contexts import STORAGE_SOP_CLASSES, TRANSFER_SYNTAXES
from hilum.common.multipart import MultipartError, parse_multipart
from hilum.common.settings import PacsSection

# The Study Root Query/Retrieve Information Model SOP classes (PS3.4 C.6.2).
STUDY_ROOT_FIND = UID("1.2.840.10008.5.1.4.1.2.2.1")
STUDY_ROOT_MOVE = UID("1.2.840.10008.5.1.4.1.2.2.2")
STUDY_ROOT_GET = UID("1.2.840.10008.5.1.4.1.2.2.3")
# Accept every transfer syntax the PACS holds, so what is stored is what the PACS has, byte for byte.
WADO_ACCEPT = 'multipart/related; type="application/dicom"; transfer-syntax=*'
# What a study search asks the PACS to return (FoundStudy's fields): QIDO-RS returns most by default, the
# Issuer of Patient ID only when asked.
STUDY_RETURN_KEYS = ("StudyInstanceUID", "StudyDate", "StudyTime", "ModalitiesInStudy", "PatientID",
                     "IssuerOfPatientID")
HTTP_TIMEOUT_S = 120.0
DIMSE_TIMEOUT_S = 60.0

_SUCCESS = 0x0000
_PENDING = (0xFF00, 0xFF01)
_WARNING = 0xB000  # sub-operations complete, one or more failed or warned


class PacsError(RuntimeError):
    """The PACS could not be reached, or did not answer a query or retrieve as its standard says.

    The message says what failed in the standard's terms (HTTP status, DIMSE status); never patient data.
    """


@dataclass(frozen=True)
class FoundStudy:
    """A study a PACS reported: its UID, its Study Date and Study Time (None when absent or invalid), the
    modalities in it (upper case, as reported; empty when the PACS does not say), and its patient's PatientID
    and Issuer of Patient ID ("" when the PACS does not say).
    """

    study_instance_uid: str
    study_date: date | None
    modalities: tuple[str, ...]
    study_time: time | None = None
    patient_id: str = ""
    patient_issuer: str = ""


@dataclass(frozen=True)
class FoundSeries:
    """A series of a study, as a PACS reported it: its UID and its modality (upper case; "" when not said)."""

    series_instance_uid: str
    modality: str


Found = TypeVar("Found")


def first_of_each(items: Iterable[Found | None], uid_of: Callable[[Found], str]) -> list[Found]:
    """Each study or series once, in the order first seen (a PACS may report one several times, or once
    per modality asked for); None items (answers without a usable UID) are left out.
    """
    found: dict[str, Found] = {}
    for item in items:
        if item is not None:
            found.setdefault(uid_of(item), item)
    return list(found.values())


def _study_uid(study: FoundStudy) -> str:
    return study.study_instance_uid


def _series_uid(series: FoundSeries) -> str:
    return series.series_instance_uid


@dataclass(frozen=True)
class MoveOutcome:
    """The final counts of a C-MOVE's sub-operations (C-STOREs from the PACS to the destination)."""

    completed: int
    failed: int
    warning: int


class StudySource(Protocol):
    """A PACS as the puller sees it: search studies, list a study's series, retrieve a series."""

    def search_studies(self, match: Mapping[str, str]) -> list[FoundStudy]:
        """The studies matching match (attribute keyword -> DICOM matching value), in the PACS's order."""
        ...

    def search_series(self, study_instance_uid: str) -> list[FoundSeries]:
        """Every series of the study."""
        ...

    def retrieve_series(self, study_instance_uid: str, series_instance_uid: str) -> list[bytes]:
        """Every instance of the series as DICOM Part 10 bytes."""
        ...


def date_range(since: date, until: date | None = None) -> str:
    """A DICOM date range for matching: "20250218-" (open-ended) or "20250218-20250220"."""
    return f"{since:%Y%m%d}-{until:%Y%m%d}" if until is not None else f"{since:%Y%m%d}-"


def found_study(identifier: Dataset) -> FoundStudy | None:
    """The FoundStudy a C-FIND identifier or a QIDO-RS result describes; None without a valid Study Instance UID."""
    study_uid = uid(identifier, "StudyInstanceUID")
    if not study_uid:
        return None
    modalities = tuple(value.upper() for value in text(identifier, "ModalitiesInStudy").split("\\") if value)
    return FoundStudy(study_uid, date_of(identifier, "StudyDate"), modalities,
                      study_time=parse_time(text(identifier, "StudyTime")),
                      patient_id=text(identifier, "PatientID"), patient_issuer=text(identifier, "IssuerOfPatientID"))


def found_series(identifier: Dataset) -> FoundSeries | None:
    """The FoundSeries a C-FIND identifier or a QIDO-RS result describes; None without a valid Series Instance UID."""
    series_uid = uid(identifier, "SeriesInstanceUID")
    return FoundSeries(series_uid, text(identifier, "Modality").upper()) if series_uid else None


class DicomwebClient:
    """QIDO-RS and WADO-RS against a DICOMweb root, e.g. http://pacs:8042/dicom-web.

    http: an httpx.Client to use (its auth, TLS and proxies); by default one of this client's own.
    """

    def __init__(self, base_url: str, *, http: httpx.Client | None = None, timeout_s: float = HTTP_TIMEOUT_S) -> None:
        if not base_url:
            raise ValueError("a DICOMweb client needs the PACS's DICOMweb URL")
        self.base_url = base_url.rstrip("/")
        self._http = http or httpx.Client(timeout=timeout_s)
        self._owns_http = http is None

    def search_studies(self, match: Mapping[str, str]) -> list[FoundStudy]:
        """QIDO-RS GET {base}/studies with match as query parameters; every match in one answer.

        No limit/offset paging: Orthanc (1.10, DICOMweb 1.7) pages before it filters and in no stable
        order, so paged answers miss studies. Raises PacsError when the PACS answers other than 200
        (or 204, no match) or not with a JSON list.
        """
        params = (*match.items(), *(("includefield", keyword) for keyword in STUDY_RETURN_KEYS))
        answers = self._get_json(f"{self.base_url}/studies", params)
        return first_of_each((found_study(Dataset.from_json(item)) for item in answers), _study_uid)

    def search_series(self, study_instance_uid: str) -> list[FoundSeries]:
        """QIDO-RS GET {base}/studies/{uid}/series: every series of the study with its modality."""
        answers = self._get_json(f"{self.base_url}/studies/{study_instance_uid}/series", ())
        return first_of_each((found_series(Dataset.from_json(item)) for item in answers), _series_uid)

    def retrieve_study(self, study_instance_uid: str) -> list[bytes]:
        """WADO-RS GET {base}/studies/{uid}: the Part 10 bytes of each instance, as the PACS stores them."""
        return self._retrieve(f"{self.base_url}/studies/{study_instance_uid}")

    def retrieve_series(self, study_instance_uid: str, series_instance_uid: str) -> list[bytes]:
        """WADO-RS GET {base}/studies/{uid}/series/{uid}: the Part 10 bytes of each instance of the series."""
        return self._retrieve(f"{self.base_url}/studies/{study_instance_uid}/series/{series_instance_uid}")

    def _retrieve(self, url: str) -> list[bytes]:
        """A WADO-RS retrieve as multipart/related application/dicom in the stored transfer syntax (Part 10
        bytes of each instance); raises PacsError on any answer but 200 (or 206, partial) and multipart.
        """
        try:
            response = self._http.get(url, headers={"Accept": WADO_ACCEPT})
        except httpx.HTTPError as exc:
            raise PacsError(f"WADO-RS retrieve failed: {type(exc).__name__}") from exc
        if response.status_code not in (200, 206):
            raise PacsError(f"WADO-RS retrieve answered HTTP {response.status_code}")
        try:
            parts = parse_multipart(response.content, response.headers.get("content-type", ""))
        except MultipartError as exc:
            raise PacsError(f"WADO-RS retrieve answered an unreadable body: {exc}") from exc
        return [part.content for part in parts if part.content_type in ("", "application/dicom")]

    def _get_json(self, url: str, params: tuple[tuple[str, str], ...]) -> list[dict[str, Any]]:
        try:
            response = self._http.get(url, params=params, headers={"Accept": "application/dicom+json"})
        except httpx.HTTPError as exc:
            raise PacsError(f"QIDO-RS search failed: {type(exc).__name__}") from exc
        if response.status_code == 204:
            return []
        if response.status_code != 200:
            raise PacsError(f"QIDO-RS search answered HTTP {response.status_code}")
        try:
            body = response.json()
        except ValueError as exc:
            raise PacsError("QIDO-RS search answered a body that is not JSON") from exc
        if not isinstance(body, list):
            raise PacsError("QIDO-RS search answered JSON that is not a list of datasets")
        return body

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> DicomwebClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()


class DimseClient:
    """C-FIND, C-GET and C-MOVE (Study Root) against a PACS's DICOM port, calling as calling_ae_title.

    The PACS must know calling_ae_title to answer queries and retrieves (most check it); C-GET needs
    nothing else, C-MOVE needs the PACS to know the destination's address too. One association per call.
    """

    def __init__(self, ae_title: str, host: str, port: int, calling_ae_title: str = "HILUM",
                 timeout_s: float = DIMSE_TIMEOUT_S) -> None:
        if not (ae_title and host):
            raise ValueError("a DIMSE client needs the PACS's AE title and host")
        self.ae_title, self.host, self.port = ae_title, host, port
        self.calling_ae_title = calling_ae_title
        self.timeout_s = timeout_s

    def search_studies(self, match: Mapping[str, str]) -> list[FoundStudy]:
        """C-FIND at STUDY level with match as matching keys (and the keys FoundStudy reads as return keys)."""
        query = Dataset()
        query.QueryRetrieveLevel = "STUDY"
        for keyword in STUDY_RETURN_KEYS:
            setattr(query, keyword, "")
        for keyword, value in match.items():
            setattr(query, keyword, value)
        return first_of_each((found_study(identifier) for identifier in self._find(query)), _study_uid)

    def search_series(self, study_instance_uid: str) -> list[FoundSeries]:
        """C-FIND at SERIES level in the study: every series with its modality."""
        query = _identifier(study_instance_uid, "")
        query.Modality = ""
        return first_of_each((found_series(identifier) for identifier in self._find(query)), _series_uid)

    def retrieve_study(self, study_instance_uid: str) -> list[bytes]:
        """C-GET the whole study (see _get)."""
        return self._get(_identifier(study_instance_uid))

    def retrieve_series(self, study_instance_uid: str, series_instance_uid: str) -> list[bytes]:
        """C-GET one series of the study (see _get)."""
        return self._get(_identifier(study_instance_uid, series_instance_uid))

    def move(self, destination_ae_title: str, study_instance_uid: str, series_instance_uid: str | None = None
             ) -> MoveOutcome:
        """C-MOVE the study, or one series of it, to destination_ae_title (Hilum's DICOM door, which ingests
        what it receives); the sub-operation counts. Raises PacsError when the C-MOVE fails with nothing sent.
        """
        ae = self._ae()
        ae.add_requested_context(STUDY_ROOT_MOVE)
        identifier = _identifier(study_instance_uid, series_instance_uid)
        with self._association(ae, "C-MOVE") as association:
            final = _final_status(association.send_c_move(identifier, destination_ae_title, STUDY_ROOT_MOVE),
                                  "C-MOVE")
        code = int(final.Status)
        outcome = MoveOutcome(
            completed=int(final.get("NumberOfCompletedSuboperations", 0) or 0),
            failed=int(final.get("NumberOfFailedSuboperations", 0) or 0),
            warning=int(final.get("NumberOfWarningSuboperations", 0) or 0),
        )
        if code not in (_SUCCESS, _WARNING) and not outcome.completed:
            raise PacsError(f"C-MOVE answered status 0x{code:04X}")
        return outcome

    def _find(self, query: Dataset) -> list[Dataset]:
        """C-FIND (Study Root): the identifiers of every pending response; raises PacsError on a failure."""
        ae = self._ae()
        ae.add_requested_context(STUDY_ROOT_FIND)
        identifiers: list[Dataset] = []
        with self._association(ae, "C-FIND") as association:
            for status, identifier in association.send_c_find(query, STUDY_ROOT_FIND):
                code = _status_code(status, "C-FIND")
                if code in _PENDING and identifier is not None:
                    identifiers.append(identifier)
                elif code != _SUCCESS:
                    raise PacsError(f"C-FIND answered status 0x{code:04X}")
        return identifiers

    def _get(self, identifier: Dataset) -> list[bytes]:
        """C-GET: the PACS sends each instance back on the same association (C-STORE sub-operations for the
        storage SOP classes Hilum takes; others are not sent, and the C-GET then ends with a warning, which
        is not an error when something came). Raises PacsError on failure.
        """
        ae = self._ae()
        ae.add_requested_context(STUDY_ROOT_GET)
        for sop_class in STORAGE_SOP_CLASSES:
            ae.add_requested_context(sop_class, list(TRANSFER_SYNTAXES))
        roles = [build_role(sop_class, scp_role=True) for sop_class in STORAGE_SOP_CLASSES]
        received: list[bytes] = []

        def on_store(event: Event) -> int:
            received.append(event.encoded_dataset())
            return _SUCCESS

        handlers = [(evt.EVT_C_STORE, on_store)]
        with self._association(ae, "C-GET", ext_neg=roles, evt_handlers=handlers) as association:
            final = _final_status(association.send_c_get(identifier, STUDY_ROOT_GET), "C-GET")
        code = int(final.Status)
        if code != _SUCCESS and not (code == _WARNING and received):
            raise PacsError(f"C-GET answered status 0x{code:04X} after {len(received)} instances")
        return received

    def _ae(self) -> AE:
        ae = AE(ae_title=self.calling_ae_title)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = ae.connection_timeout = self.timeout_s
        return ae

    def _association(self, ae: AE, what: str, **kwargs: Any) -> _Associated:
        association = ae.associate(self.host, self.port, ae_title=self.ae_title, **kwargs)
        if not association.is_established:
            raise PacsError(f"{what}: the PACS {self.ae_title} at {self.host}:{self.port} refused or did not "
                            "answer the association")
        return _Associated(association)


class _Associated:
    """An established association, released (or aborted, after an error) on leaving the with block."""

    def __init__(self, association: Association) -> None:
        self._association = association

    def __enter__(self) -> Association:
        return self._association

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if exc is None:
            self._association.release()
        else:
            self._association.abort()


def _identifier(study_instance_uid: str, series_instance_uid: str | None = None) -> Dataset:
    """A Study Root identifier at STUDY level, or at SERIES level when series_instance_uid is given ("" to
    ask for it in a C-FIND).
    """
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "STUDY" if series_instance_uid is None else "SERIES"
    identifier.StudyInstanceUID = study_instance_uid
    if series_instance_uid is not None:
        identifier.SeriesInstanceUID = series_instance_uid
    return identifier


def _status_code(status: Dataset, what: str) -> int:
    """The Status of a DIMSE response; an empty one means the association ended or timed out."""
    if "Status" not in status:
        raise PacsError(f"{what}: the association was aborted or timed out before the PACS answered")
    return int(status.Status)


def _final_status(responses: Iterable[tuple[Dataset, Dataset | None]], what: str) -> Dataset:
    """The last, non-pending response of a C-GET or C-MOVE."""
    final: Dataset | None = None
    for status, _identifier in responses:
        if _status_code(status, what) not in _PENDING:
            final = status
    if final is None:
        raise PacsError(f"{what}: the PACS sent no final response")
    return final


def study_source(section: PacsSection, calling_ae_title: str) -> DicomwebClient | DimseClient:
    """The client for the configured PACS: DICOMweb when dicomweb_url is set, else DIMSE (ae_title, host,
    port). Raises ValueError when neither is configured.
    """
    if section.dicomweb_url:
        return DicomwebClient(section.dicomweb_url)
    if section.ae_title and section.host:
        return DimseClient(section.ae_title, section.host, section.port, calling_ae_title)
    raise ValueError("no PACS is configured: set HILUM_PACS__DICOMWEB_URL, or HILUM_PACS__AE_TITLE, "
                     "HILUM_PACS__HOST and HILUM_PACS__PORT for a DIMSE-only PACS")
