"""What the model repository serves, read from its files: the manifest of a model's newest version folder.

Triton (version policy "latest") serves a model's highest numbered version folder; its weights.json names the
version every result of that model will carry. Read without Triton, e.g. by `hilum reprocess`.
"""

from __future__ import annotations

from pathlib import Path

from hilum.inference.model_export import MANIFEST_FILE, WeightsManifest


def served_version(model_repository: Path, model: str) -> str | None:
    """The version the repository serves for `model` (the weights.json of its highest numbered version folder), or
    None when it cannot be read from here."""
    folders = [p for p in (model_repository / model).glob("*") if p.name.isdigit() and (p / MANIFEST_FILE).is_file()]
    if not folders:
        return None
    try:
        return WeightsManifest.read(max(folders, key=lambda p: int(p.name))).version
    except (OSError, ValueError):
        return None
