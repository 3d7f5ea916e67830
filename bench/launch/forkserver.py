"""A fork server for sweep cells (`cell_start=fork`): the libraries are imported once, each cell forks.

A fresh `python -m bench.launch.worker` spends most of its start-up importing torch, transformers and peft (8.6 s
per cell on a 2-vCPU VM, against a 5 s goal). With cell_start=fork the sweep starts this server once; it
imports those libraries and then, for each cell, forks a child that runs bench.launch.worker's main on the cell's
config file. The child starts a session of its own (so a timeout kills it and anything it started), takes
the address-space cap and writes its own record, exactly as an exec'd cell does.

Nothing outlives the sweep: the server gets SIGKILL from the kernel when the sweep's process ends, however
it ends (PR_SET_PDEATHSIG), and each forked cell SIGTERM when the server ends, on which it records itself
as interrupted (bench.launch.worker). The cell's lock (bench.launch.cell_lock), an open file of the sweep's, comes with
the request over a Unix socket (SCM_RIGHTS), so the forked cell holds it too.

CUDA must not be initialised before a fork, or the child can't use the GPU. So the server:
- runs with PYTORCH_NVML_BASED_CUDA_CHECK=1, which makes torch.cuda.is_available() ask NVML instead of
  initialising CUDA;
- preloads peft only where no CUDA device is present, because peft imports bitsandbytes, whose import asks
  for the device's compute capability (that initialises CUDA);
- reports torch.cuda.is_initialized() after preloading. If it is true, the launcher stops the server and
  starts cells with exec instead, with one warning.

Protocol (JSON lines): requests on the server's stdin, {"config": path, "cap_bytes": n, "fd": bool}; with
"fd", one file descriptor comes on the socket named second on the command line; answers on the file
descriptor named first: {"ready": ..., "cuda_initialized": ...} once, then per cell {"pid": n} after the
fork and {"pid": n, "code": exit status, or -signal} when the child ends.

    python -m bench.launch.forkserver FD SOCKET_FD      (started by bench.launch.launcher, never by hand)
"""
from __future__ import annotations

import importlib
import json
import os
import resource
import select
import signal
import socket
import subprocess
import sys
import time
import traceback

from bench.launch.worker import GRACE_S, die_with_parent, parent_death_hook
from bench.record import CELL_START_ENV

PRELOAD = ("torch", "transformers", "transformers.models.llama.modeling_llama",
           "transformers.models.bert.modeling_bert", "bench.cell.runner", "bench.cell.measure", "bench.cell.models",
           "bench.cell.step_loop", "bench.estimate.preflight")
PRELOAD_WITHOUT_CUDA = ("peft",)  # imports bitsandbytes, which initialises CUDA where there is a GPU


def preload() -> list[str]:
    import torch

    names = list(PRELOAD) + ([] if torch.cuda.is_available() else list(PRELOAD_WITHOUT_CUDA))
    for name in names:
        importlib.import_module(name)
    return names


def limit_address_space(cap_bytes: int) -> None:
    """cell_memory_cap_gb in the cell's own process (after fork; before exec for an exec'd cell): an
    allocation past it fails inside the cell, which records oom. 0: no cap."""
    if cap_bytes > 0:
        resource.setrlimit(resource.RLIMIT_AS, (cap_bytes, cap_bytes))


def _child(request: dict, answers_fd: int, server: int) -> None:
    """In the forked child: never returns."""
    code = 1
    try:
        die_with_parent(server)  # the server's own death follows the sweep's
        signal.signal(signal.SIGINT, signal.default_int_handler)  # the server ignores it; a cell does not
        os.close(answers_fd)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)  # the requests pipe is the server's, not the cell's
        os.setsid()
        limit_address_space(int(request.get("cap_bytes") or 0))
        os.environ[CELL_START_ENV] = "fork"
        from bench.launch import worker

        code = worker.main([request["config"]])
    except SystemExit as exc:  # bench.launch.cli.fail: bad input, exit 2
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 - whatever happens, the child must end here, not return to the loop
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def serve(answers_fd: int, fds: socket.socket | None = None) -> int:
    answers = os.fdopen(answers_fd, "w", buffering=1, closefd=False)

    def say(message: dict) -> None:
        answers.write(json.dumps(message) + "\n")
        answers.flush()

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the sweep's: it stops the cell, then closes us
    started = time.perf_counter()
    names = preload()
    import torch

    say({"ready": True, "cuda_initialized": bool(torch.cuda.is_initialized()), "preloaded": names,
         "seconds": round(time.perf_counter() - started, 3)})
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        passed = socket.recv_fds(fds, 1, 1)[1] if request.get("fd") and fds is not None else []
        sys.stdout.flush()
        sys.stderr.flush()
        server = os.getpid()
        pid = os.fork()
        if pid == 0:
            if fds is not None:
                fds.close()
            _child(request, answers_fd, server)
        for fd in passed:  # the cell holds it now (the lock must not stay with the server)
            os.close(fd)
        say({"pid": pid})
        _, status = os.waitpid(pid, 0)
        say({"pid": pid, "code": os.waitstatus_to_exitcode(status)})
    return 0


