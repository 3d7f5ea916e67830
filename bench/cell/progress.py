"""Progress lines on stderr for the long phases before training (planning, loading, quantising).

A 13B base on a CPU can take minutes to build and quantise with nothing on the screen, and a cell run with
no terminal (a sweep's worker, a batch job) has no tqdm bar either, so these are plain lines that go to logs
too. Short cells stay quiet: a phase prints only once it has run `quiet_s` (5 s), then at most every
`every_s` (10 s), and a closing line with its duration if it printed anything. A background thread prints,
so a phase inside one long library call (transformers' loader, peft's adapter injection) is covered as well:

    with progress.phase("quantising the 4-bit base") as p:
        for i, layer in enumerate(layers):
            p.update(f"layer {i + 1}/{len(layers)}")
    ->  bench: quantising the 4-bit base: layer 12/40 (31 s)
"""
from __future__ import annotations

import sys
import threading
import time
from typing import IO, Any

QUIET_S = 5.0
EVERY_S = 10.0


def say(message: str, stream: IO[str] | None = None) -> None:
    """One progress line, flushed at once (stderr may be a pipe or a file, which buffer)."""
    print(f"bench: {message}", file=stream or sys.stderr, flush=True)


class phase:  # noqa: N801  (used as a context manager, like contextlib's)
    def __init__(self, label: str, quiet_s: float = QUIET_S, every_s: float = EVERY_S, announce: bool = False,
                 stream: IO[str] | None = None) -> None:
        self.label, self.quiet_s, self.every_s, self.stream = label, quiet_s, every_s, stream
        self.announce = announce  # print at the start too (a phase known to be long, e.g. a multi-GB base)
        self.detail = ""
        self.printed = 0
        self.started = time.perf_counter()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def update(self, detail: str) -> None:
        """What the phase is at (e.g. "layer 12/40"): the next line shows it; cheap, call it as often as needed."""
        self.detail = detail

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def _line(self) -> str:
        detail = f": {self.detail}" if self.detail else "..."
        return f"{self.label}{detail} ({self.elapsed():.0f} s)"

    def _run(self) -> None:
        wait = self.quiet_s
        while not self._stop.wait(wait):
            say(self._line(), self.stream)
            self.printed += 1
            wait = self.every_s

    def __enter__(self) -> phase:
        self.started = time.perf_counter()
        if self.announce:
            say(f"{self.label}...", self.stream)
            self.printed += 1
        self._thread = threading.Thread(target=self._run, name=f"bench-progress-{self.label}", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.printed:
            say(f"{self.label}: {'done' if exc_type is None else 'stopped'} in {self.elapsed():.0f} s", self.stream)
