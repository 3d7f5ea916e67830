"""A claim's measured value with its 95% interval, from the report's records (bench.report.load.Rec: `rec[key]`
the flattened figures, `rec.est` their Estimates, `rec.raw` the record), else from the stored estimate
(bench/claims/estimates.py, marked "est."), and its verdict (bench.claims.verdict).

Matching a cell: the record's method (qlora8: QLoRA with an 8-bit base), model and, for full fine-tuning, its
precision (fp32 weights: mixed; bf16 weights: pure). A cell without a task is a GPU cell at the stand-in
setting (CUDA, synthetic tokens, batch 4 x 512, rank 16); a cell with a task matches that task's records.
Where several records match, the one with most repeats wins, then the newest.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from bench import stats
from bench.claims import estimates
from bench.claims.registry import Claim
from bench.claims.verdict import NOT_ESTABLISHED, NOT_MEASURED, judge
from bench.stats import Estimate

EXACT = "exact"


@dataclass
class Outcome:
    value: Estimate | None
    verdict: str
    refs: list[int] = field(default_factory=list)  # record ids behind the value
    estimated: bool = False  # some side came from bench.estimate, not a run
    note: str = ""
    command: str | None = None


def matches(rec: Any, cell: dict[str, Any]) -> bool:
    method = {"qlora8": "qlora", "qlora2": "hqq"}.get(cell["method"], cell["method"])
    bits = {"qlora8": 8, "qlora": 4, "qlora2": 2}.get(cell["method"])
    if rec["method"] != method or rec["model"] != cell["model"] or (bits and (rec["bits"] or 4) != bits):
        return False
    if cell.get("precision"):
        weights = "float32" if cell["precision"] == "mixed" else "bfloat16"
        if rec["weights_dtype"] != weights:
            return False
    if "compile" in cell and bool(rec["compile"]) != cell["compile"]:
        return False
    if cell.get("task"):
        return rec["task"] == cell["task"]
    return (rec["device"] == "cuda" and rec["task"] in (None, "synthetic") and rec["batch_size"] == 4
            and rec["seq_len"] == 512 and (method == "full" or rec["rank"] == 16))


def find(records: list[Any], cell: dict[str, Any], ok: bool = True) -> Any | None:
    found = [r for r in records if matches(r, cell) and (r.ok or not ok)]
    found.sort(key=lambda r: (r.ok, r["repeats_n"] or 1, r["created_at"] or ""), reverse=True)
    return found[0] if found else None


def exact(value: float) -> Estimate:
    return Estimate(value, value, value, 1, EXACT)


def _scaled(est: Estimate | None, factor: float) -> Estimate | None:
    return None if est is None else est.scaled(factor)


def side(records: list[Any], claim: Claim, cell: dict[str, Any]) -> tuple[Estimate | None, list[int], bool, str]:
    """(value, record ids, estimated?, note) of one cell for the claim's measure."""
    kind = claim.measures
    if kind in ("trainable_pct", "trainable_params"):  # exact counts: any record of the cell has them
        rec = find(records, cell, ok=False)
        key, scale = ("trainable_pct", 1.0) if kind == "trainable_pct" else ("params_trainable", 1e-6)
        if rec is not None and rec[key] is not None:
            return exact(rec[key] * scale), [rec["id"]], False, ""
        est = estimates.exact(cell, "trainable_pct" if kind == "trainable_pct" else "trainable")
        return _scaled(est, scale), [], est is not None, ""
    if claim.components:
        parts = [estimates.exact(cell, f"{c}_bytes") for c in claim.components]
        if any(p is None for p in parts):
            return None, [], False, ""
        return exact(sum(p.value for p in parts) / 1e9), [], True, "estimator's component bytes (exact arithmetic)"
    rec = find(records, cell)
    if kind == "speed_ratio":
        return (rec.est.get("steps"), [rec["id"]], False, "") if rec is not None else (None, [], False, "")
    if kind in ("quality_delta", "steps_to_target_ratio"):
        if rec is None:
            return None, [], False, ""
        return (rec.est.get("quality"), [rec["id"]], False, "") if kind == "quality_delta" else steps_to_target(rec)
    if claim.phase == "load":
        value = (((rec.raw.get("memory") or {}).get("phases") or {}).get("load") or {}).get("nvml_process_peak") \
            if rec is not None else None
        return (exact(value / 1e9), [rec["id"]], False, "") if value else (None, [], False, "")
    if rec is not None and rec.est.get("peak") is not None:
        peak, refs, est = rec.est["peak"].scaled(1e-9), [rec["id"]], False
    else:
        peak, refs, est = _scaled(estimates.peak(cell), 1e-9), [], True
    if peak is None or kind != "vram_per_model_gb":
        return peak, refs, est and peak is not None, ""
    total = (rec["params_total"] if rec is not None else None) or \
        getattr(estimates.exact(cell, "total"), "value", None) or \
        getattr(find(records, cell, ok=False), "flat", {}).get("params_total")
    if not total:
        return None, [], False, ""
    return peak.scaled(1 / (total * 2 / 1e9)), refs, est, "peak / (parameters x 2 bytes)"


