"""FindingsEngine: radiograph file in, coded findings out. The one place that knows tensor layouts.

It reads and preprocesses the DICOM image, calls the cxr_findings model on Triton over gRPC and turns
the 18 probabilities into Finding messages using the label map's operating thresholds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import tritonclient.grpc as triton_grpc
from tritonclient.utils import InferenceServerException

from hilum.inference.labels import LabelSpec
from hilum.inference.preprocessing import ImageUnreadable, read_radiograph, to_model_input
from hilum.v1 import messages_pb2

__all__ = ["EngineResult", "FindingsEngine", "ImageUnreadable", "InferenceFailed", "TritonUnavailable"]

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

        probabilities = response.as_numpy(PROBABILITIES)
        versions = response.as_numpy(MODEL_VERSION)
        demo_flags = response.as_numpy(DEMO_WEIGHTS)
        count = batch.shape[0]
        if probabilities is None or probabilities.shape != (count, len(self.labels)):
            shape = None if probabilities is None else probabilities.shape
            raise InferenceFailed(
                f"{self.model_name}: expected probabilities ({count}, {len(self.labels)}), got {shape}"
            )
        if not np.all((probabilities >= 0.0) & (probabilities <= 1.0)):
            raise InferenceFailed(f"{self.model_name}: probabilities outside [0, 1]")
        if versions is None or demo_flags is None or versions.size != count or demo_flags.size != count:
            raise InferenceFailed(
                f"{self.model_name}: model_version and demo_weights must come with every image"
            )

        return [
            EngineResult(
                model=messages_pb2.ModelInfo(
                    name=self.model_name, version=_text(version), demo_weights=bool(demo)
                ),
                findings=tuple(self._finding(label, float(row[label.index])) for label in self.labels),
            )
            for row, version, demo in zip(
                probabilities, versions.reshape(-1), demo_flags.reshape(-1), strict=True
            )
        ]

    @staticmethod
    def _finding(label: LabelSpec, probability: float) -> messages_pb2.Finding:
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
