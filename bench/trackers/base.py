"""The tracker interface: what a cell's measurement (bench.cell.measure) and a parallel cell's merge
(bench.cell.distributed) need from a tracker, so a new one is a class here and one line where the cell
lists its trackers, not hand wiring in the cell, the record skeleton and the merge.

A tracker's life in one cell: start() before the model loads, phase(name) around each phase (load, data,
train, eval; a name may come back, train / eval / train ...), trained(result) with the step loop's result
when training ends, stop(), then result() fills the record's key `section` (None: not measured; a failed
cell leaves trained() uncalled). With several ranks, merge_ranks() folds every rank's section into the one
the record keeps.
"""
from __future__ import annotations

import contextlib
from typing import Any, ClassVar, ContextManager, Iterator


class Tracker:
    section: ClassVar[str]  # the record key result() fills (bench.record.RunRecord)

    def start(self) -> None:
        """Called before the model loads (a baseline, a sampler thread)."""

    def phase(self, name: str) -> ContextManager[None]:
        return contextlib.nullcontext()

    def trained(self, result: Any) -> None:
        """What the step loop measured (bench.cell.step_loop's result), once training has ended."""

    def stop(self) -> None:
        """Called whatever happened (failure included), before result()."""

    def result(self) -> dict[str, Any] | None:
        raise NotImplementedError

    @classmethod
    def merge_ranks(cls, sections: list[dict[str, Any] | None]) -> dict[str, Any] | None:
        """Every rank's section, rank order, into the record's: by default rank 0's, as one process has."""
        return sections[0]


class Trackers:
    """The cell's trackers driven together: one call where the cell used to call each of them."""

    def __init__(self, trackers: list[Tracker]) -> None:
        self.trackers = trackers

    def start(self) -> None:
        for tracker in self.trackers:
            tracker.start()

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        with contextlib.ExitStack() as stack:
            for tracker in self.trackers:
                stack.enter_context(tracker.phase(name))
            yield

    def trained(self, result: Any) -> None:
        for tracker in self.trackers:
            tracker.trained(result)

    def stop(self) -> None:
        for tracker in reversed(self.trackers):
            tracker.stop()

    def fill(self, record: dict[str, Any]) -> None:
        for tracker in self.trackers:
            record[tracker.section] = tracker.result()
