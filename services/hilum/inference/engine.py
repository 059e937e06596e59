"""FindingsEngine: radiograph file in, coded findings out. The one place that knows tensor layouts.

It takes the model inputs the ingestion door kept (model_inputs.py), or decodes the DICOM image
(hilum.common.dicom.pixels) and makes them, calls the cxr_findings
model on Triton over gRPC and turns the 18 probabilities into Finding messages using the label map's
operating thresholds, or those published with the served weights (weights.json "op_threshs"), which also leave
out every output the weights were not trained for. Which weights made them comes from the model's own outputs
where the served config has them (the python backend), else from weights.json of the served version in the local
model repository.
With a devices model (cxr_devices), the same decode also gives the whole image at 512 x 512, whose heatmaps
come back as landmarks in the image's pixels (landmarks.heatmap_peaks). Every call to Triton goes through one
circuit breaker (circuit_breaker.py).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

import numpy as np
import numpy.typing as npt
import tritonclient.grpc as triton_grpc
from tritonclient.utils import InferenceServerException

from hilum.common.dicom.pixels import DECODE_SLOTS, ImageUnreadable, read_radiograph
from hilum.common.model_inputs import ModelInputs, make_model_inputs
from hilum.inference.circuit_breaker import CircuitBreaker, CircuitOpen
from hilum.inference.device_geometry import Landmark
from hilum.inference.labels import LabelMapError, LabelSpec, OperatingThresholds, findings_label_set, operating_labels
from hilum.inference.landmarks import LandmarkSpec, heatmap_peaks, landmark_set
from hilum.inference.model_export import WeightsManifest
from hilum.v1 import messages_pb2

__all__ = [
    "EngineResult",
    "FindingsEngine",
    "ImageUnreadable",
    "InferenceFailed",
    "Provenance",
    "ServedModel",
    "TritonUnavailable",
    "engine_results",
    "finding_for",
    "manifest_provenance",
    "served_model",
]

log = logging.getLogger(__name__)
Answer = TypeVar("Answer")

INPUT_NAME = "image"
PROBABILITIES = "probabilities"
HEATMAPS = "heatmaps"  # the devices model's output
MODEL_VERSION = "model_version"
DEMO_WEIGHTS = "demo_weights"
# The smallest max_batch_size of the model's configs (config.pbtxt, configs/cpu.pbtxt): larger batches are
# sent as several requests.
MAX_BATCH_SIZE = 8
# The version reported when neither the model nor a readable weights.json says which weights ran.
UNKNOWN_VERSION = "unknown"
# The wait before a study whose Triton call failed tries again while the breaker is still closed.
UNAVAILABLE_RETRY_S = 2.0
# gRPC status codes after which the same request may succeed later.
TRANSIENT_STATUSES = frozenset(
    {"StatusCode.UNAVAILABLE", "StatusCode.DEADLINE_EXCEEDED", "StatusCode.RESOURCE_EXHAUSTED"}
)


class TritonUnavailable(RuntimeError):
    """Triton could not be reached or did not answer in time; the request may be retried after retry_after_s."""

    def __init__(self, reason: str, retry_after_s: float) -> None:
        super().__init__(reason)
        self.retry_after_s = retry_after_s


class InferenceFailed(RuntimeError):
    """Triton rejected the request or answered with outputs that do not fit the label map; not transient."""


@dataclass(frozen=True)
class Provenance:
    """Which weights produced a result: the version reported with it, whether they are demo weights, the
    SHA-256 of the model file ("" when unknown), and the operating thresholds published with them (None: none)."""

    version: str
    demo: bool
    sha256: str = ""
    op_threshs: OperatingThresholds | None = None


# Never let a result look validated when nobody can say which weights made it.
UNKNOWN_PROVENANCE = Provenance(version=UNKNOWN_VERSION, demo=True)


@dataclass(frozen=True)
class ServedModel:
    """What Triton serves under the model name: the version directory inference runs ("" if none is listed)
    and the names of its outputs.
    """

    version: str
    outputs: frozenset[str]

    @property
    def reports_provenance(self) -> bool:
        """True when the served config emits model_version and demo_weights (the python backend's)."""
        return {MODEL_VERSION, DEMO_WEIGHTS} <= self.outputs


@dataclass(frozen=True)
class EngineResult:
    """Findings for one image: the model that produced them and one Finding per label the weights were trained for,
    in label order (operating_labels); with a devices model, its provenance and one Landmark per landmark of its map
    (in pixels of the image), else None and ()."""

    model: messages_pb2.ModelInfo
    findings: tuple[messages_pb2.Finding, ...]
    devices_model: messages_pb2.ModelInfo | None = None
    landmarks: tuple[Landmark, ...] = ()


class FindingsEngine:
    """Preprocesses radiographs and scores them with the findings model served by Triton (gRPC).

    Safe to share between threads: each call has its own arrays and request, the gRPC client's unary calls are
    thread-safe, and the cached served-model lookup is replaced whole, never changed in place.
    """

    def __init__(
        self,
        triton_url: str,
        model_name: str,
        labels: tuple[LabelSpec, ...],
        timeout_s: float,
        model_repository: Path | None = None,
        breaker: CircuitBreaker | None = None,
        devices_model: str = "",
        landmarks: tuple[LandmarkSpec, ...] = (),
    ) -> None:
        """model_repository: the local copy of Triton's repository, read for weights.json when the served
        config has no provenance outputs; None: such results report version "unknown" as demo weights.
        breaker: guards every call to Triton (a new CircuitBreaker by default).
        devices_model: the landmark model (cxr_devices) run on the same images, with its landmark map; "": none.
        """
        self.model_name = model_name
        self.labels = labels
        self.timeout_s = timeout_s
        self.model_repository = model_repository
        self.breaker = breaker or CircuitBreaker()
        self.devices_model = devices_model
        self.landmarks = landmarks
        self._landmark_set = landmark_set(landmarks)
        self._client = triton_grpc.InferenceServerClient(url=triton_url)
        self._served: dict[str, ServedModel] = {}  # replaced whole, never changed in place
        self._warn_lock = threading.Lock()  # the unknown-version warning is logged once, whichever thread
        self._warned_unknown = False

    def analyse(self, image: Path | ModelInputs) -> EngineResult:
        """Scores one DICOM radiograph, or the model inputs made from it. Raises ImageUnreadable, TritonUnavailable
        or InferenceFailed."""
        return self.analyse_batch([image])[0]

    def analyse_batch(self, images: Sequence[Path | ModelInputs]) -> tuple[EngineResult, ...]:
        """Scores several radiographs (files, or inputs made from them), one Triton request per MAX_BATCH_SIZE
        images; results in input order. Raises like analyse.
        """
        results: list[EngineResult] = []
        for start in range(0, len(images), MAX_BATCH_SIZE):
            chunk = [self._model_inputs(image) for image in images[start : start + MAX_BATCH_SIZE]]
            found = self._infer(np.stack([inputs.findings for inputs in chunk]))
            if self.devices_model:
                model, heatmaps = self._heatmaps(np.stack([inputs.devices for inputs in chunk if inputs.devices
                                                           is not None]))
                found = [
                    replace(result, devices_model=model,
                            landmarks=tuple(heatmap_peaks(maps, inputs.rows, inputs.columns)))
                    for result, inputs, maps in zip(found, chunk, heatmaps, strict=True)
                ]
            results.extend(found)
        return tuple(results)

    def close(self) -> None:
        """Closes the gRPC channel to Triton."""
        self._client.close()

    def _model_inputs(self, image: Path | ModelInputs) -> ModelInputs:
        """The inputs as given, else both models' inputs from one decode of the file, in one of DECODE_SLOTS (the
        full-size image is dropped within)."""
        if isinstance(image, ModelInputs):
            if self.devices_model and image.devices is None:
                raise ValueError("model inputs without the devices model's input, which runs")
            return image
        with DECODE_SLOTS:
            return make_model_inputs(read_radiograph(image), devices=bool(self.devices_model))

    def _infer(self, batch: npt.NDArray[np.float32]) -> list[EngineResult]:
        """One Triton request for batch float32 (N, 1, 224, 224) in [-1024, 1024]; N results."""
        served = self._served_model(self.model_name)
        names = (PROBABILITIES, MODEL_VERSION, DEMO_WEIGHTS) if served.reports_provenance else (PROBABILITIES,)
        response = self._request(self.model_name, served, batch, names)
        count = batch.shape[0]
        if served.reports_provenance:
            versions, demo_flags = response.as_numpy(MODEL_VERSION), response.as_numpy(DEMO_WEIGHTS)
            try:  # the model reported its version and demo flag itself; weights.json adds SHA-256 and thresholds
                provenance = self._read_manifest(self.model_name, served.version)
            except (OSError, ValueError):
                provenance = UNKNOWN_PROVENANCE
        else:
            provenance = self._manifest_provenance(self.model_name, served.version)
            versions = np.full(count, provenance.version, dtype=np.object_)
            demo_flags = np.full(count, provenance.demo, dtype=np.bool_)
        results = engine_results(self.model_name, self.labels, count, response.as_numpy(PROBABILITIES), versions,
                                 demo_flags, provenance.op_threshs)
        for result in results:
            result.model.weights_sha256 = provenance.sha256
        return results

    def _heatmaps(self, batch: npt.NDArray[np.float32]) -> tuple[messages_pb2.ModelInfo, npt.NDArray[np.float32]]:
        """One request to the devices model for batch float32 (N, 1, 512, 512): its provenance (from weights.json)
        and its heatmaps (N, len(landmarks), H, W). Raises InferenceFailed when they break that contract."""
        served = self._served_model(self.devices_model)
        heatmaps = self._request(self.devices_model, served, batch, (HEATMAPS,)).as_numpy(HEATMAPS)
        if heatmaps is None or heatmaps.ndim != 4 or heatmaps.shape[:2] != (batch.shape[0], len(self.landmarks)):
            shape = None if heatmaps is None else heatmaps.shape
            raise InferenceFailed(f"{self.devices_model}: expected heatmaps ({batch.shape[0]}, "
                                  f"{len(self.landmarks)}, H, W), got {shape}")
        provenance = self._manifest_provenance(self.devices_model, served.version)
        model = messages_pb2.ModelInfo(
            name=self.devices_model, version=provenance.version, demo_weights=provenance.demo,
            weights_sha256=provenance.sha256, label_set=self._landmark_set)
        return model, heatmaps.astype(np.float32, copy=False)

    def _request(self, model: str, served: ServedModel, batch: npt.NDArray[np.float32],
                 outputs: Sequence[str]) -> triton_grpc.InferResult:
        """One inference request to model, pinned to the version whose outputs (and weights.json) were looked up."""
        image = triton_grpc.InferInput(INPUT_NAME, list(batch.shape), "FP32")
        image.set_data_from_numpy(batch)
        try:
            return self._guarded(lambda: self._client.infer(
                model, [image], model_version=served.version,
                outputs=[triton_grpc.InferRequestedOutput(name) for name in outputs], client_timeout=self.timeout_s,
            ))
        except (TritonUnavailable, InferenceFailed):
            self._served = {}  # Triton may have restarted with another config: ask again next time
            raise

    def _served_model(self, model: str) -> ServedModel:
        """The served version and outputs of model, asked of Triton on first use and kept until a request fails.

        Threads arriving together before the first answer each ask (the same answer, stored whole; no lock, so that
        none waits out another's timeout). Read once into a local: another thread's failed request may clear it.
        """
        served = self._served.get(model)
        if served is None:
            metadata = self._guarded(lambda: self._client.get_model_metadata(model, client_timeout=self.timeout_s))
            served = served_model(metadata.versions, (output.name for output in metadata.outputs))
            self._served = {**self._served, model: served}
        return served

    def _read_manifest(self, model: str, version: str) -> Provenance:
        """Provenance from weights.json of model's served version in the local repository; raises OSError or
        ValueError (manifest_provenance) when there is none to read."""
        version_dir = None if self.model_repository is None or not version else (
            self.model_repository / model / version
        )
        return manifest_provenance(version_dir)

    def _manifest_provenance(self, model: str, version: str) -> Provenance:
        """Provenance from weights.json of the served version; UNKNOWN_PROVENANCE (logged once) when unreadable."""
        try:
            return self._read_manifest(model, version)
        except (OSError, ValueError) as exc:
            with self._warn_lock:
                first, self._warned_unknown = not self._warned_unknown, True
            if first:
                log.warning(
                    "%s: the served config reports no weights version and weights.json cannot be read (%s); "
                    "results report version %r as demo weights", model, exc, UNKNOWN_VERSION,
                )
            return UNKNOWN_PROVENANCE

    def _guarded(self, call: Callable[[], Answer]) -> Answer:
        """call() to Triton through the circuit breaker. Raises TritonUnavailable (Triton unreachable or slow, or
        the breaker open) with how long to wait, or InferenceFailed (Triton answered with an error)."""
        try:
            self.breaker.before_call()
        except CircuitOpen as exc:
            raise TritonUnavailable(f"{self.model_name}: {exc}", exc.retry_after_s) from exc
        try:
            answer = call()
        except InferenceServerException as exc:
            message = f"{self.model_name}: {exc.status()}: {exc.message()}"
            if exc.status() in TRANSIENT_STATUSES:
                self.breaker.record_failure()
                raise TritonUnavailable(message, self.breaker.retry_after_s() or UNAVAILABLE_RETRY_S) from exc
            self.breaker.record_success()  # Triton is there: it answered, with an error
            raise InferenceFailed(message) from exc
        except BaseException:
            self.breaker.record_failure()  # not known to have reached Triton; frees a probe slot
            raise
        self.breaker.record_success()
        return answer


def served_model(versions: Iterable[str], outputs: Iterable[str]) -> ServedModel:
    """The ServedModel from Triton's model metadata: the highest ready version (the one Triton runs when a
    request names none) and the output names.
    """
    numeric = [int(version) for version in versions if version.isdigit()]
    return ServedModel(version=str(max(numeric)) if numeric else "", outputs=frozenset(outputs))


def manifest_provenance(version_dir: Path | None) -> Provenance:
    """Provenance from version_dir/weights.json. Raises OSError or ValueError when there is no readable,
    well-formed manifest (version_dir None: nowhere to look).
    """
    if version_dir is None:
        raise FileNotFoundError("no local model repository or served version to read weights.json from")
    manifest = WeightsManifest.read(version_dir)
    return Provenance(
        version=manifest.version, demo=manifest.demo, sha256=manifest.sha256, op_threshs=manifest.op_threshs
    )


def engine_results(
    model_name: str,
    labels: tuple[LabelSpec, ...],
    count: int,
    probabilities: npt.NDArray[np.float32] | None,
    versions: npt.NDArray[np.object_] | None,
    demo_flags: npt.NDArray[np.bool_] | None,
    op_threshs: OperatingThresholds | None = None,
) -> list[EngineResult]:
    """The results for a batch of count images from the model's outputs, in input order, each scored with
    operating_labels(labels, op_threshs) and carrying that label set.

    probabilities: float (count, len(labels)) in [0, 1]; versions and demo_flags: count elements each
    (model_version as bytes or str, demo_weights as bool); op_threshs: the served weights' published thresholds
    (None: labels.json's). Raises InferenceFailed when the outputs or op_threshs break that contract.
    """
    if probabilities is None or probabilities.shape != (count, len(labels)):
        shape = None if probabilities is None else probabilities.shape
        raise InferenceFailed(f"{model_name}: expected probabilities ({count}, {len(labels)}), got {shape}")
    if not np.all((probabilities >= 0.0) & (probabilities <= 1.0)):
        raise InferenceFailed(f"{model_name}: probabilities outside [0, 1]")
    if versions is None or demo_flags is None or versions.size != count or demo_flags.size != count:
        raise InferenceFailed(f"{model_name}: model_version and demo_weights must come with every image")
    try:
        scored = operating_labels(labels, op_threshs)
    except LabelMapError as exc:
        raise InferenceFailed(f"{model_name}: weights.json does not fit the label map: {exc}") from exc
    label_set = findings_label_set(scored)
    return [
        EngineResult(
            model=messages_pb2.ModelInfo(
                name=model_name, version=_text(version), demo_weights=bool(demo), label_set=label_set
            ),
            findings=tuple(finding_for(label, float(row[label.index])) for label in scored),
        )
        for row, version, demo in zip(probabilities, versions.reshape(-1), demo_flags.reshape(-1), strict=True)
    ]


def finding_for(label: LabelSpec, probability: float) -> messages_pb2.Finding:
    """A Finding for one label: PRESENT at >= threshold, UNCERTAIN at >= uncertain_from, else ABSENT."""
    if probability >= label.threshold:
        state = messages_pb2.FINDING_STATE_PRESENT
    elif probability >= label.uncertain_from:
        state = messages_pb2.FINDING_STATE_UNCERTAIN
    else:
        state = messages_pb2.FINDING_STATE_ABSENT
    return messages_pb2.Finding(
        code=label.code,
        display=label.display,
        probability=probability,
        threshold=label.threshold,
        state=state,
        snomed_code=label.snomed or "",
    )


def _text(value: object) -> str:
    """A TYPE_STRING output element (bytes from Triton) as text."""
    return value.decode() if isinstance(value, bytes) else str(value)
