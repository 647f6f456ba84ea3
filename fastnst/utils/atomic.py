"""Atomic file writes: readers see either the old file or the complete new one, never a partial file.

Every output of fastnst (images, videos, checkpoints, model files, ONNX exports) goes through :func:`atomic_path`,
so this is the one place that sets output file modes and turns a full disk into a one-line error.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from fastnst.utils.errors import OutputError

_DISK_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (changing it races with other threads)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def output_mode() -> int:
    """The mode a new file gets from ``open()``: 0o666 less the umask (0o644 under the usual umask 022)."""
    return 0o666 & ~current_umask()


_TEMPORARY_MARK = ".tmp"  # atomic_path's temporaries: ".<stem>.<mkstemp's 8 random characters>.tmp<suffix>"
_TEMPORARY_NAME = re.compile(rf"\.(?P<stem>.+)\.[a-z0-9_]{{8}}{re.escape(_TEMPORARY_MARK)}(?P<suffix>.*)")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is fsynced and renamed over ``path``.

    On any exception the temporary file is removed and ``path`` is left untouched; a full disk becomes an
    :class:`~fastnst.utils.errors.OutputError` naming ``path``. The temporary name keeps the target's suffix so
    libraries that pick a format from the extension (PIL, torch) still work. The mode is set after the writer is
    done, since some writers (safetensors) recreate the file: mkstemp's 0600 would otherwise survive.
    """
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=f"{_TEMPORARY_MARK}{target.suffix}",
                                        dir=target.parent)
    except OSError as exc:
        full = _disk_full(target, exc)
        if full is not None:
            raise full from None
        raise
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, output_mode())
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        full = _disk_full(target, exc)
        if full is not None:
            raise full from None
        raise


def remove_leftover_temporaries(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Remove the temporary files :func:`atomic_path` left beside ``paths`` when their writer was killed (SIGKILL
    skips the clean-up), e.g. a Ray worker killed mid-write whose job was retried under a new temporary name.

    Only names of the exact form ``atomic_path`` makes for one of ``paths`` are touched, and each folder is listed
    once however many outputs it holds; call it when no writer of ``paths`` is left running."""
    names_by_folder: dict[Path, set[str]] = {}
    for path in paths:
        target = Path(path)
        names_by_folder.setdefault(target.parent, set()).add(target.name)
    removed = []
    for folder, names in names_by_folder.items():
        try:
            entries = list(os.scandir(folder))
        except FileNotFoundError:
            continue
        for entry in entries:
            match = _TEMPORARY_NAME.fullmatch(entry.name)
            if match and match["stem"] + match["suffix"] in names and entry.is_file(follow_symlinks=False):
                Path(entry.path).unlink(missing_ok=True)
                removed.append(Path(entry.path))
    return removed


def _disk_full(target: Path, exc: BaseException) -> OutputError | None:
    if isinstance(exc, OSError) and exc.errno in _DISK_FULL:
        return OutputError(f"cannot write {target}: no space left on device")
    return None


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes | bytearray | memoryview) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        handle.write(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))
