"""`python -m bench.launch.worker CONFIG.json`: run one cell from a resolved config file, in this process.

Started by bench.launch.launcher for every cell of a sweep (exec'd, forked from bench.launch.forkserver, or as a torchrun
rank). Exit status as bench.run: 0 success or skipped, 1 oom or failed, 2 bad input, 128 + N when signal N
stopped it (its record says `failed` / Interrupted).

The cell always ends as a record it wrote itself where it can:
- SIGTERM or SIGINT (the sweep forwards them; the kernel sends SIGTERM when the sweep dies, see
  die_with_parent) raise Interrupted; bench.cell.runner writes the record as failed "interrupted by SIGTERM".
- A cell that can't even start under cell_memory_cap_gb (importing torch maps hundreds of MB) is recorded
  as oom with the cause, by this module, whose own imports are light for that reason.

Kept importable without torch: bench.launch.launcher and bench.launch.forkserver use the signal helpers below.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time

GRACE_S = 4  # after the first SIGTERM/SIGINT a cell has this long to write its record, then SIGALRM ends it
# how running out of address space reads where no MemoryError is raised (dlopen of torch's libraries)
MEMORY_SIGNS = ("cannot allocate memory", "failed to map segment", "cannot map zero-fill pages", "out of memory")
PR_SET_PDEATHSIG = 1


class Interrupted(KeyboardInterrupt):
    """SIGTERM (or SIGINT) as an exception: a KeyboardInterrupt, so `except Exception` (failure is data)
    lets it through to the code that records the interruption and stops."""

    def __init__(self, signum: int = signal.SIGINT) -> None:
        self.signum = int(signum)
        super().__init__(f"interrupted by {signal.Signals(self.signum).name}")


def signal_number(exc: BaseException) -> int:
    return getattr(exc, "signum", signal.SIGINT)


def raise_on_signals(backstop_s: float | None = None) -> dict[int, object]:
    """SIGTERM and SIGINT raise Interrupted once; later ones are ignored, so the cleanup they started (a
    record, a forwarded signal) is not cut short. With backstop_s, SIGALRM (default action: end the process)
    follows the first one, for a main thread stuck in a long native call. Returns the previous handlers."""
    seen: list[int] = []

    def handler(signum: int, frame: object) -> None:
        if seen:
            return
        seen.append(signum)
        if backstop_s:
            signal.signal(signal.SIGALRM, signal.SIG_DFL)
            signal.alarm(max(1, int(backstop_s)))
        raise Interrupted(signum)

    if threading.current_thread() is not threading.main_thread():  # only the main thread may; a launcher's
        return {}  # worker thread leaves the signals as they are
    return {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}


def die_with_parent(parent: int, sig: int = signal.SIGTERM) -> None:
    """Linux: the kernel sends `sig` to this process when its parent ends (prctl PR_SET_PDEATHSIG), however
    the parent ended, kill -9 included, so no cell outlives its sweep. If the parent ended before this ran,
    end now. Safe between fork and exec (the libc handle is opened in the parent, see _libc)."""
    libc = _libc()
    if libc is None:
        return
    libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    if os.getppid() != parent:
        os._exit(128 + int(sig))


def parent_death_hook(sig: int = signal.SIGTERM, then=None):
    """A preexec_fn for subprocess.Popen: the child gets `sig` when this process ends, then runs `then`
    (the address-space cap, say)."""
    parent = os.getpid()
    _libc()  # ctypes loads libc here, in the parent: the hook itself runs between fork and exec

    def hook() -> None:
        die_with_parent(parent, sig)
        if then is not None:
            then()

    return hook


_LIBC: list = []


def _libc():
    if not sys.platform.startswith("linux"):
        return None
    if not _LIBC:
        import ctypes

        _LIBC.append(ctypes.CDLL(None, use_errno=True))
    return _LIBC[0]


def memory_cause(exc: BaseException) -> str | None:
    """The line saying why, when `exc` (or what caused it) is running out of memory: a MemoryError, or an
    ImportError whose shared library could not be mapped under the address-space cap."""
    seen, cause = set(), None
    while exc is not None and id(exc) not in seen:  # the innermost such error: the one that says what failed
        seen.add(id(exc))
        text = (str(exc).strip().splitlines() or [""])[-1]
        if isinstance(exc, MemoryError) or any(sign in text.lower() for sign in MEMORY_SIGNS):
            cause = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
        exc = exc.__cause__ or exc.__context__
    return cause


def main(argv: list[str]) -> int:
    raise_on_signals(GRACE_S)
    if os.environ.get("LOCAL_RANK") is not None:  # a torchrun rank: end with torchrun, however it ends
        die_with_parent(os.getppid())
    if len(argv) != 1:
        print("usage: python -m bench.launch.worker CONFIG.json", file=sys.stderr)
        return 2
    from bench.launch.cli import fail
    from bench.config import ConfigError, build_run_config

    started, cfg = time.perf_counter(), None
    try:
        with open(argv[0]) as fh:
            cfg = build_run_config(json.load(fh))
        from bench.cell.runner import run_cell

        record, _ = run_cell(cfg)
    except ConfigError as exc:
        fail(exc, prog="bench.launch.worker")
    except KeyboardInterrupt as exc:  # bench.cell.runner recorded it if the cell had begun; else recorded here
        if cfg is not None and getattr(exc, "record", None) is None:
            _own_record(cfg, "failed", "Interrupted", str(Interrupted(signal_number(exc))), started)
        return 128 + signal_number(exc)
    except Exception as exc:  # noqa: BLE001 - running out of memory before the cell began is data too
        cause = memory_cause(exc)
        if cause is None or cfg is None:
            raise
        cap = f" under cell_memory_cap_gb={cfg.cell_memory_cap_gb:g}" if cfg.cell_memory_cap_gb else ""
        print(f"bench.launch.worker: out of memory before the cell started{cap}: {cause}", file=sys.stderr, flush=True)
        _own_record(cfg, "oom", type(exc).__name__, f"the cell could not start{cap}: {cause}", started)
        return 1
    return 0 if record["status"] in ("success", "skipped") else 1


def _own_record(cfg, status: str, error_type: str, message: str, started: float) -> None:
    """The record of a cell that ended before bench.cell.runner could write one."""
    from bench.launch.launcher import fallback_record
    from bench.record import cell_identity, write_record

    cell = cell_identity(cfg)
    record = fallback_record(cfg, status, error_type, message, time.perf_counter() - started,
                             recorded_by="bench.launch.worker (the cell ended before it could measure)", cell=cell)
    write_record(record, cell.path)


if __name__ == "__main__":
    from bench.launch import worker  # one copy of this module: bench.launch.launcher and bench.launch.forkserver import it by name

    sys.exit(worker.main(sys.argv[1:]))
