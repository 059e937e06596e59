"""`hilum models fetch` without a file: the published checkpoint is downloaded (here from a local HTTP server standing
in for the release), whole or not at all, and exported like a provisioned file; an unreachable source says what to
do instead."""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

from hilum import cli
from hilum.inference.densenet import demo_model
from hilum.inference.model_export import WeightsManifest, file_sha256
from hilum.inference.weights_download import PUBLISHED_WEIGHTS_URL, DownloadFailed, download_weights
from hilum.runtime.ports import free_port


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the standard library's name
        """Nothing on stderr."""


@pytest.fixture
def release(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A local HTTP server over a folder holding a DenseNet-121 state_dict in the torchxrayvision layout."""
    folder = tmp_path / "release"
    folder.mkdir()
    torch.save(demo_model(seed=11).state_dict(), folder / "published-densenet.pt")
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), functools.partial(_Quiet, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", folder
    finally:
        server.shutdown()
        server.server_close()


def test_the_default_source_is_torchxrayvisions_densenet121_res224_all_release() -> None:
    assert PUBLISHED_WEIGHTS_URL.startswith("https://github.com/mlmed/torchxrayvision/releases/download/")
    assert PUBLISHED_WEIGHTS_URL.endswith("densenet121-d121-tw-lr001-rot45-tr15-sc15-seed0-best.pt")


def test_a_download_lands_whole_under_its_own_name(release: tuple[str, Path], tmp_path: Path) -> None:
    base, folder = release
    path = download_weights(f"{base}/published-densenet.pt", tmp_path / "weights")
    assert path == tmp_path / "weights" / "published-densenet.pt"
    assert file_sha256(path) == file_sha256(folder / "published-densenet.pt")
    assert [p.name for p in path.parent.iterdir()] == ["published-densenet.pt"]  # no partial file left


def test_a_missing_file_or_an_unreachable_server_fails_with_what_to_do(release: tuple[str, Path],
                                                                       tmp_path: Path) -> None:
    base, _ = release
    with pytest.raises(DownloadFailed, match="provision the file"):
        download_weights(f"{base}/absent.pt", tmp_path / "weights")
    with pytest.raises(DownloadFailed, match="provision the file"):
        download_weights(f"http://127.0.0.1:{free_port()}/weights.pt", tmp_path / "weights")
    assert list((tmp_path / "weights").iterdir()) == []


def test_fetch_downloads_and_exports_published_weights_with_the_operators_thresholds(
    release: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base, folder = release
    monkeypatch.setenv("HILUM_TRITON__MODEL_REPOSITORY", str(tmp_path / "models"))
    monkeypatch.setenv("HILUM_STORAGE__DATA_DIR", str(tmp_path / "data"))
    op_threshs = [*[0.1] * 16, None, 0.2]
    thresholds = tmp_path / "op_threshs.json"
    thresholds.write_text(json.dumps(op_threshs))
    assert cli.main(["models", "fetch", "--url", f"{base}/published-densenet.pt", "--op-threshs", str(thresholds)]) == 0
    manifest = WeightsManifest.read(tmp_path / "models" / "cxr_findings" / "1")
    sha256 = file_sha256(folder / "published-densenet.pt")
    assert manifest.demo is False
    assert manifest.version == f"published-densenet-{sha256[:12]}" and sha256 in manifest.source
    assert manifest.op_threshs == tuple(op_threshs) and manifest.untrained_outputs == (16,)
    assert (tmp_path / "data" / "weights" / "published-densenet.pt").is_file()


def test_fetch_from_an_unreachable_source_exports_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HILUM_TRITON__MODEL_REPOSITORY", str(tmp_path / "models"))
    monkeypatch.setenv("HILUM_STORAGE__DATA_DIR", str(tmp_path / "data"))
    with pytest.raises(SystemExit, match="hilum models fetch: could not download"):
        cli.main(["models", "fetch", "--url", f"http://127.0.0.1:{free_port()}/weights.pt"])
    assert not (tmp_path / "models").exists()
