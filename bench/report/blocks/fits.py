"""What fits where (issue 18): (a) the longest context each method trains at, from bench.fit's search records
(docs/fit.md: `logs/fit-*.json` beside the records read), one row per model and device, one column per method,
unsloth-style; (b) the fit table (the searches' probes left out: table (a) shows them): each
model x method x workload of the GPU records (measured or predicted on CUDA) against every GPU of the catalog
(conf/gpu/), each cell marked where it comes from: "measured" (a record of that cell on that GPU: its peak,
or its OOM), else "est." (the peak measured on another GPU, or failing that bench.estimate's prediction stored
in the record's preflight, for the record's own shape). No torch, no prediction made here: records only.
Neither: no block.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.report.cells import Cell, Table, gb, none
from bench.report.groups import workload, workload_title
from bench.report.load import Rec, first_line, get, integer, text
from bench.report.sections import Block

TITLE = "What fits where"
TIGHT = 0.05  # the CUDA peak model's calibration error (bench/estimate/README.md)
ORDER = ("full", "galore", "lora", "dora", "qlora")  # columns: most memory first, the rest after, by name


def find_fit_searches(records: list[Rec]) -> list[tuple[Path, dict[str, Any]]]:
    """bench.fit's search records (docs/fit.md: `kind: "fit"`, in `logs/` beside the probes' records, which
    bench.report reads) of every folder a loaded record comes from; unreadable or other files are passed over."""
    out = []
    for folder in sorted({Path(r.path).parent for r in records}):
        for path in sorted((folder / "logs").glob("fit-*.json")):
            try:
                raw = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, ValueError):
                continue
            if isinstance(raw, dict) and raw.get("kind") == "fit" and text(raw.get("method")) \
                    and text(raw.get("model")):
                out.append((path, raw))
    return out


def _search_cell(raw: dict[str, Any]) -> Cell:
    """'8,192 (OOM at 9,216)': the answer trains, the true limit lies in [answer, first_failing)."""
    answer, failing = integer(raw.get("answer")), integer(raw.get("first_failing"))
    oom = f"OOM at {failing:,}" if failing is not None else "none ran out"
    if answer is None:
        return Cell(f"none ({oom})", None, "nofit")
    if raw.get("converged") is not True:
        why = first_line(text(raw.get("stop_reason"))) or "not converged"
        return Cell(f">= {answer:,} ({why})", None, "value")
    return Cell(f"{answer:,} ({oom})", None, "value")


def max_context_table(searches: list[tuple[Path, dict[str, Any]]]) -> Table | None:
    if not searches:
        return None
    cells: dict[tuple[str, ...], dict[str, Cell]] = {}
    methods: list[str] = []
    for _path, raw in sorted(searches, key=lambda pr: text(pr[1].get("created_at")) or ""):  # latest wins
        method, axis = text(raw["method"]) or "?", text(raw.get("axis")) or "seq_len"
        bits = integer(get(raw, "cell", "bits"))
        method += f" {bits}-bit" if bits and bits < 16 else ""
        methods += [method] if method not in methods else []
        fixed = raw.get("fixed") if isinstance(raw.get("fixed"), dict) else {}
        held = (f"batch {fixed.get('batch_size')}" if axis == "seq_len" else f"{fixed.get('seq_len')} tokens") + (
            ", checkpointing" if fixed.get("gradient_checkpointing") else "")
        device = text(get(raw, "device", "name")) or text(get(raw, "device", "kind")) or "?"
        memory = integer(get(raw, "device", "memory_bytes"))
        device += f" ({gb(memory)} GB)" if memory else ""
        cap = get(raw, "cell_memory_cap_gb")
        device += f", capped at {cap:g} GB" if isinstance(cap, (int, float)) and cap > 0 else ""
        budget = get(raw, "cell_memory_budget_gb")
        device += (f", budget {budget:g} GB over baseline" if isinstance(budget, (int, float)) and budget > 0
                   else "")
        searched = "longest sequence" if axis == "seq_len" else "largest batch"
        cells.setdefault((text(raw["model"]) or "?", device, searched, held), {})[method] = _search_cell(raw)
    methods.sort(key=lambda m: (ORDER.index(m.split()[0]) if m.split()[0] in ORDER else len(ORDER), m))
    table = Table("fits-context", "Longest context per method (bench.fit, measured)",
                  "The largest value that trained, searched by real cells (docs/fit.md): the true limit lies between "
                  "it and the first value that ran out of memory; one run per probe, no interval.",
                  ["Model", "Device", "Searched", "Held fixed", *methods])
    for key, row in sorted(cells.items()):
        table.rows.append([Cell(k) for k in key] + [row.get(m, none()) for m in methods])
    return table


def probe_files(searches: list[tuple[Path, dict[str, Any]]]) -> set[Path]:
    """The probes' record files of the searches (kept out of the fit table: the search's table shows them)."""
    out = set()
    for path, raw in searches:
        for probe in raw.get("probes") or []:
            name = text(probe.get("record")) if isinstance(probe, dict) else None
            if name:
                out.add((path.parent.parent / name).resolve())
    return out


def _on(gpu: Any, rec: Rec) -> bool:
    return rec["device"] == "cuda" and gpu.matches(rec["gpu_name"] or "")


def peak_basis(recs: list[Rec]) -> tuple[int | None, str]:
    """The peak the row's other GPUs are judged by: measured on a GPU (the latest success), else the CUDA
    prediction stored in a record's preflight (made by the estimator of its day)."""
    ok = [r for r in recs if r.ok and r["device"] == "cuda" and r["peak_bytes"]]
    if ok:
        rec = max(ok, key=lambda r: r["created_at"] or "")
        return rec["peak_bytes"], f"{gb(rec['peak_bytes'])} measured ({rec['gpu_name']})"
    for rec in recs:
        if rec["est_device"] == "cuda" and rec["est_needs_device_bytes"]:
            return rec["est_needs_device_bytes"], f"{gb(rec['est_needs_device_bytes'])} predicted"
    return None, "\u2014"


