"""The model store: trained Crypto Modules as verified, versioned folders.

Layout under a root folder (default ``./models`` or ``$CRYPTORL_MODELS``)::

    <root>/<ASSET>_<interval>/
        CURRENT                 name of the promoted version (one line)
        history.jsonl           one JSON line per save / promotion decision
        v0001-20221001T000000/  one version: model files + DRU state + manifest.json
        v0002-.../

``manifest.json`` holds what the module needs to be trusted and reused (asset, interval, date
ranges, feature spec, algorithm and hyper-parameters, validation metrics, library versions) and
the sha256 of every other file in the folder; ``manifest.sha256`` holds the sha256 of the manifest
itself, so an edited manifest (moved date ranges, another window) is caught like any other edited
file. :func:`verify` checks them all, and the fields loaders use, before anything is loaded.

A version is written into a temporary ``.tmp-*`` folder and renamed into place only when complete,
so a crash never leaves a half-written version behind (the next save removes such leftovers).
Version numbers never repeat, even after a version folder is deleted: the next number follows
the highest one ever saved in the folder or its history.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
import re
import shutil
import tempfile
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
MANIFEST_HASH = "manifest.sha256"
_VERSION_RE = re.compile(r"^v(\d{4,})-")
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
        if p.is_file() and p.name not in (MANIFEST, MANIFEST_HASH)
    }
    full = {**manifest, "libraries": library_versions(), "files": files}
    (folder / MANIFEST).write_text(json.dumps(full, indent=2, sort_keys=True, default=str))
    (folder / MANIFEST_HASH).write_text(sha256_file(folder / MANIFEST) + "\n")
    return full


def verify(folder: Path) -> dict[str, Any]:
    """Read ``manifest.json`` and check the sha256 of every file it lists; return the manifest."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise ModelStoreError(f"{folder}: no {MANIFEST}; this is not a saved Crypto Module")
    signed = folder / MANIFEST_HASH
    if not signed.is_file():
        raise ModelStoreError(
            f"{folder}: no {MANIFEST_HASH} (saved by an older version, or removed); "
            "its manifest cannot be trusted: retrain the module"
        )
    if signed.read_text().strip() != sha256_file(path):
        raise ModelStoreError(
            f"{folder}: {MANIFEST} does not match its sha256 in {MANIFEST_HASH} (edited or "
            "truncated); refusing to load it"
        )
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelStoreError(f"{path}: manifest is not valid JSON ({exc})") from None
    if not isinstance(manifest, dict):
        raise ModelStoreError(f"{path}: manifest is not a JSON object")
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
    check_manifest(manifest, folder)
    return manifest


def check_manifest(manifest: dict[str, Any], folder: Path) -> None:
    """The fields a loader uses: present, of the right type and consistent with each other."""
    import pandas as pd

    def bad(what: str) -> ModelStoreError:
        return ModelStoreError(f"{folder}: manifest field {what}; refusing to load it")

    if manifest.get("kind", "crypto_module") != "crypto_module":
        return
    config = manifest.get("config")
    if not isinstance(config, dict):
        raise bad("'config' is missing or not a mapping")
    for key in ("asset", "interval", "algo"):
        if not isinstance(config.get(key), str) or not config[key]:
            raise bad(f"config.{key} is missing or not text")
    for key in ("window", "features_dim"):
        v = config.get(key)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise bad(f"config.{key} = {v!r} is not a positive integer")
    for key in ("asset", "interval"):
        if key in manifest and manifest[key] != config[key]:
            raise bad(f"{key} = {manifest[key]!r} disagrees with config.{key} = {config[key]!r}")
    spec = manifest.get("feature_spec")
    if not isinstance(spec, dict):
        raise bad("'feature_spec' is missing or not a mapping")
    shape = spec.get("observation_shape")
    if not (isinstance(shape, list) and len(shape) == 3 and all(isinstance(n, int) and n > 0 for n in shape)):
        raise bad(f"feature_spec.observation_shape = {shape!r} is not three positive integers")
    if shape[2] != config["window"]:
        raise bad(f"feature_spec.observation_shape {shape} does not end with config.window = {config['window']}")
    ranges = manifest.get("ranges", {})
    if not isinstance(ranges, dict):
        raise bad("'ranges' is not a mapping")
    previous_end = None
    for name in ("train", "validation", "backtest"):
        if name not in ranges:
            continue
        pair = ranges[name]
        try:
            a, b = (pd.Timestamp(t) for t in pair)
        except (TypeError, ValueError):
            raise bad(f"ranges.{name} = {pair!r} is not two timestamps") from None
        if b < a or (previous_end is not None and a <= previous_end):
            raise bad(f"ranges.{name} = {pair!r} is out of order (train < validation < backtest)")
        previous_end = b


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
        """The promoted version's folder, or None when the family has none.

        A ``CURRENT`` that names a missing version raises :class:`ModelStoreError` naming it.
        """
        pointer = self.family(asset, interval) / "CURRENT"
        if not pointer.is_file():
            return None
        name = pointer.read_text().strip()
        path = self.family(asset, interval) / name
        if not name or "/" in name or not (path / MANIFEST).is_file():
            raise ModelStoreError(
                f"{pointer} names version {name!r}, which is not in {self.family(asset, interval)}; "
                f"promote another version (ModelStore.promote) or remove {pointer.name} and retrain"
            )
        return path

    def next_number(self, asset: str, interval: str) -> int:
        """The number of the next version: one more than any version ever saved in the family
        (folders on disk, leftovers included, and the history), so numbers never repeat."""
        fam = self.family(asset, interval)
        seen = [0]
        if fam.is_dir():
            seen += [int(m.group(1)) for p in fam.iterdir() if (m := _VERSION_RE.match(p.name))]
        for entry in self.history(asset, interval):
            m = _VERSION_RE.match(str(entry.get("version", "")))
            if m:
                seen.append(int(m.group(1)))
        return max(seen) + 1

    def clean_leftovers(self, asset: str, interval: str) -> list[Path]:
        """Remove the ``.tmp-*`` folders an interrupted save left behind; return them."""
        fam = self.family(asset, interval)
        gone = [p for p in fam.glob(".tmp-*") if p.is_dir()] if fam.is_dir() else []
        for p in gone:
            shutil.rmtree(p, ignore_errors=True)
        return gone

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
        self.clean_leftovers(asset, interval)
        number = self.next_number(asset, interval)
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
        out = []
        for i, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                raise ModelStoreError(f"{path}: line {i} is not valid JSON; repair or remove that line") from None
        return out

    def _log(self, asset: str, interval: str, entry: dict[str, Any]) -> None:
        entry = {"time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), **entry}
        with open(self.family(asset, interval) / "history.jsonl", "a") as fh:
            fh.write(json.dumps(entry, default=str) + "\n")
