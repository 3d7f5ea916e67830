"""One cell in a fresh process, so no cell's peak memory (or crash) leaks into the next.

The parent writes the resolved config to a file, starts `python -m bench.worker FILE` and blocks in wait()
(no polling, no busy loop; the child's output goes straight to the terminal). The child writes its own
record. When the child can't (killed by a signal, past cell_timeout_s, or dead before writing), the parent
writes the record: failure is data. cell_memory_cap_gb caps the child's address space (RLIMIT_AS), so an
allocation past it fails inside the child, which records `oom`.

A cell with parallel=fsdp|ddp (or nproc > 1) is started as `python -m torch.distributed.run --standalone
--nproc_per_node N -m bench.worker FILE` instead: torchrun's ranks run the cell (bench.distributed) and
rank 0 writes the record. That child gets a process group of its own, so a timeout kills torchrun and
every rank at once; the cap applies to each process.

With cell_start=fork (single-process cells) the child is forked from a server that imported the libraries
once (bench.forkserver): the same worker, record and failure handling, without seconds of imports per cell.
"""
from __future__ import annotations

import atexit
import functools
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.config import RunConfig, to_dict
from bench.forkserver import CELL_START_ENV, ForkServer, ForkServerGone, limit_address_space
from bench.record import SCHEMA_VERSION, config_hash, read_record, record_path, write_record


def cell_record_path(cfg: RunConfig) -> Path:
    from bench.cell import cell_labels

    return record_path(cfg.results_dir, cfg.experiment_name, cell_labels(cfg), config_hash(to_dict(cfg)))


def _cap_bytes(cfg: RunConfig) -> int:
    """cell_memory_cap_gb in bytes (0: no cap)."""
    return int(cfg.cell_memory_cap_gb * 1e9) if cfg.cell_memory_cap_gb > 0 else 0


def _parent_record(cfg: RunConfig, status: str, error_type: str, message: str, seconds: float) -> dict[str, Any]:
    from bench.cell import cell_labels

    config = to_dict(cfg)
    return {"schema_version": SCHEMA_VERSION, "status": status,
            "error": {"type": error_type, "message": message},
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
            "experiment": cfg.experiment_name, "cell": cell_labels(cfg), "config": config,
            "config_hash": config_hash(config), "model": None, "setup": None, "params": None,
            "preflight": None, "memory": None, "timing": None, "energy": None, "quality": None, "data": None,
            "distributed": None, "losses": [], "warnings": [],
            "env": {"recorded_by": "bench.launcher (the cell's process wrote no record)"},
            "wall_seconds": seconds}


def is_multiprocess(cfg: RunConfig) -> bool:
    return cfg.nproc > 1 or cfg.parallel != "none"


def cell_command(cfg: RunConfig, config_file: str) -> list[str]:
    worker = ["-m", "bench.worker", config_file]
    if is_multiprocess(cfg):
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                str(cfg.nproc), *worker]
    return [sys.executable, *worker]


def _signal(child: subprocess.Popen, group: bool, sig: int) -> None:
    try:
        if group:
            os.killpg(child.pid, sig)
        else:
            child.send_signal(sig)
    except ProcessLookupError:
        pass


def _run_exec(cfg: RunConfig, config_file: str) -> tuple[int, bool]:
    """`python -m bench.worker FILE` (or torchrun); returns (exit status or -signal, timed out)."""
    from bench.distributed import CLAIM_ENV

    cap = functools.partial(limit_address_space, _cap_bytes(cfg)) if _cap_bytes(cfg) else None  # before exec
    group = is_multiprocess(cfg)  # torchrun and its ranks: one process group, killed together
    env = {**os.environ, CELL_START_ENV: "exec", **({CLAIM_ENV: config_file + ".claim"} if group else {})}
    child = subprocess.Popen(cell_command(cfg, config_file), preexec_fn=cap, start_new_session=group, env=env)
    try:
        return child.wait(timeout=cfg.cell_timeout_s or None), False
    except subprocess.TimeoutExpired:
        _signal(child, group, signal.SIGKILL)
        return child.wait(), True
    except BaseException:  # Ctrl-C reaches only this process when the cell has a session of its own
        if group:
            _signal(child, group, signal.SIGTERM)
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


def _run_forked(cfg: RunConfig, config_file: str) -> tuple[int, bool] | None:
    global _fork_server
    server = shared_fork_server()
    if server is None:
        return None
    try:
        return server.run(config_file, _cap_bytes(cfg), cfg.cell_timeout_s or None)
    except ForkServerGone:  # the server died between cells: start a new one next time
        server.close()
        _fork_server = None
        return None


def run_isolated(cfg: RunConfig) -> tuple[dict[str, Any], Path, int]:
    """Run one cell in a child process; returns (record, path, child exit status)."""
    path = cell_record_path(cfg)
    started_wall = time.time()
    started = time.perf_counter()
    with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="bench-cell-", delete=False) as fh:
        json.dump(to_dict(cfg), fh)
        config_file = fh.name
    group = is_multiprocess(cfg)
    try:
        forked = _run_forked(cfg, config_file) if cfg.cell_start == "fork" and not group else None
        code, timed_out = forked if forked is not None else _run_exec(cfg, config_file)
    finally:
        os.unlink(config_file)
        Path(config_file + ".claim").unlink(missing_ok=True)
    seconds = time.perf_counter() - started
    fresh = path.exists() and path.stat().st_mtime >= started_wall - 1
    if fresh and not timed_out:
        try:
            return read_record(path), path, code
        except ValueError:
            pass
    if timed_out:
        record = _parent_record(cfg, "failed", "Timeout", f"cell passed cell_timeout_s={cfg.cell_timeout_s:g} "
                                f"and was killed after {seconds:.1f} s", seconds)
    elif code < 0:
        name = signal.Signals(-code).name
        why = " (on Linux often the out-of-memory killer)" if name == "SIGKILL" else ""
        record = _parent_record(cfg, "failed", "Killed", f"the cell's process was killed by {name}{why}", seconds)
    elif group:
        record = _parent_record(cfg, "failed", "NoRecord", f"torchrun exited with status {code} and no rank "
                                f"wrote a record: a rank was killed (SIGKILL: on Linux often the out-of-memory "
                                f"killer) or crashed; see torchrun's output above", seconds)
    else:
        record = _parent_record(cfg, "failed", "NoRecord", f"the cell's process exited with status {code} "
                                f"without writing a record (see its output above)", seconds)
    return record, write_record(record, path), code
