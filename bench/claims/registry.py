"""The claims registry: claims.yaml read and checked into `Claim`s. A bad entry is one ClaimsError line naming
the claim id and the key (the report and the tests turn it into exit status 2). Pure Python, no torch."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

REGISTRY = Path(__file__).with_name("claims.yaml")
# what a claim measures -> how many cells it compares (a ratio or difference: b first, a second)
MEASURES = {"peak_memory": 1, "fits_on_gpu": 1, "trainable_pct": 1, "trainable_params": 1, "vram_per_model_gb": 1,
            "memory_ratio": 2, "speed_ratio": 2, "quality_delta": 2, "steps_to_target_ratio": 2}
UNITS = {"fits_on_gpu": "GB"}
METHODS = ("full", "lora", "qlora", "qlora8", "qlora2", "galore")  # qlora2: a 2-bit HQQ base (method=hqq)
CELL_KEYS = {"method", "model", "precision", "task", "compile"}  # compile: train.compile (records before it: eager)
CLAIM_KEYS = {"id", "source", "quote", "measures", "cells", "claimed", "gpu", "stands_in", "components", "phase",
              "command", "unsupported"}


class ClaimsError(ValueError):
    """A bad registry entry: one line naming the claim id and the key."""


@dataclass(frozen=True)
class Claim:
    id: str
    source: dict[str, Any]  # title, author, url (None where not known), setup
    quote: str
    measures: str
    cells: list[dict[str, str]]
    lo: float | None  # the claimed range, in `unit`; None: open
    hi: float | None
    unit: str
    claimed: str  # the published value as the source gives it
    reading: str = ""  # how the words became the range
    stands_in: str = ""
    gpu: dict[str, Any] | None = None
    components: tuple[str, ...] = ()
    phase: str = "peak"
    command: str | None = None
    unsupported: str | None = None  # why bench cannot measure it (the verdict is then not measured)


def _fail(path: Path, cid: str, key: str, why: str) -> ClaimsError:
    return ClaimsError(f"{path.name}: claim {cid}: {key} {why}")


def _number(path: Path, cid: str, key: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(path, cid, key, f"must be a number or null (got {value!r})")
    return float(value)


def _check_cells(path: Path, cid: str, measures: str, cells: Any, unsupported: bool) -> list[dict[str, str]]:
    if not isinstance(cells, list) or len(cells) != MEASURES[measures]:
        raise _fail(path, cid, "cells", f"must list {MEASURES[measures]} cell(s) for {measures}")
    for cell in cells:
        if not isinstance(cell, dict) or not {"method", "model"} <= cell.keys() or set(cell) - CELL_KEYS:
            raise _fail(path, cid, "cells", f"each cell needs method and model, and only {sorted(CELL_KEYS)}")
        if cell["method"] not in METHODS and not unsupported:
            raise _fail(path, cid, "cells.method", f"must be one of {', '.join(METHODS)} (got {cell['method']!r})")
        if cell.get("compile") not in (None, True, False):
            raise _fail(path, cid, "cells.compile", f"must be true or false (got {cell['compile']!r})")
        if cell.get("precision") not in (None, "mixed", "pure"):
            raise _fail(path, cid, "cells.precision", f"must be mixed or pure (got {cell['precision']!r})")
    return [dict(c) for c in cells]


def parse_claim(entry: Any, sources: dict[str, Any], path: Path = REGISTRY) -> Claim:
    cid = str(entry.get("id")) if isinstance(entry, dict) else "?"
    if not isinstance(entry, dict) or not entry.get("id"):
        raise _fail(path, cid, "id", "is missing")
    if extra := set(entry) - CLAIM_KEYS:
        raise _fail(path, cid, sorted(extra)[0], "is not a claim key")
    if entry.get("source") not in sources:
        raise _fail(path, cid, "source", f"must name an entry of sources (got {entry.get('source')!r})")
    if not isinstance(entry.get("quote"), str) or not entry["quote"].strip():
        raise _fail(path, cid, "quote", "must be the quoted statement")
    measures = entry.get("measures")
    if measures not in MEASURES:
        raise _fail(path, cid, "measures", f"must be one of {', '.join(MEASURES)} (got {measures!r})")
    cells = _check_cells(path, cid, measures, entry.get("cells"), bool(entry.get("unsupported")))
    gpu = entry.get("gpu")
    if measures == "fits_on_gpu":
        if not isinstance(gpu, dict) or not isinstance(gpu.get("fits"), bool) or not gpu.get("name"):
            raise _fail(path, cid, "gpu", "needs name, gb and fits (true | false)")
        size = _number(path, cid, "gpu.gb", gpu.get("gb"))
        if not size or size <= 0:
            raise _fail(path, cid, "gpu.gb", "must be a positive number of GB")
        lo, hi = (0.0, size) if gpu["fits"] else (size, None)
        claimed = {"value": f"{'fits' if gpu['fits'] else 'does not fit'} in {gpu['name']}", "unit": "GB"}
    else:
        claimed = entry.get("claimed")
        if not isinstance(claimed, dict) or "range" not in claimed or "value" not in claimed:
            raise _fail(path, cid, "claimed", "needs value, range [lo, hi] and unit")
        rng = claimed["range"]
        if not isinstance(rng, list) or len(rng) != 2 or rng == [None, None]:
            raise _fail(path, cid, "claimed.range", "must be [lo, hi] with at most one null")
        lo, hi = (_number(path, cid, "claimed.range", v) for v in rng)
        if lo is not None and hi is not None and lo > hi:
            raise _fail(path, cid, "claimed.range", f"has lo > hi ({lo} > {hi})")
    if entry.get("phase", "peak") not in ("peak", "load"):
        raise _fail(path, cid, "phase", "must be peak or load")
    return Claim(cid, dict(sources[entry["source"]], key=entry["source"]), entry["quote"].strip(), measures, cells,
                 lo, hi, str(claimed.get("unit") or UNITS.get(measures, "")), str(claimed["value"]),
                 str(claimed.get("reading") or ""), str(entry.get("stands_in") or ""), gpu,
                 tuple(entry.get("components") or ()), entry.get("phase", "peak"), entry.get("command"),
                 entry.get("unsupported"))


def expand_table(table: dict[str, Any]) -> list[dict[str, Any]]:
    """A published table as one fit claim per cell: the figure read as "this much memory suffices"."""
    out = []
    for row in table["rows"]:
        for size, model, gb in zip(table["sizes"], table["models"], row["gb"]):
            entry = {"id": f"{table['id']}-{row['key']}-{size.lower()}", "source": table["source"],
                     "quote": f"{table['quote']}: {row['label']} {size} {gb} GB", "measures": "fits_on_gpu",
                     "cells": [dict(row["cell"], model=model)], "gpu": {"name": f"{gb} GB", "gb": gb, "fits": True}}
            if row.get("unsupported"):
                entry["unsupported"] = row["unsupported"]
            elif model in row.get("unsupported_models", ()):
                entry["unsupported"] = row["unsupported_why"]
            out.append(entry)
    return out


def parse_registry(data: Any, path: Path = REGISTRY) -> list[Claim]:
    if not isinstance(data, dict) or not isinstance(data.get("sources"), dict):
        raise ClaimsError(f"{path.name}: sources must be a mapping of source keys")
    entries = list(data.get("claims") or [])
    for table in data.get("tables") or []:
        try:
            entries += expand_table(table)
        except (KeyError, TypeError) as exc:
            raise ClaimsError(f"{path.name}: table {table.get('id', '?')}: {exc} is missing or malformed") from None
    claims, seen = [], set()
    for entry in entries:
        claim = parse_claim(entry, data["sources"], path)
        if claim.id in seen:
            raise _fail(path, claim.id, "id", "is not unique")
        seen.add(claim.id)
        claims.append(claim)
    return claims


@lru_cache(maxsize=4)
def load_claims(path: Path = REGISTRY) -> list[Claim]:
    """Every claim of the registry, tables expanded, in file order."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ClaimsError(f"{path}: {str(exc).splitlines()[0]}") from None
    return parse_registry(data, path)
