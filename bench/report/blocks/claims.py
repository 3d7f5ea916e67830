"""'Published claims vs this machine': every claim of the registry (bench/claims/claims.yaml), what bench
compares for it at which stand-in setting, the published value, the measured value with its 95% interval (or
the stored estimate, marked est.) and the verdict: holds, refuted, not established or not measured (with the
bench.run command that would measure it). One table per source; the rule is docs/claims.md."""
from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from bench.claims import estimates
from bench.claims.measured import EXACT, Outcome, outcome
from bench.claims.registry import Claim, ClaimsError, load_claims
from bench.claims.verdict import VERDICTS, range_text
from bench.report.cells import Cell, Table
from bench.report.load import ReportInputError
from bench.report.sections import Block

if TYPE_CHECKING:
    from bench.report.load import Rec

TITLE = "Published claims vs this machine"
KIND = {"holds": "fits", "refuted": "nofit", "not established": "value", "not measured": "none"}
WHAT = {"peak_memory": "peak memory", "fits_on_gpu": "peak memory vs the GPU's", "trainable_pct": "trainable %",
        "trainable_params": "trainable parameters", "vram_per_model_gb": "peak GB per GB of 16-bit weights",
        "memory_ratio": "memory ratio", "speed_ratio": "steps/s ratio", "quality_delta": "quality difference",
        "steps_to_target_ratio": "steps-to-target ratio"}


def _num(v: float) -> str:
    size = abs(v)
    return f"{v:,.0f}" if size >= 100 else f"{v:.1f}" if size >= 10 else f"{v:.2f}" if size >= 0.1 else f"{v:.4f}"


def value_text(claim: Claim, out: Outcome) -> str:
    v = out.value
    if v is None:
        return "\u2014"
    unit = {"%": "%", "GB": " GB", "M": "M", "points": " pts", "GB/GB": " GB/GB"}.get(claim.unit, "")
    body = (f"{v.value:.4f}%" if claim.unit == "%" else f"\u00d7{v.value:.2f}" if claim.unit == "x"
            else f"{v.value:+.1f} pts" if claim.unit == "points" else f"{_num(v.value)}{unit}")
    if v.method == EXACT:
        body += " (exact)"
    elif v.has_interval and v.lo == v.hi:
        body += f" (identical in {v.n} runs)" if v.n > 1 else " (exact)"
    elif v.has_interval:
        lo, hi = (f"{x:.2f}" if claim.unit in ("x", "%") else f"{x:+.1f}" if claim.unit == "points" else _num(x)
                  for x in (v.lo, v.hi))
        body += f" [{lo}, {hi}]"
    else:
        body += " (no interval)"
    if out.estimated:
        body = "est. " + body
    if out.refs:
        body += " (" + ", ".join(f"#{r}" for r in out.refs) + ")"
    return body


def compared(claim: Claim) -> str:
    cells = [" ".join(str(c[k]) for k in ("method", "model", "precision", "task") if c.get(k)) for c in claim.cells]
    what = WHAT[claim.measures] + (" (" + " + ".join(claim.components) + ")" if claim.components else "") \
        + (" after loading" if claim.phase == "load" else "")
    cells_text = " / ".join(dict.fromkeys(cells)) if len(cells) == 2 else cells[0]
    text = f"{what}: {cells_text}"
    return text + (f"; stands in: {claim.stands_in}" if claim.stands_in else "")


def published(claim: Claim) -> str:
    text = f"{claim.claimed} (judged: {range_text(claim.lo, claim.hi, claim.unit)}"
    return text + (f"; {claim.reading})" if claim.reading else ")")


def verdict_cell(out: Outcome) -> Cell:
    text = out.verdict
    if out.note:
        text += f" ({out.note})"
    if out.command:
        text += f": {out.command}"
    return Cell(text, None, KIND[out.verdict])


def row(claim: Claim, out: Outcome) -> list[Cell]:
    return [Cell(claim.id), Cell(claim.quote), Cell(compared(claim)), Cell(published(claim)),
            Cell(value_text(claim, out), None, "est" if out.estimated else "value"), verdict_cell(out)]


def build(records: list[Rec]) -> Block:
    try:
        claims = load_claims()
    except ClaimsError as exc:
        raise ReportInputError(str(exc)) from None
    judged = [(c, outcome(records, c)) for c in claims]
    tables, by_source = [], {}
    for claim, out in judged:
        by_source.setdefault(claim.source["key"], []).append((claim, out))
    for key, items in by_source.items():
        src = items[0][0].source
        cite = " \u00b7 ".join(x for x in (src.get("author"), src.get("url"), src.get("setup")) if x)
        tables.append(Table(f"claims-{key}", src["title"], cite or "author and address not recorded in the registry",
                            ["claim", "published statement", "what bench compares", "published value",
                             "measured \u00b1 95% CI", "verdict"], [row(c, o) for c, o in items],
                            cell_refs=False, align_numbers=False))
    counts = Counter(o.verdict for _, o in judged)
    summary = ", ".join(f"{counts[v]} {v}" for v in VERDICTS)
    intro = [f"{len(judged)} claims from {len(by_source)} sources: {summary}. A claim holds when the whole 95% "
             "interval of its measured value lies inside the claimed range, is refuted when the whole interval "
             "lies outside it, is not established when the interval straddles a bound (or has none), and is "
             "**not measured** when no record (or stored estimate) covers its cells; the command that would "
             "measure it is given. Rule and registry: docs/claims.md, bench/claims/claims.yaml.",
             f"Open conditions are judged at one stand-in setting: {estimates.STANDIN_TEXT} (the results/gpu-h100 "
             "setting), on an H100 80GB; each row says what else stands in. Values marked est. are bench.estimate "
             "predictions at that setting, with the estimator's calibrated band (\u00b15%, leave-one-size-out max "
             "4.6% on the H100 records); parameter counts are exact. [lo, hi] is the 95% interval; #n are records.",
             "Quality claims are judged on all-MiniLM-L6-v2 (22.7M parameters, an encoder) on GLUE: a 22.7M "
             "encoder is not a 7B decoder, so these verdicts are about this scale only."]
    return Block("claims", TITLE, intro, tables)
