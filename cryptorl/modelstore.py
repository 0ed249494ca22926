"""The model store: trained Crypto Modules as verified, versioned folders.

Layout under a root folder (default ``./models`` or ``$CRYPTORL_MODELS``)::

    <root>/<ASSET>_<interval>/
        CURRENT                 name of the promoted version (one line)
        history.jsonl           one JSON line per save / promotion decision
        v0001-20221001T000000/  one version: model files + DRU state + manifest.json
        v0002-.../

``manifest.json`` holds what the module needs to be trusted and reused (asset, interval, date
ranges, feature spec, algorithm and hyper-parameters, validation metrics, library versions) and
the sha256 of every other file in the folder. :func:`verify` checks them all before anything is
loaded. A version is written into a temporary folder and renamed into place only when complete,
so a crash never leaves a half-written version behind.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
import shutil
import tempfile
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
_LIBRARIES = ["cryptorl", "numpy", "pandas", "torch", "gymnasium", "stable-baselines3", "sb3-contrib", "scikit-learn"]


class ModelStoreError(RuntimeError):
    """A stored model cannot be trusted or does not fit the data it is asked to run on."""


def default_root() -> Path:
    return Path(os.environ.get("CRYPTORL_MODELS", "models"))


def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_manifest(folder: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """Hash every file in ``folder`` and write ``manifest.json`` beside them."""
    folder = Path(folder)
    files = {
        p.relative_to(folder).as_posix(): sha256_file(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    }
    full = {**manifest, "libraries": library_versions(), "files": files}
    (folder / MANIFEST).write_text(json.dumps(full, indent=2, sort_keys=True, default=str))
    return full


def verify(folder: Path) -> dict[str, Any]:
    """Read ``manifest.json`` and check the sha256 of every file it lists; return the manifest."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise ModelStoreError(f"{folder}: no {MANIFEST}; this is not a saved Crypto Module")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ModelStoreError(f"{path}: manifest is not valid JSON ({exc})") from None
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise ModelStoreError(f"{path}: manifest lists no files")
    for name, digest in files.items():
        p = folder / name
        if not p.is_file():
            raise ModelStoreError(f"{folder}: file '{name}' listed in the manifest is missing")
        if sha256_file(p) != digest:
            raise ModelStoreError(
                f"{folder}: file '{name}' does not match its sha256 in the manifest "
                "(tampered with or truncated); refusing to load it"
            )
    return manifest


class ModelStore:
    """Versioned folders of trained modules, one family per (asset, interval)."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else default_root()

    def family(self, asset: str, interval: str) -> Path:
        return self.root / f"{asset.upper()}_{interval}"

    def versions(self, asset: str, interval: str) -> list[Path]:
        fam = self.family(asset, interval)
        if not fam.is_dir():
            return []
        return sorted(p for p in fam.iterdir() if p.is_dir() and p.name.startswith("v") and (p / MANIFEST).is_file())

    def current(self, asset: str, interval: str) -> Path | None:
        """The promoted version's folder, or None when the family has none."""
        pointer = self.family(asset, interval) / "CURRENT"
        if not pointer.is_file():
            return None
        path = self.family(asset, interval) / pointer.read_text().strip()
        return path if path.is_dir() else None

    def save(
        self,
        asset: str,
        interval: str,
        write: Callable[[Path], dict[str, Any]],
        *,
        promote: bool = True,
        note: str = "",
    ) -> Path:
        """Create a new version: ``write(tmpdir)`` writes the files and returns the manifest body.

        The folder is hashed, moved into place atomically and (by default) promoted.
        """
        fam = self.family(asset, interval)
        fam.mkdir(parents=True, exist_ok=True)
        number = len(self.versions(asset, interval)) + 1
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
        name = f"v{number:04d}-{stamp}"
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=fam))
        try:
            body = write(tmp)
            write_manifest(tmp, {**body, "version": name})
            final = fam / name
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self._log(asset, interval, {"event": "saved", "version": name, "note": note})
        if promote:
            self.promote(asset, interval, name, reason=note or ("first version" if number == 1 else "saved"))
        return final

    def promote(self, asset: str, interval: str, version: str, *, reason: str = "") -> None:
        """Make ``version`` the current one (atomic pointer swap) and record why."""
        fam = self.family(asset, interval)
        if not (fam / version / MANIFEST).is_file():
            raise ModelStoreError(f"{fam}: no version named {version}")
        tmp = fam / "CURRENT.tmp"
        tmp.write_text(version + "\n")
        os.replace(tmp, fam / "CURRENT")
        self._log(asset, interval, {"event": "promoted", "version": version, "reason": reason})

    def record(self, asset: str, interval: str, entry: dict[str, Any]) -> None:
        """Append a decision (e.g. a retrained version kept back) to the family's history."""
        self._log(asset, interval, entry)

    def history(self, asset: str, interval: str) -> list[dict[str, Any]]:
        path = self.family(asset, interval) / "history.jsonl"
        if not path.is_file():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def _log(self, asset: str, interval: str, entry: dict[str, Any]) -> None:
        entry = {"time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), **entry}
        with open(self.family(asset, interval) / "history.jsonl", "a") as fh:
            fh.write(json.dumps(entry, default=str) + "\n")
