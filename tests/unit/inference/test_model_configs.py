"""The cxr_findings Triton configs parse as Triton's ModelConfig and agree on the model the engine calls.

config.pbtxt serves the embedded server (python backend); configs/cpu.pbtxt and configs/gpu.pbtxt serve the
stock NVIDIA image (`--model-config-name=cpu|gpu`, onnxruntime backend). A typo or a drifting tensor fails here.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from hilum.inference import engine
from hilum.inference.labels import load_label_map
from hilum.inference.model_export import FINDINGS_MODEL_NAME, MODEL_FILE
from tests.helpers import REPO_ROOT

MODEL_DIR = REPO_ROOT / "model_repository" / FINDINGS_MODEL_NAME
CONFIG_PATHS = sorted([MODEL_DIR / "config.pbtxt", *(MODEL_DIR / "configs").glob("*.pbtxt")])


def parse(path: Path) -> model_config_pb2.ModelConfig:
    """A config file as Triton's ModelConfig message; raises on an unknown field or a syntax error."""
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def outputs(config: model_config_pb2.ModelConfig) -> dict[str, model_config_pb2.ModelOutput]:
    """The config's outputs by name."""
    return {output.name: output for output in config.output}


def test_the_stock_image_configs_exist() -> None:
    assert {path.name for path in CONFIG_PATHS} == {"config.pbtxt", "cpu.pbtxt", "gpu.pbtxt"}


@pytest.mark.parametrize("path", CONFIG_PATHS, ids=lambda path: path.name)
def test_every_config_serves_the_model_the_engine_calls(path: Path) -> None:
    config = parse(path)
    labels = load_label_map(MODEL_DIR)

    assert config.name == FINDINGS_MODEL_NAME
    assert [(i.name, i.data_type, list(i.dims)) for i in config.input] == [
        (engine.INPUT_NAME, model_config_pb2.TYPE_FP32, [1, 224, 224])
    ]
    probabilities = outputs(config)[engine.PROBABILITIES]
    assert probabilities.data_type == model_config_pb2.TYPE_FP32
    assert list(probabilities.dims) == [len(labels)]
    # The engine sends up to MAX_BATCH_SIZE images per request: every config must take that many.
    assert config.max_batch_size >= engine.MAX_BATCH_SIZE
    # Batches form from requests that queue while the instance is busy; a lone request never waits for company.
    assert config.HasField("dynamic_batching")
    assert config.dynamic_batching.max_queue_delay_microseconds == 0


def test_the_embedded_config_runs_model_py_and_reports_provenance() -> None:
    config = parse(MODEL_DIR / "config.pbtxt")

    assert config.backend == "python"
    assert (MODEL_DIR / "1" / "model.py").is_file()
    assert outputs(config)[engine.MODEL_VERSION].data_type == model_config_pb2.TYPE_STRING
    assert outputs(config)[engine.DEMO_WEIGHTS].data_type == model_config_pb2.TYPE_BOOL


@pytest.mark.parametrize("name", ["cpu", "gpu"])
def test_stock_image_configs_run_the_exported_onnx_file(name: str) -> None:
    config = parse(MODEL_DIR / "configs" / f"{name}.pbtxt")

    assert config.backend == "onnxruntime"
    assert config.default_model_filename == MODEL_FILE
    # onnxruntime cannot emit the provenance strings: the engine reads weights.json instead.
    assert set(outputs(config)) == {engine.PROBABILITIES}


def test_cpu_config_runs_on_cpu_with_bounded_threads() -> None:
    config = parse(MODEL_DIR / "configs" / "cpu.pbtxt")

    assert [group.kind for group in config.instance_group] == [model_config_pb2.ModelInstanceGroup.KIND_CPU]
    assert config.max_batch_size == engine.MAX_BATCH_SIZE
    # "0" would mean one thread per core of the node, not of the pod.
    assert int(config.parameters["intra_op_thread_count"].string_value) > 0


def test_gpu_config_runs_tensorrt_fp16_on_gpu() -> None:
    config = parse(MODEL_DIR / "configs" / "gpu.pbtxt")

    assert [group.kind for group in config.instance_group] == [model_config_pb2.ModelInstanceGroup.KIND_GPU]
    assert config.max_batch_size == 64
    (accelerator,) = config.optimization.execution_accelerators.gpu_execution_accelerator
    assert accelerator.name == "tensorrt"
    assert accelerator.parameters["precision_mode"] == "FP16"
    assert int(accelerator.parameters["max_workspace_size_bytes"]) > 0
    # The engine cache is keyed on the model path, not the weights: a swapped model.onnx would run stale ones.
    assert "trt_engine_cache_enable" not in accelerator.parameters
    assert accelerator.parameters["trt_profile_max_shapes"] == f"{engine.INPUT_NAME}:{config.max_batch_size}x1x224x224"
    (warmup,) = config.model_warmup
    assert set(warmup.inputs) == {engine.INPUT_NAME}
    assert list(warmup.inputs[engine.INPUT_NAME].dims) == [1, 224, 224]
