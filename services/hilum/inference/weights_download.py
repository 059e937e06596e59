"""Downloads the published torchxrayvision weights for cxr_findings where the internet is reachable.

`hilum models fetch` without --weights calls download_weights: the file is streamed into a partial file and
moved into place once whole, and its SHA-256 is logged and recorded by the export (weights.json). Nothing is
downloaded by any other command, and nothing at all where only a provisioned file is allowed (--weights FILE).
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from urllib.parse import urlsplit

import httpx

log = logging.getLogger(__name__)

# torchxrayvision's densenet121-res224-all ("all" datasets) checkpoint, as its models.model_urls names it.
PUBLISHED_WEIGHTS_URL = (
    "https://github.com/mlmed/torchxrayvision/releases/download/v1/"
    "nih-pc-chex-mimic_ch-google-openi-kaggle-densenet121-d121-tw-lr001-rot45-tr15-sc15-seed0-best.pt"
)
DOWNLOAD_TIMEOUT_S = 60.0
_CHUNK = 1 << 20


class DownloadFailed(RuntimeError):
    """The weights could not be downloaded (no network, an HTTP error, a broken transfer)."""


def download_weights(url: str, folder: Path) -> Path:
    """The file at url, downloaded into folder under its own name; returns its path. A file already there whole
    (from an earlier fetch) is downloaded again, so that a changed release is never mistaken for the old one.
    Raises DownloadFailed."""
    name = Path(urlsplit(url).path).name
    if not name:
        raise DownloadFailed(f"{url}: names no file")
    folder.mkdir(parents=True, exist_ok=True)
    target, partial = folder / name, folder / f"{name}.partial"
    digest = hashlib.sha256()
    try:
        with httpx.stream("GET", url, follow_redirects=True, timeout=DOWNLOAD_TIMEOUT_S) as response:
            response.raise_for_status()
            with partial.open("wb") as handle:
                for chunk in response.iter_bytes(_CHUNK):
                    handle.write(chunk)
                    digest.update(chunk)
    except httpx.HTTPError as exc:
        partial.unlink(missing_ok=True)
        raise DownloadFailed(f"could not download {url} ({type(exc).__name__}: {exc}); where the internet is not "
                             "reachable, provision the file and run `hilum models fetch --weights FILE`") from exc
    partial.replace(target)
    log.info("weights downloaded", extra={"file": name, "sha256": digest.hexdigest()})
    return target
