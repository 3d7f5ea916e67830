"""One cell in a fresh process, so no cell's peak memory (or crash) leaks into the next.

The parent writes the resolved config to a hidden file in the experiment folder (bench.launch.cell_lock), starts
`python -m bench.launch.worker FILE` and blocks in wait() (no polling, no busy loop; the child's output goes
straight to the terminal). The child writes its own record. When the child can't (killed by a signal, past
cell_timeout_s, or dead before writing), the parent writes the record: failure is data. cell_memory_cap_gb
caps the child's address space (RLIMIT_AS), so an allocation past it fails inside the child, which records
`oom` (also when it fails while importing torch, before the cell began).

The cell never outlives the sweep, and never runs twice at once: it runs in a session of its own, gets
SIGTERM from the kernel when the sweep's process ends however it ends (bench.launch.worker.die_with_parent), and
holds the cell's lock with the sweep (bench.launch.cell_lock). SIGINT / SIGTERM of the sweep (bench.launch.worker.
Interrupted in this process) are passed on to the cell, which records itself as failed "interrupted by
SIGTERM" within bench.launch.worker.GRACE_S (else SIGKILL, and this process records it); then the Interrupted goes
on up, with the record attached, and the sweep stops.

A cell with parallel=fsdp|ddp (or nproc > 1) is started as `python -m torch.distributed.run --standalone
--nproc_per_node N -m bench.launch.worker FILE` instead: torchrun's ranks run the cell (bench.cell.distributed) and
rank 0 writes the record. That child gets a process group of its own, so a timeout kills torchrun and
every rank at once; the cap applies to each process.

With cell_start=fork (single-process cells) the child is forked from a server that imported the libraries
once (bench.launch.forkserver): the same worker, record and failure handling, without seconds of imports per cell.
"""
from __future__ import annotations

import atexit
import functools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.launch.cell_lock import temp_file
from bench.config import RunConfig
from bench.launch.forkserver import ForkServer, ForkServerGone, limit_address_space
from bench.record import CELL_START_ENV, CLAIM_ENV, CellIdentity, cell_identity, new_record, read_record, write_record
from bench.launch.worker import GRACE_S, Interrupted, parent_death_hook, signal_number


def cell_record_path(cfg: RunConfig) -> Path:
    return cell_identity(cfg).path


def _cap_bytes(cfg: RunConfig) -> int:
    """cell_memory_cap_gb in bytes (0: no cap)."""
    return int(cfg.cell_memory_cap_gb * 1e9) if cfg.cell_memory_cap_gb > 0 else 0


def fallback_record(cfg: RunConfig, status: str, error_type: str, message: str, seconds: float,
                    recorded_by: str = "bench.launch.launcher (the cell's process wrote no record)",
                    cell: CellIdentity | None = None) -> dict[str, Any]:
    """The record of a cell that could not write its own (no measurements in it). `cell`: the identity the
    caller already computed (computed here when not given)."""
    return new_record(cell or cell_identity(cfg), cfg.experiment_name, status,
                      {"type": error_type, "message": message}, env={"recorded_by": recorded_by},
                      wall_seconds=seconds)


def is_multiprocess(cfg: RunConfig) -> bool:
    return cfg.nproc > 1 or cfg.parallel != "none"


def cell_command(cfg: RunConfig, config_file: str) -> list[str]:
    worker = ["-m", "bench.launch.worker", config_file]
    if is_multiprocess(cfg):
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                str(cfg.nproc), *worker]
    return [sys.executable, *worker]


