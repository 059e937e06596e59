"""Triton python-backend model for cxr_findings: runs 1/model.onnx with onnxruntime on the CPU.

Loaded by Triton, never imported by Hilum. Each response carries the probabilities plus the weights
version and demo flag read from 1/weights.json, so no result can lose track of which weights made it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import triton_python_backend_utils as pb_utils

MODEL_FILE = "model.onnx"
MANIFEST_FILE = "weights.json"
PROVISION_HINT = "run `hilum models demo` or `hilum models fetch`"


class TritonPythonModel:
    """One CPU instance: an onnxruntime session plus the manifest of the weights it runs."""

    def initialize(self, args: dict[str, str]) -> None:
        """Opens model.onnx and weights.json of this version; fails loudly when they are not provisioned."""
        version_dir = Path(args["model_repository"]) / args["model_version"]
        model_path, manifest_path = version_dir / MODEL_FILE, version_dir / MANIFEST_FILE
        if not model_path.is_file() or not manifest_path.is_file():
            raise pb_utils.TritonModelException(
                f"cxr_findings: {model_path} or {manifest_path} is missing; {PROVISION_HINT}"
            )
        manifest = json.loads(manifest_path.read_text())
        self.version = str(manifest["version"])
        self.demo = bool(manifest["demo"])

        parameters = json.loads(args["model_config"]).get("parameters", {})
        threads = int(parameters.get("intra_op_threads", {}).get("string_value", "0"))
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # Idle threads sleep instead of spinning: this process shares its cores with Hilum's workers.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # No memory pattern: it plans and keeps a block for each batch size seen (the dynamic batcher makes many); the
        # arena still reuses buffers. Measured: 65-90 MB less at batch sizes 1-8, the same time per image.
        options.enable_mem_pattern = False
        self.session = onnxruntime.InferenceSession(
            str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
        )

    def execute(self, requests: list[Any]) -> list[Any]:
        """Runs all requests of a dynamic batch in one onnxruntime call; one response per request."""
        images = [pb_utils.get_input_tensor_by_name(request, "image").as_numpy() for request in requests]
        try:
            batch = np.concatenate(images).astype(np.float32, copy=False)
            (probabilities,) = self.session.run(["probabilities"], {"image": batch})
        except Exception as exc:  # every request of the batch gets the error rather than the server
            error = pb_utils.TritonError(f"cxr_findings: inference failed: {exc}")
            return [pb_utils.InferenceResponse(output_tensors=[], error=error) for _ in requests]

        responses = []
        start = 0
        for image in images:
            count = image.shape[0]
            responses.append(
                pb_utils.InferenceResponse(
                    output_tensors=[
                        pb_utils.Tensor("probabilities", probabilities[start : start + count]),
                        pb_utils.Tensor(
                            "model_version", np.full((count, 1), self.version.encode(), dtype=np.object_)
                        ),
                        pb_utils.Tensor("demo_weights", np.full((count, 1), self.demo, dtype=np.bool_)),
                    ]
                )
            )
            start += count
        return responses

    def finalize(self) -> None:
        """Releases the onnxruntime session when Triton unloads the model."""
        del self.session
