"""FindingsEngine: radiograph file in, coded findings out. The one place that knows tensor layouts.

It decodes the DICOM image (hilum.common.dicom.pixels), makes the model input, calls the cxr_findings
model on Triton over gRPC and turns the 18 probabilities into Finding messages using the label map's
operating thresholds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import tritonclient.grpc as triton_grpc
from tritonclient.utils import InferenceServerException

from hilum.common.dicom.pixels import ImageUnreadable, read_radiograph
from hilum.inference.labels import LabelSpec
from hilum.inference.preprocessing import to_model_input
from hilum.v1 import messages_pb2

__all__ = [
    "EngineResult",
    "FindingsEngine",
    "ImageUnreadable",
    "InferenceFailed",
    "TritonUnavailable",
    "engine_results",
    "finding_for",
]

INPUT_NAME = "image"
PROBABILITIES = "probabilities"
MODEL_VERSION = "model_version"
DEMO_WEIGHTS = "demo_weights"
# The model's max_batch_size in config.pbtxt: larger batches are sent as several requests.
MAX_BATCH_SIZE = 8
# gRPC status codes after which the same request may succeed later.
TRANSIENT_STATUSES = frozenset(
    {"StatusCode.UNAVAILABLE", "StatusCode.DEADLINE_EXCEEDED", "StatusCode.RESOURCE_EXHAUSTED"}
)


class TritonUnavailable(RuntimeError):
    """Triton could not be reached or did not answer in time; the request may be retried later."""


class InferenceFailed(RuntimeError):
    """Triton rejected the request or answered with outputs that do not fit the label map; not transient."""


@dataclass(frozen=True)
class EngineResult:
    """Findings for one image: the model that produced them and one Finding per label, in label order."""

    model: messages_pb2.ModelInfo
    findings: tuple[messages_pb2.Finding, ...]


class FindingsEngine:
    """Preprocesses radiographs and scores them with the findings model served by Triton (gRPC)."""

    def __init__(
        self, triton_url: str, model_name: str, labels: tuple[LabelSpec, ...], timeout_s: float
    ) -> None:
        self.model_name = model_name
        self.labels = labels
        self.timeout_s = timeout_s
        self._client = triton_grpc.InferenceServerClient(url=triton_url)

    def analyse(self, image_path: Path) -> EngineResult:
        """Scores one DICOM radiograph. Raises ImageUnreadable, TritonUnavailable or InferenceFailed."""
        return self.analyse_batch([image_path])[0]

    def analyse_batch(self, image_paths: Sequence[Path]) -> tuple[EngineResult, ...]:
        """Scores several radiographs, one Triton request per MAX_BATCH_SIZE images; results in input
        order. Raises like analyse.
        """
        results: list[EngineResult] = []
        for start in range(0, len(image_paths), MAX_BATCH_SIZE):
            chunk = image_paths[start : start + MAX_BATCH_SIZE]
            batch = np.stack([to_model_input(read_radiograph(path)) for path in chunk])
            results.extend(self._infer(batch))
        return tuple(results)

    def close(self) -> None:
        """Closes the gRPC channel to Triton."""
        self._client.close()

    def _infer(self, batch: npt.NDArray[np.float32]) -> list[EngineResult]:
        """One Triton request for batch float32 (N, 1, 224, 224) in [-1024, 1024]; N results."""
        image = triton_grpc.InferInput(INPUT_NAME, list(batch.shape), "FP32")
        image.set_data_from_numpy(batch)
        outputs = [
            triton_grpc.InferRequestedOutput(name) for name in (PROBABILITIES, MODEL_VERSION, DEMO_WEIGHTS)
        ]
        try:
            response = self._client.infer(
                self.model_name, [image], outputs=outputs, client_timeout=self.timeout_s
            )
        except InferenceServerException as exc:
            if exc.status() in TRANSIENT_STATUSES:
                raise TritonUnavailable(f"{self.model_name}: {exc.status()}: {exc.message()}") from exc
            raise InferenceFailed(f"{self.model_name}: {exc.status()}: {exc.message()}") from exc
        return engine_results(
            self.model_name,
            self.labels,
            batch.shape[0],
            response.as_numpy(PROBABILITIES),
            response.as_numpy(MODEL_VERSION),
            response.as_numpy(DEMO_WEIGHTS),
        )


def engine_results(
    model_name: str,
    labels: tuple[LabelSpec, ...],
    count: int,
    probabilities: npt.NDArray[np.float32] | None,
    versions: npt.NDArray[np.object_] | None,
    demo_flags: npt.NDArray[np.bool_] | None,
) -> list[EngineResult]:
    """The results for a batch of count images from the model's outputs, in input order.

    probabilities: float (count, len(labels)) in [0, 1]; versions and demo_flags: count elements each
    (model_version as bytes or str, demo_weights as bool). Raises InferenceFailed when the outputs break
    that contract.
    """
    if probabilities is None or probabilities.shape != (count, len(labels)):
        shape = None if probabilities is None else probabilities.shape
        raise InferenceFailed(f"{model_name}: expected probabilities ({count}, {len(labels)}), got {shape}")
    if not np.all((probabilities >= 0.0) & (probabilities <= 1.0)):
        raise InferenceFailed(f"{model_name}: probabilities outside [0, 1]")
    if versions is None or demo_flags is None or versions.size != count or demo_flags.size != count:
        raise InferenceFailed(f"{model_name}: model_version and demo_weights must come with every image")
    return [
        EngineResult(
            model=messages_pb2.ModelInfo(name=model_name, version=_text(version), demo_weights=bool(demo)),
            findings=tuple(finding_for(label, float(row[label.index])) for label in labels),
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