def _signal(child: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(child.pid, sig)  # the cell's session: torchrun and its ranks too
    except ProcessLookupError:
        pass


def _run_exec(cfg: RunConfig, config_file: str, pass_fd: int | None = None) -> tuple[int, bool]:
    """`python -m bench.launch.worker FILE` (or torchrun); returns (exit status or -signal, timed out)."""
    cap = functools.partial(limit_address_space, _cap_bytes(cfg)) if _cap_bytes(cfg) else None  # before exec
    group = is_multiprocess(cfg)
    env = {**os.environ, CELL_START_ENV: "exec", **({CLAIM_ENV: config_file + ".claim"} if group else {})}
    # a session of its own: a timeout or an interrupt reaches every process of the cell, and the terminal's
    # Ctrl-C reaches only the sweep, which passes it on (below)
    child = subprocess.Popen(cell_command(cfg, config_file), preexec_fn=parent_death_hook(then=cap),
                             start_new_session=True, env=env, pass_fds=() if pass_fd is None else (pass_fd,))
    try:
        return child.wait(timeout=cfg.cell_timeout_s or None), False
    except subprocess.TimeoutExpired:
        _signal(child, signal.SIGKILL)
        return child.wait(), True
    except BaseException as exc:
        _signal(child, signal_number(exc))
        try:
            child.wait(timeout=GRACE_S + 2)
        except subprocess.TimeoutExpired:
            _signal(child, signal.SIGKILL)
            child.wait()
        raise


_fork_server: ForkServer | None = None
_fork_unusable: str | None = None


def shared_fork_server() -> ForkServer | None:
    """This sweep's fork server, started on first use; None (and one warning) where it can't be used."""
    global _fork_server, _fork_unusable
    if _fork_server is None and _fork_unusable is None:
        try:
            server = ForkServer()
            if server.hello.get("cuda_initialized"):
                server.close()
                raise ForkServerGone("preloading the libraries initialised CUDA, so a forked cell could not "
                                     "use the GPU")
            _fork_server = server
            atexit.register(server.close)
        except ForkServerGone as exc:
            _fork_unusable = str(exc)
            print(f"bench: warning: cell_start=fork: {exc}; cells start with exec instead", file=sys.stderr,
                  flush=True)
    return _fork_server


def _run_forked(cfg: RunConfig, config_file: str, pass_fd: int | None = None) -> tuple[int, bool] | None:
    global _fork_server
    server = shared_fork_server()
    if server is None:
        return None
    try:
        return server.run(config_file, _cap_bytes(cfg), cfg.cell_timeout_s or None, pass_fd)
    except ForkServerGone:  # the server died between cells: start a new one next time
        server.close()
        _fork_server = None
        return None


def run_isolated(cfg: RunConfig, pass_fd: int | None = None,
                 cell: CellIdentity | None = None) -> tuple[dict[str, Any], Path, int]:
    """Run one cell in a child process, handing it `pass_fd` (the cell's lock); returns (record, path,
    child exit status). Interrupted (SIGINT / SIGTERM here) is raised after the cell's record is written,
    with `.record` = (record, path). `cell`: the cell's identity, if the caller has it."""
    cell = cell or cell_identity(cfg)
    path = cell.path
    started_wall = time.time()
    started = time.perf_counter()
    config_file = temp_file(path.parent, "cell", ".json")
    group = is_multiprocess(cfg)
    interrupted = None
    try:
        Path(config_file).write_text(json.dumps({**cell.config, "repeat": cfg.repeat}))  # repeat: not in the hash
        forked = _run_forked(cfg, config_file, pass_fd) if cfg.cell_start == "fork" and not group else None
        code, timed_out = forked if forked is not None else _run_exec(cfg, config_file, pass_fd)
    except KeyboardInterrupt as exc:
        interrupted, code, timed_out = exc, 128 + signal_number(exc), False
    finally:
        os.unlink(config_file)
        Path(config_file + ".claim").unlink(missing_ok=True)
    record = _outcome(cfg, cell, started_wall, time.perf_counter() - started, code, timed_out, interrupted)
    if interrupted is not None:
        interrupted.record = (record, path)
        raise interrupted
    return record, path, code


def _outcome(cfg: RunConfig, cell: CellIdentity, started_wall: float, seconds: float, code: int, timed_out: bool,
             interrupted: BaseException | None) -> dict[str, Any]:
    """The record the cell wrote, or the one this process writes for it."""
    path, fallback = cell.path, functools.partial(fallback_record, cfg, cell=cell)
    fresh = path.exists() and path.stat().st_mtime >= started_wall - 1
    if fresh and not timed_out:
        try:
            return read_record(path)
        except ValueError:
            pass
    if timed_out:
        record = fallback("failed", "Timeout", f"cell passed cell_timeout_s={cfg.cell_timeout_s:g} and was "
                          f"killed after {seconds:.1f} s", seconds)
    elif interrupted is not None:
        record = fallback("failed", "Interrupted", str(Interrupted(signal_number(interrupted))), seconds)
    elif code < 0:
        name = signal.Signals(-code).name
        why = " (on Linux often the out-of-memory killer)" if name == "SIGKILL" else ""
        record = fallback("failed", "Killed", f"the cell's process was killed by {name}{why}", seconds)
    elif is_multiprocess(cfg):
        record = fallback("failed", "NoRecord", f"torchrun exited with status {code} and no rank wrote a "
                          f"record: a rank was killed (SIGKILL: on Linux often the out-of-memory killer) or "
                          f"crashed; see torchrun's output above", seconds)
    else:
        cap = f" under cell_memory_cap_gb={cfg.cell_memory_cap_gb:g}" if cfg.cell_memory_cap_gb else ""
        record = fallback("failed", "NoRecord", f"the cell's process exited with status {code}{cap} without "
                          f"writing a record (see its output above)", seconds)
    write_record(record, path)
    return record