def fit_cell(gpu: Any, recs: list[Rec], peak: int | None) -> Cell:
    capacity = gpu.memory_gb * 1e9
    here = [r for r in recs if _on(gpu, r)]
    ok = [r for r in here if r.ok and r["peak_bytes"] is not None]
    if ok:
        rec = max(ok, key=lambda r: r["created_at"] or "")
        capacity = max(capacity, rec["gpu_memory_bytes"] or 0)
        fits = rec["peak_bytes"] <= capacity
        return Cell(f"{'fits' if fits else 'no'} (measured)", rec["id"], "fits" if fits else "nofit")
    oom = [r for r in here if r["status"] == "oom"]
    if oom:
        return Cell("no (OOM, measured)", oom[0]["id"], "fail")
    if peak is None:
        return none()
    verdict = "borderline" if abs(peak - capacity) <= TIGHT * peak else "fits" if peak <= capacity else "no"
    return Cell(f"{verdict} (est.)", recs[0]["id"], "est")


def fit_table(records: list[Rec], gpus: list, skip: set[Path] | None = None) -> Table | None:
    rows: dict[tuple, list[Rec]] = {}
    for rec in records:
        if not (rec["device"] == "cuda" or rec["est_device"] == "cuda") or Path(rec.path).resolve() in (skip or ()):
            continue
        rows.setdefault((rec["model"], rec["label"] or rec["method"], workload(rec)), []).append(rec)
    if not rows or not gpus:
        return None
    table = Table("fits-gpus", "Fit on the catalog GPUs",
                  "Does each cell's peak fit each GPU's memory (conf/gpu/, decimal GB)? 'measured' = a record of the "
                  "cell on that GPU (its peak, or its OOM); 'est.' = the row's peak against the GPU's memory: the peak "
                  "measured on another GPU where there is one, else bench.estimate's prediction stored with the record "
                  "(the estimator of the record's day, for the record's own shape); 'borderline' = within 5 % of the "
                  "GPU's memory, the estimator's calibration error.",
                  ["Model", "Method", "Workload", "Peak (GB)"] + [f"{g.name} ({g.memory_gb:g} GB)" for g in gpus],
                  cell_refs=False)
    for (model, label, load), recs in sorted(rows.items(), key=lambda kv: tuple(map(str, kv[0]))):
        peak, basis = peak_basis(recs)
        table.rows.append([Cell(model), Cell(label), Cell(workload_title(load)), Cell(basis)]
                          + [fit_cell(g, recs, peak) for g in gpus])
    return table


def build(records: list[Rec]) -> Block | None:
    from bench.report.fit import load_gpus

    searches = find_fit_searches(records)
    tables = [t for t in (max_context_table(searches), fit_table(records, load_gpus(), probe_files(searches)))
              if t is not None]
    if not tables:
        return None
    return Block(key="fits", title=TITLE, intro=[
        "Which GPU each measured or predicted cell fits, and how long a context each method reaches. Peaks "
        "predicted on CUDA are within ±5 % on bench's 16 H100 records (bench/estimate/README.md); a prediction "
        "within 5 % of a GPU's memory reads 'borderline'. For a GPU and model you have not run, "
        "`python -m bench.advise model=M gpu=G` ranks every configuration that fits (docs/advise.md)."],
        tables=tables,
        notes=[f"{len(records)} records read; only GPU records and CUDA predictions enter the fit table."])

