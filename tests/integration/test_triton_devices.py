"""The cxr_devices model on a real tritonserver: it loads beside cxr_findings, and its heatmaps over gRPC are those
ONNX Runtime computes from the same model file, per image of a batched request."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime
import pytest
import tritonclient.grpc as triton_grpc

from hilum.common.settings import TritonSection
from hilum.inference.devices_export import DEVICES_MODEL_NAME, HEATMAPS
from hilum.inference.model_export import INPUT_NAME, MODEL_FILE

pytestmark = pytest.mark.integration

LANDMARK_COUNT = 9
# Far below the level at which a landmark counts as found (0.5): the served demo model shows no device.
DEMO_MAXIMUM = 0.05


def chest_like(seed: int) -> npt.NDArray[np.float32]:
    """A model input float32 (1, 1, 512, 512) in [-1024, 1024]: bright mediastinum, two dark lung fields, mottle."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:512, 0:512] / 512.0
    image = 600.0 + 200.0 * y
    for centre_x in (0.3, 0.7):
        lung = ((x - centre_x) / 0.17) ** 2 + ((y - 0.5) / 0.32) ** 2 < 1.0
        image[lung] -= 900.0 + 200.0 * rng.uniform()
    image += rng.normal(0.0, 30.0, image.shape)
    pixels: npt.NDArray[np.float32] = np.clip(image, -1024.0, 1024.0).astype(np.float32)[None, None]
    return pixels


@pytest.fixture(scope="module")
def client(triton_server: TritonSection) -> Iterator[triton_grpc.InferenceServerClient]:
    """A gRPC client of the session's Triton server."""
    triton = triton_grpc.InferenceServerClient(triton_server.grpc_url)
    yield triton
    triton.close()


@pytest.fixture(scope="module")
def reference(triton_server: TritonSection) -> onnxruntime.InferenceSession:
    """ONNX Runtime over the model file that the server loaded."""
    model_file: Path = triton_server.model_repository / DEVICES_MODEL_NAME / "1" / MODEL_FILE
    return onnxruntime.InferenceSession(str(model_file), providers=["CPUExecutionProvider"])


def infer(client: triton_grpc.InferenceServerClient, images: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """One request to cxr_devices: images float32 (N, 1, 512, 512) -> heatmaps float32 (N, K, 128, 128)."""
    request = triton_grpc.InferInput(INPUT_NAME, list(images.shape), "FP32")
    request.set_data_from_numpy(images)
    result = client.infer(DEVICES_MODEL_NAME, [request], outputs=[triton_grpc.InferRequestedOutput(HEATMAPS)])
    heatmaps: npt.NDArray[np.float32] = result.as_numpy(HEATMAPS)
    return heatmaps


def test_the_devices_model_is_ready_and_serves_heatmaps_only(client: triton_grpc.InferenceServerClient) -> None:
    assert client.is_model_ready(DEVICES_MODEL_NAME)
    metadata = client.get_model_metadata(DEVICES_MODEL_NAME)
    assert [(tensor.name, list(tensor.shape)) for tensor in metadata.inputs] == [(INPUT_NAME, [-1, 1, 512, 512])]
    assert [(tensor.name, list(tensor.shape)) for tensor in metadata.outputs] == [
        (HEATMAPS, [-1, LANDMARK_COUNT, 128, 128])
    ]


def test_heatmaps_over_grpc_equal_onnxruntime(
    client: triton_grpc.InferenceServerClient, reference: onnxruntime.InferenceSession
) -> None:
    image = chest_like(seed=0)

    heatmaps = infer(client, image)

    assert heatmaps.shape == (1, LANDMARK_COUNT, 128, 128)
    assert heatmaps.dtype == np.float32
    (expected,) = reference.run(None, {INPUT_NAME: image})
    np.testing.assert_allclose(heatmaps, expected, atol=1e-4)
    assert float(heatmaps.max()) < DEMO_MAXIMUM


def test_each_image_of_a_batched_request_gets_its_own_heatmaps(
    client: triton_grpc.InferenceServerClient, reference: onnxruntime.InferenceSession
) -> None:
    images = np.concatenate([chest_like(seed=1), chest_like(seed=2)])

    heatmaps = infer(client, images)

    assert heatmaps.shape == (2, LANDMARK_COUNT, 128, 128)
    for index in range(2):
        (expected,) = reference.run(None, {INPUT_NAME: images[index : index + 1]})
        np.testing.assert_allclose(heatmaps[index : index + 1], expected, atol=1e-4)
    assert not np.allclose(heatmaps[0], heatmaps[1], atol=1e-6)
