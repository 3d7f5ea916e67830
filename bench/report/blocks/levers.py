"""The speed-lever ablation (issue 17, `+experiment=levers`), torchtune-style: per hardware x method x model,
one row per record of a `levers*` experiment, each row adding one lever to the row before (eager attention
-> sdpa -> packing -> activation checkpointing -> 8-bit AdamW -> torch.compile -> liger). Tokens/s (real,
non-padding tokens) and peak memory with their 95% intervals, and each row against the previous one and
the baseline as a ratio with its interval (bench.stats.ratio): n.s. when the interval includes no change.
No record of a levers experiment: no block.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any

from bench import stats
from bench.report.cells import Cell, Table, failure_cell, gb_pm, pm
from bench.report.groups import method_base, workload, workload_title
from bench.report.load import Rec, get
from bench.report.sections import Block

TITLE = "Speed levers, one at a time"
# (name shown, whether a record has the lever on), in the order the experiment's rows add them
LEVERS: tuple[tuple[str, Any], ...] = (
    ("sdpa", lambda s: s["attn"] not in (None, "eager")),
    ("packing", lambda s: bool(s["packing"])),
    ("checkpointing", lambda s: bool(s["checkpointing"])),
    ("8-bit AdamW", lambda s: "8bit" in str(s["optimizer"])),
    ("compile", lambda s: bool(s["compile"])),
    ("liger", lambda s: bool(s["liger"])),
)


def is_lever_record(rec: Rec) -> bool:
    return str(rec["experiment"] or "").startswith("levers")


def lever_state(rec: Rec) -> dict[str, Any]:
    """The levers a record ran with: its setup (what the cell did), else its config (older records)."""
    raw = rec.raw
    setup, config = raw.get("setup") or {}, raw.get("config") or {}

    def pick(key: str, *path: str) -> Any:
        return setup[key] if key in setup else get(config, *path)

    return {"attn": pick("attn_implementation", "model", "attn_implementation"),
            "packing": pick("packing", "task", "packing"),
            "checkpointing": setup.get("gradient_checkpointing", get(config, "train", "gradient_checkpointing")),
            "optimizer": get(config, "method", "optimizer") or rec["optimizer"],
            "compile": pick("compile", "train", "compile"), "liger": pick("liger", "train", "liger")}


def levers_on(rec: Rec) -> list[str]:
    state = lever_state(rec)
    return [name for name, on in LEVERS if on(state)]


def row_order(rec: Rec) -> tuple:
    on = levers_on(rec)
    names = [name for name, _ in LEVERS]
    return (len(on), max((names.index(n) for n in on), default=-1), rec["created_at"] or "")


def added(on: list[str], before: list[str] | None) -> str:
    if before is None:
        return "baseline" + (f" ({', '.join(on)})" if on else " (eager attention)")
    plus = [f"+{n}" for n in on if n not in before]
    minus = [f"\u2212{n}" for n in before if n not in on]
    return " ".join(plus + minus) or "(same levers)"


def ratio_cell(b: stats.Estimate | None, a: stats.Estimate | None) -> Cell:
    """'×1.41 [1.32, 1.51]'; ', n.s.' when the interval includes 1; '(no interval)' where one side has none."""
    if b is None or a is None or not a.value:
        return Cell("\u2014", None, "none")
    d = stats.ratio(b, a)
    text = f"\u00d7{d.value:.2f}"
    if d.lo is not None and d.hi is not None:
        text += f" [{d.lo:.2f}, {d.hi:.2f}]"
    if d.status != "established":
        text += " (no interval)" if d.status == "no interval" else f", {d.status}"
    return Cell(text, None, "value" if d.established else "none")


def group_table(key: tuple, recs: list[Rec], index: int) -> Table:
    title = f"{key[1]} on {key[2]}, {key[0]}: {workload_title(key[3])}"
    table = Table(f"levers-{index}", title,
                  "Each row adds the lever named to the row above. Tokens/s counts real (non-padding) tokens; "
                  "\u00d7 = this row's figure over the other row's, [95% interval]; n.s. = the interval includes "
                  "\u00d71 (a tie, not a gain).",
                  ["#", "Row", "Lever added", "Tokens/s", "\u00d7 previous", "\u00d7 baseline", "Peak GB",
                   "Memory \u00d7 previous"], cell_refs=False)
    before: list[str] | None = None
    prev = base = None
    for n, rec in enumerate(sorted(recs, key=row_order)):
        on = levers_on(rec)
        head = [Cell(f"#{rec['id']}", rec["id"]), Cell(str(n)), Cell(added(on, before))]
        before = on
        if rec["status"] != "success":
            table.rows.append(head + [failure_cell(rec)] + [Cell("\u2014", None, "none")] * 4)
            continue
        tokens, peak = rec.est.get("tokens"), rec.est.get("peak")
        base = base or rec
        table.rows.append(head + [
            Cell(pm(tokens), rec["id"]),
            ratio_cell(tokens, prev.est.get("tokens")) if prev else Cell("\u2014", None, "none"),
            ratio_cell(tokens, base.est.get("tokens")) if base is not rec else Cell("\u2014", None, "none"),
            Cell(gb_pm(peak), rec["id"]),
            ratio_cell(peak, prev.est.get("peak")) if prev else Cell("\u2014", None, "none")])
        prev = rec
    absent = [name for name, _ in LEVERS if not any(name in levers_on(r) for r in recs)]
    if absent:
        table.footnotes.append(f"Not in this ablation: {', '.join(absent)} (docs/levers.md says which levers "
                               f"run where).")
    cpu = [r for r in recs if r["device"] == "cpu"]
    if cpu and any(r.est.get("peak") is None or not r.est["peak"].has_interval for r in cpu):
        table.footnotes.append("CPU: peak = the process's resident-set high-water mark; one run's has no "
                               "interval, and a memory ratio without one is never a gain or a loss.")
    elif cpu:
        table.footnotes.append("CPU: peak = the process's resident-set high-water mark, its interval over the "
                               "repeats.")
    return table


def build(records: list[Rec]) -> Block | None:
    groups: dict[tuple, list[Rec]] = defaultdict(list)
    for rec in records:
        if is_lever_record(rec):
            key = (rec["group"] or rec["device"] or "?", method_base(rec), rec["model"], workload(rec),
                   get(rec.raw, "config", "task", "min_seq_len"))
            groups[key].append(rec)
    if not groups:
        return None
    tables = [group_table(key, recs, i) for i, (key, recs) in enumerate(sorted(groups.items(), key=str))]
    intro = ["Each table is one method on one model and machine; each row turns on one more speed lever, as in "
             "torchtune's table (Llama-3.2-3B on an A100, as issue 17 quotes it: packing \u00d73.4 tokens/s, compile +27%, "
             "checkpointing \u221222% speed / \u221242% memory, 8-bit AdamW \u221229% memory). The examples' "
             "lengths vary (task.min_seq_len to train.seq_len), so padding costs what packing saves."]
    return Block("levers", TITLE, intro, tables,
                 ["Rows come from the records of experiments named levers* (python -m bench.run -m "
                  "+experiment=levers); their order is the number of levers on. docs/levers.md: the levers."])
