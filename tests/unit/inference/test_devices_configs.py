"""The cxr_devices Triton configs and landmark map parse and agree with the exported model.

config.pbtxt serves the embedded server (python backend); configs/cpu.pbtxt and configs/gpu.pbtxt serve the
stock NVIDIA image (`--model-config-name=cpu|gpu`, onnxruntime backend). landmarks.json names the heatmaps in
output order. A typo, a drifting tensor or a reordered landmark fails here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from hilum.common.reported_findings import DeviceType
from hilum.inference import engine
from hilum.inference.device_placement import REFERENCE_LANDMARK
from hilum.inference.devices_export import DEVICES_MODEL_NAME, HEATMAPS
from hilum.inference.landmark_net import HEATMAP_SIZE, INPUT_SIZE, LANDMARKS
from hilum.inference.model_export import INPUT_NAME, MODEL_FILE
from tests.helpers import REPO_ROOT

MODEL_DIR = REPO_ROOT / "model_repository" / DEVICES_MODEL_NAME
CONFIG_PATHS = sorted([MODEL_DIR / "config.pbtxt", *(MODEL_DIR / "configs").glob("*.pbtxt")])
IMAGE_DIMS = [1, INPUT_SIZE, INPUT_SIZE]
HEATMAP_DIMS = [len(LANDMARKS), HEATMAP_SIZE, HEATMAP_SIZE]


def parse(path: Path) -> model_config_pb2.ModelConfig:
    """A config file as Triton's ModelConfig message; raises on an unknown field or a syntax error."""
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def landmark_entries() -> list[dict[str, Any]]:
    """The "landmarks" list of landmarks.json."""
    entries: list[dict[str, Any]] = json.loads((MODEL_DIR / "landmarks.json").read_text())["landmarks"]
    return entries


def test_the_stock_image_configs_exist() -> None:
    assert {path.name for path in CONFIG_PATHS} == {"config.pbtxt", "cpu.pbtxt", "gpu.pbtxt"}


@pytest.mark.parametrize("path", CONFIG_PATHS, ids=lambda path: path.name)
def test_every_config_serves_image_in_and_heatmaps_out(path: Path) -> None:
    config = parse(path)

    assert config.name == DEVICES_MODEL_NAME
    assert [(i.name, i.data_type, list(i.dims)) for i in config.input] == [
        (INPUT_NAME, model_config_pb2.TYPE_FP32, IMAGE_DIMS)
    ]
    # Heatmaps only, under every config: the engine reads the version and demo flag from weights.json.
    assert [(o.name, o.data_type, list(o.dims)) for o in config.output] == [
        (HEATMAPS, model_config_pb2.TYPE_FP32, HEATMAP_DIMS)
    ]
    assert config.max_batch_size >= engine.MAX_BATCH_SIZE
    # Batches form from requests that queue while the instance is busy; a lone request never waits for company.
    assert config.HasField("dynamic_batching")
    assert config.dynamic_batching.max_queue_delay_microseconds == 0


def test_the_embedded_config_runs_model_py_on_cpu() -> None:
    config = parse(MODEL_DIR / "config.pbtxt")

    assert config.backend == "python"
    assert (MODEL_DIR / "1" / "model.py").is_file()
    assert config.max_batch_size == engine.MAX_BATCH_SIZE
    assert [group.kind for group in config.instance_group] == [model_config_pb2.ModelInstanceGroup.KIND_CPU]


@pytest.mark.parametrize("name", ["cpu", "gpu"])
def test_stock_image_configs_run_the_exported_onnx_file(name: str) -> None:
    config = parse(MODEL_DIR / "configs" / f"{name}.pbtxt")

    assert config.backend == "onnxruntime"
    assert config.default_model_filename == MODEL_FILE


def test_cpu_config_runs_on_cpu_with_bounded_threads() -> None:
    config = parse(MODEL_DIR / "configs" / "cpu.pbtxt")

    assert [group.kind for group in config.instance_group] == [model_config_pb2.ModelInstanceGroup.KIND_CPU]
    assert config.max_batch_size == engine.MAX_BATCH_SIZE
    # "0" would mean one thread per core of the node, not of the pod.
    assert int(config.parameters["intra_op_thread_count"].string_value) > 0


def test_gpu_config_runs_tensorrt_fp16_on_gpu() -> None:
    config = parse(MODEL_DIR / "configs" / "gpu.pbtxt")
    shape = "x".join(str(dim) for dim in IMAGE_DIMS)

    assert [group.kind for group in config.instance_group] == [model_config_pb2.ModelInstanceGroup.KIND_GPU]
    (accelerator,) = config.optimization.execution_accelerators.gpu_execution_accelerator
    assert accelerator.name == "tensorrt"
    assert accelerator.parameters["precision_mode"] == "FP16"
    assert int(accelerator.parameters["max_workspace_size_bytes"]) > 0
    # The engine cache is keyed on the model path, not the weights: a swapped model.onnx would run stale ones.
    assert "trt_engine_cache_enable" not in accelerator.parameters
    assert accelerator.parameters["trt_profile_min_shapes"] == f"{INPUT_NAME}:1x{shape}"
    assert accelerator.parameters["trt_profile_max_shapes"] == f"{INPUT_NAME}:{config.max_batch_size}x{shape}"
    (warmup,) = config.model_warmup
    assert set(warmup.inputs) == {INPUT_NAME}
    assert list(warmup.inputs[INPUT_NAME].dims) == IMAGE_DIMS


def test_landmarks_json_lists_the_heatmaps_in_output_order() -> None:
    entries = landmark_entries()

    assert [entry["index"] for entry in entries] == list(range(len(LANDMARKS)))
    assert tuple(entry["code"] for entry in entries) == LANDMARKS
    assert all(isinstance(entry["display"], str) and entry["display"] for entry in entries)


def test_every_device_type_has_one_tip_and_its_reference_landmark() -> None:
    entries = landmark_entries()
    tips = [entry["device"] for entry in entries if entry["role"] == "device_tip"]
    anatomy = {entry["display"].lower() for entry in entries if entry["role"] == "anatomy"}

    assert {entry["role"] for entry in entries} == {"device_tip", "anatomy"}
    assert sorted(tips) == sorted(kind.value for kind in DeviceType)
    assert all(entry["device"] is None for entry in entries if entry["role"] == "anatomy")
    # device_placement names each reference landmark by the display that landmarks.json gives it.
    assert anatomy == set(REFERENCE_LANDMARK.values())
