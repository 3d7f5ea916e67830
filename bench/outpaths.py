"""Output paths checked before any work: a command that would fail to write its result after minutes of work,
or write somewhere it must not, stops first with one line naming the flag and the path (exit status 2).

The checks write nothing. Permission bits alone are not enough: root passes `os.access` everywhere, /proc
and /sys accept nothing whatever the bits say, so a read-only mount is refused from `statvfs` and a
filesystem without blocks (proc, sysfs; some FUSE mounts) is asked with a probe file that is removed at once.
Imports nothing heavy: bench.report and bench.compare use it and never import torch.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable


class OutputPathError(ValueError):
    """An output path that can't or mustn't be written: one line, `<flag> <path>: <why>`."""

    def __init__(self, key: str, path: str | os.PathLike, why: str):
        super().__init__(f"{key} {path}: {why}")


def _nearest_existing(path: Path) -> Path:
    path = Path(os.path.abspath(path))
    while not os.path.lexists(path) and path != path.parent:
        path = path.parent
    return path


def _cannot_create_in(folder: Path) -> str | None:
    """Why files can't be created in an existing folder, or None."""
    if not folder.is_dir():
        return f"{folder} is not a folder"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"no permission to write in {folder}"
    try:
        stat = os.statvfs(folder)
    except OSError as exc:
        return f"cannot write in {folder} ({exc.strerror})"
    if stat.f_flag & os.ST_RDONLY:
        return f"{folder} is on a read-only filesystem"
    if stat.f_blocks == 0:  # proc, sysfs and the like: only a real attempt tells
        try:
            fd, probe = tempfile.mkstemp(prefix=".bench-probe-", dir=folder)
        except OSError as exc:
            return f"cannot create files in {folder} ({exc.strerror})"
        os.close(fd)
        os.unlink(probe)
    return None


def check_writable_dir(path: str | os.PathLike, key: str) -> Path:
    """A folder the command will write files in: an existing writable folder, or one that can be created
    (its nearest existing ancestor is a writable folder). Returns the path; creates nothing."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputPathError(key, path, "exists and is not a folder")
    why = _cannot_create_in(_nearest_existing(path))
    if why:
        raise OutputPathError(key, path, why)
    return path


def check_writable_file(path: str | os.PathLike, key: str, *, parents: bool = False,
                        may_replace: Callable[[Path], bool] | None = None) -> Path:
    """A file the command will write (or append to). `parents`: missing folders above it will be created.
    `may_replace`: for an existing regular file, whether this command may overwrite it (e.g. it holds the
    command's own earlier output); without it an existing file is accepted (appended to). Creates nothing."""
    path = Path(path)
    if path.is_dir():
        raise OutputPathError(key, path, "is a folder, not a file")
    if os.path.lexists(path) and path.exists():
        if not os.access(path, os.W_OK):
            raise OutputPathError(key, path, "no permission to write this file")
        if path.is_file() and may_replace is not None and not may_replace(path):
            raise OutputPathError(key, path, "exists and was not written by this command; not overwritten "
                                             "(remove it or choose a new name)")
        if not path.is_file():  # /dev/null, a pipe: written in place, nothing to replace
            return path
    parent = path.absolute().parent
    if not parents and not parent.exists():
        raise OutputPathError(key, path, f"folder {parent} does not exist")
    why = _cannot_create_in(_nearest_existing(parent))
    if why:
        raise OutputPathError(key, path, why)
    return path


def is_within(path: str | os.PathLike, folder: str | os.PathLike) -> bool:
    """Whether `path` is `folder` or below it, symlinks resolved."""
    return Path(path).resolve().is_relative_to(Path(folder).resolve())


def write_text_atomic(text: str, dest: str) -> None:
    """`text` to `dest`: '-' is stdout; a regular (or new) file gets a temporary file renamed over it, never
    half a file; /dev/stdout or a named pipe is written in place."""
    import sys

    if dest == "-":
        sys.stdout.write(text)
        return
    path = Path(dest)
    if path.exists() and not path.is_file():
        path.write_text(text)
        return
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.absolute().parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
