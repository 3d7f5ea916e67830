"""Report-wide sections, each built by one module from every loaded record and shown before the hardware
groups, in BUILDERS order: the published claims first (after the summary), the source tables replicated,
what fits where, then the lever ablations. A builder returns None when its records are absent, and the report then omits it."""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.report.load import Rec
    from bench.report.sections import Block

# module under bench.report.blocks, each with `build(records: list[Rec]) -> Block | None`
BUILDERS = ("claims", "sources", "fits", "levers")


def build_blocks(records: list[Rec]) -> list[Block]:
    out = []
    for name in BUILDERS:
        try:
            module = importlib.import_module(f"bench.report.blocks.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"bench.report.blocks.{name}":
                raise
            continue
        block = module.build(records)
        if block is not None:
            out.append(block)
    return out