class ForkServerGone(Exception):
    """The server ended or never became ready: the launcher starts cells with exec instead."""


class ForkServer:
    """The sweep's side: one server per sweep process, one cell at a time through it."""

    def __init__(self, start_timeout_s: float = 300.0) -> None:
        read_fd, write_fd = os.pipe()
        self._fds, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        env = {**os.environ, "PYTORCH_NVML_BASED_CUDA_CHECK": "1"}
        command = [sys.executable, "-m", "bench.launch.forkserver", str(write_fd), str(theirs.fileno())]
        self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, pass_fds=(write_fd, theirs.fileno()),
                                     env=env, text=True, preexec_fn=parent_death_hook(signal.SIGKILL))
        os.close(write_fd)
        theirs.close()
        self._fd, self._buffer = read_fd, b""
        try:
            self.hello = self._read(start_timeout_s)
        except (TimeoutError, ForkServerGone) as exc:
            self.close()
            raise ForkServerGone(f"the fork server did not start ({exc or 'timed out'})") from None

    def _read(self, timeout: float | None) -> dict:
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self._buffer:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not select.select([self._fd], [], [], wait)[0]:
                raise TimeoutError
            chunk = os.read(self._fd, 65536)
            if not chunk:
                raise ForkServerGone("the fork server ended")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)

    def run(self, config_file: str, cap_bytes: int, timeout: float | None,
            pass_fd: int | None = None) -> tuple[int, bool]:
        """Fork one cell (handing it `pass_fd`, the cell's lock); returns (exit status or -signal, timed out).
        The cell's session is killed on a timeout (SIGKILL); an interrupt of the sweep (SIGINT, SIGTERM) is
        passed on to it, and it gets GRACE_S to record itself before SIGKILL."""
        request = {"config": config_file, "cap_bytes": cap_bytes, "fd": pass_fd is not None}
        try:
            self.proc.stdin.write(json.dumps(request) + "\n")
            self.proc.stdin.flush()
            if pass_fd is not None:
                socket.send_fds(self._fds, [b"."], [pass_fd])
        except (BrokenPipeError, ConnectionError, ValueError):
            raise ForkServerGone("the fork server ended") from None
        pid = self._read(60.0)["pid"]
        try:
            return self._read(timeout)["code"], False
        except TimeoutError:
            _kill_session(pid, signal.SIGKILL)
            return self._read(60.0)["code"], True
        except BaseException as exc:
            _kill_session(pid, getattr(exc, "signum", signal.SIGTERM))
            try:  # take the child's end off the pipe, so the next cell reads its own answers
                try:
                    self._read(GRACE_S + 2)
                except TimeoutError:
                    _kill_session(pid, signal.SIGKILL)
                    self._read(30.0)
            except Exception:  # noqa: BLE001 - the sweep is stopping anyway
                pass
            raise

    def close(self) -> None:
        """End the server (closing its stdin ends its loop); safe to call twice (a dead server, then atexit)."""
        if self._fd is None:
            return
        try:
            if self.proc.stdin:
                self.proc.stdin.close()
            self.proc.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
        os.close(self._fd)
        self._fds.close()
        self._fd = None


def _kill_session(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


if __name__ == "__main__":
    os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")
    sys.exit(serve(int(sys.argv[1]), socket.socket(fileno=int(sys.argv[2])) if len(sys.argv) > 2 else None))