def steps_to_target(rec: Any) -> tuple[Estimate | None, list[int], bool, str]:
    """The seeds' steps to task.target (repeats.runs[i].steps_to_target): their t interval, or None with the
    count of seeds that never reached the target within the budget."""
    if ((rec.raw.get("quality") or {}).get("target")) is None:  # no task.target: nothing to reach
        return None, [], False, ""
    runs = ((rec.raw.get("repeats") or {}).get("runs")) or [{"steps_to_target": rec["steps_to_target"]}]
    steps = [r.get("steps_to_target") for r in runs
             if isinstance(r, dict) and r.get("status", "success") == "success"]
    if not steps or any(s is None for s in steps):
        reached = sum(s is not None for s in steps)
        return None, [rec["id"]], False, f"{reached} of {len(steps)} seeds of #{rec['id']} reached the target"
    return stats.mean_interval([float(s) for s in steps]), [rec["id"]], False, f"seeds: {', '.join(map(str, steps))} steps"


def combine(claim: Claim, b: Estimate, a: Estimate) -> Estimate | None:
    if claim.measures == "quality_delta":
        d = stats.delta(b, a)
    else:
        d = stats.ratio(b, a)
    if d.lo is None and b.method == EXACT and a.method == EXACT:  # two exact figures: an exact ratio
        return exact(d.value)
    return Estimate(d.value, d.lo, d.hi, min(b.n, a.n), f"{d.kind}, {d.status}")


def command(claim: Claim) -> str | None:
    """The bench.run command that would measure the claim's cells (None where bench cannot)."""
    if claim.unsupported:
        return None
    if claim.command:
        return claim.command
    methods = ",".join(dict.fromkeys(estimates.RUN_METHOD[c["method"]] for c in claim.cells))
    bits = {estimates.BASE_BITS[c["method"]] for c in claim.cells if c["method"] in estimates.BASE_BITS}
    models = ",".join(dict.fromkeys(c["model"] for c in claim.cells))
    precision = {c["precision"] for c in claim.cells if c.get("precision")}
    extra = f" method.precision={precision.pop()}" if len(precision) == 1 else ""
    extra += f" method.base_bits={bits.pop()}" if len(bits) == 1 else ""
    compiled = [c["compile"] for c in claim.cells if "compile" in c]
    extra += " train.compile=" + ",".join(str(v).lower() for v in dict.fromkeys(compiled)) if compiled else ""
    return f"python -m bench.run -m +experiment=gpu_truth method={methods} model={models}{extra} repeats=3"


def same_study(records: list[Any], claim: Claim) -> list[Any]:
    """A comparison on a task takes both sides from one experiment (one budget): the newest that has both."""
    if len(claim.cells) < 2 or not all(c.get("task") for c in claim.cells):
        return records
    both = set.intersection(*({r["experiment"] for r in records if r.ok and matches(r, c)} for c in claim.cells))
    if not both:
        return records
    newest = max(both, key=lambda e: max(r["created_at"] or "" for r in records if r["experiment"] == e))
    return [r for r in records if r["experiment"] == newest]


def outcome(records: list[Any], claim: Claim) -> Outcome:
    if claim.unsupported:
        return Outcome(None, NOT_MEASURED, note=claim.unsupported)
    records = same_study(records, claim)
    sides = [side(records, claim, cell) for cell in claim.cells]
    refs = [r for s in sides for r in s[1]]
    notes = "; ".join(dict.fromkeys(s[3] for s in sides if s[3]))
    if any(s[0] is None for s in sides):
        if any(s[0] is None and s[3] for s in sides):  # measured, but no value to judge (a seed short of target)
            return Outcome(None, NOT_ESTABLISHED, refs, note=notes)
        unmodelled = [estimates.NOT_MODELLED[c["method"]] for c in claim.cells if not estimates.modelled(c)]
        notes = "; ".join(dict.fromkeys(filter(None, [notes, *unmodelled])))
        return Outcome(None, NOT_MEASURED, refs, note=notes, command=command(claim))
    value = sides[0][0] if len(sides) == 1 else combine(claim, sides[0][0], sides[1][0])
    estimated = any(s[2] for s in sides)
    if value is None or not math.isfinite(value.value):
        return Outcome(None, NOT_MEASURED, refs, estimated, notes, command(claim))
    return Outcome(value, judge(value, claim.lo, claim.hi), refs, estimated, notes)
