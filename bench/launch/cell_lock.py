"""What a sweep keeps in the experiment folder while it works: one lock per cell, so that a cell is measured
by one process at a time, and its temporary files (a cell's config file, the sweep's ledger).

The lock is `.<record stem>.lock`, held with flock(2) on an open file. The kernel drops a flock when the
last process holding the open file closes it or dies, so a lock is never left behind by a killed owner:
"stale" needs no guessing from pids. The process that runs the cell for the sweep takes it before it looks
for an existing record, and hands the open file to the cell's own process (inherited by an exec'd worker
or torchrun, passed over a socket to a forked one), so a cell whose sweep was killed keeps the lock until
it has written its record. The file names its holder (pid, host, time) for the message of a sweep that
finds the cell taken.

Temporary files are hidden (bench.record.record_files skips hidden files) and carry their owner's pid and
host in the name: `.bench-cell-PID@HOST-XXXX.json`, `.bench-sweep-PID@HOST-XXXX.jsonl`. The owner removes
them; when it was killed outright (SIGKILL can't be caught), the next sweep in that folder removes those
whose process is gone.
"""
from __future__ import annotations

import fcntl
import os
import re
import secrets
import socket
import tempfile
import time
from pathlib import Path

HOST = re.sub(r"[^A-Za-z0-9_.]", "_", socket.gethostname().split(".")[0]) or "host"
PREFIXES = (".bench-cell-", ".bench-sweep-")
_cleaned: set[Path] = set()


def owned_name(kind: str, suffix: str) -> str:
    """A hidden file name that says which process owns it (kind: cell | sweep)."""
    return f".bench-{kind}-{os.getpid()}@{HOST}-{secrets.token_hex(4)}{suffix}"


def temp_file(folder: Path, kind: str, suffix: str) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".bench-{kind}-{os.getpid()}@{HOST}-", suffix=suffix, dir=folder)
    os.close(fd)
    return name


def _owner(name: str) -> tuple[int, str] | None:
    for prefix in PREFIXES:
        if name.startswith(prefix) and "@" in name:
            pid, rest = name[len(prefix):].split("@", 1)
            return (int(pid), rest.rsplit("-", 1)[0]) if pid.isdigit() else None
    return None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def clean_stale(folder: Path) -> list[Path]:
    """Remove the temporary files of dead processes of this host from `folder` (once per process and
    folder); files of other hosts (a shared file system) are left alone: their pids mean nothing here."""
    folder = Path(folder).resolve()
    if folder in _cleaned or not folder.is_dir():
        return []
    _cleaned.add(folder)
    removed = []
    for path in folder.iterdir():
        owner = _owner(path.name)
        if owner and owner[1] == HOST and not alive(owner[0]):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def lock_path(record: Path) -> Path:
    return record.with_name(f".{record.stem}.lock")


class CellLock:
    """The lock of one cell (its record's path), held by this process and the cell it starts."""

    def __init__(self, fd: int, path: Path) -> None:
        self.fd, self.path = fd, path

    @classmethod
    def take(cls, record: Path) -> CellLock | None:
        """The lock, or None when another process holds it. Never waits."""
        path = lock_path(Path(record))
        path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return None
            # the holder before us removes the file as it lets go: make sure we locked the file that is there
            try:
                mine, there = os.fstat(fd), os.stat(path)
                if (mine.st_dev, mine.st_ino) == (there.st_dev, there.st_ino):
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {HOST} {time.strftime('%Y-%m-%dT%H:%M:%S')}\n".encode())
        return cls(fd, path)

    def release(self) -> None:
        """Remove the file, then let go (the other order could let a newcomer lock a file we then remove)."""
        if self.fd is None:
            return
        self.path.unlink(missing_ok=True)
        os.close(self.fd)
        self.fd = None


def holder(record: Path) -> str:
    """`pid N` (or `pid N on HOST`) of the process holding a cell's lock, as its lock file says."""
    for _ in range(20):  # a new holder writes the file just after locking it
        try:
            words = lock_path(Path(record)).read_text().split()
        except FileNotFoundError:
            words = []
        if words:
            return f"pid {words[0]}" + (f" on {words[1]}" if len(words) > 1 and words[1] != HOST else "")
        time.sleep(0.05)
    return "pid ?"
