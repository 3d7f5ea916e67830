"""Memory and speed tables of one hardware group: per method, the memory matrix, the speed matrix, and the
records index. Comparisons (vs full fine-tuning, vs LoRA) are only made between records of the same group,
model and workload (task, batch, sequence length); an outcome that is not a success shows as such."""
from __future__ import annotations

from bench import stats
from bench.report.cells import (NA, PEAK_SOURCES, RATES_NOTE, Cell, Table, diff_text, estimate_bytes,
                                failure_cell, gb, gb_pm, long_run_speed, memory_interval_note, model_header, na,
                                none, outcome, outcome_kind, pm, quality_text, rate_basis, sig, steps_estimate,
                                steps_text)
from bench.report.groups import (Group, method_base, method_family, method_sort_key, model_params, workload,
                                 workload_title)
from bench.report.fit import load_gpus
from bench.report.load import Rec
from bench.report.mfu import catalog_gpu, mfu

DOWN, UP = "\u2193", "\u2191"
FAMILY_NOTE = ("Methods by family: full weights (every weight trained: full fine-tuning, GaLore, APOLLO, Adam-mini, "
               "Q-GaLore), adapters (the LoRA family over a base in the compute dtype), quantised base (adapters over "
               "a frozen 8, 4, 3 or 2-bit base: QLoRA, HQQ, torchao).")


def reference(group: Group, rec: Rec, base: str) -> Rec | None:
    """The full-FT (base 'full') or LoRA (base 'lora') record to compare `rec` with: same model and workload;
    a success first, lowest rank, then the lowest id."""
    same = _same_cell(group).get((rec["model"], workload(rec), base), [])
    return min(same, key=lambda r: (not r.ok, r["rank"] or 0, r["id"])) if same else None


def _same_cell(group: Group) -> dict:
    return group.by("model-workload-method", lambda r: (r["model"], workload(r), method_base(r)))


def _relative(rec: Rec, ref: Rec | None, base: str, value, invert: bool = False) -> Cell:
    """The change from the reference record in % with its 95% interval (stats.ratio of the two estimates
    `value` returns), 'n.s.' when the interval includes no change; or why there is none."""
    name = "full FT" if base == "full" else "LoRA"
    if ref is None:
        return na(f"no {name} record")
    if ref is rec:
        return Cell("(ref.)", ref["id"])
    if method_base(rec) == base:  # another run of the reference method: no "LoRA vs LoRA"
        return na(f"a {name} run", ref["id"])
    if not ref.ok:  # grey, not red: this row is fine, its reference is not
        return Cell(f"n/a ({name} {outcome(ref)})", ref["id"], "none")
    mine, theirs = value(rec), value(ref)
    if not rec.ok or mine is None or theirs is None or not theirs.value:
        return na()
    no_interval = "1 run, no interval" if base == "full" else "no interval"
    return Cell(diff_text(stats.ratio(mine, theirs), invert, no_interval), ref["id"])


def peak_estimate(rec: Rec):
    return rec.est.get("peak")


def _estimate_only(rec: Rec) -> Cell:
    """The peak column of a row whose status column already says what happened."""
    est = estimate_bytes(rec)
    return Cell(f"est. {gb(est)}", rec["id"], "est") if est else na()


def peak_note(group: Group) -> str:
    sources = sorted({r["peak_source"] for r in group.records if r["peak_source"]})
    return "; ".join(PEAK_SOURCES.get(s, s) for s in sources) or "no measured peak"


def per_method_note(group: Group, gpus: list, utilisation: bool, energy: bool) -> str:
    note = (f"{FAMILY_NOTE} Peak memory: {peak_note(group)}.{memory_interval_note(group.device)} Memory reduction = 1 - peak / full "
            "fine-tuning's peak (same model and workload; + = less memory, \u2212 = more). Speed vs LoRA = "
            f"steps/s / LoRA's - 1 (+ = faster). {RATES_NOTE} Quality: the task's main metric, 0-100; with "
            "seeds their mean \u00b1 95% CI, one seed has no interval.")
    if any(r["steps_per_s_amortised"] for r in group.records):
        note += (" GaLore's steps/s is its speed between projection refreshes; the GaLore projection refresh "
                 "table has it with the refresh amortised.")
    if utilisation:
        gpu = next(g for g in (catalog_gpu(r, gpus) for r in group.records) if g is not None)
        note += (f" MFU: model FLOPs per step (bench.estimate's count: 6N per token for full FT and GaLore, 4N "
                 f"plus the adapters for LoRA/QLoRA, no recomputation) x the row's steps/s, over {gpu.name}'s "
                 f"dense 16-bit peak of {gpu.peak_tflops(2):g} TFLOP/s (conf/gpu/).")
    if energy:
        note += (" Energy: NVML's total-energy counter of the whole GPU over the measured steps of the run the "
                 "record's timing block holds (repeats keep no energy), per 1,000 trained tokens (GaLore's "
                 "projection refresh, in the warm-up, is not in it).")
    if group.device == "cuda":
        return note + (" torch reserved / allocated: the allocator's pool / live tensors at their peak (max over "
                       "phases).")
    return note + " Peak over baseline: the growth over the resident set before the model loaded."


def per_method(group: Group) -> Table:
    cuda = group.device == "cuda"
    columns = ["Method", "Model", "Task", "Family", "Status", f"Peak memory (GB) {DOWN}"]
    columns += ([f"torch reserved (GB) {DOWN}", f"torch allocated (GB) {DOWN}"] if cuda
                else [f"Peak over baseline (GB) {DOWN}"])
    energy = any(r["energy_joules_per_step"] for r in group.records)
    gpus = load_gpus() if cuda else []
    utilisation = any(mfu(r, gpus) is not None for r in group.records)
    columns += [f"Memory reduction vs full FT {UP}", "Rates from", f"Steps/s {UP}", f"Speed vs LoRA {UP}",
                f"Tokens/s {UP}"]
    columns += [f"MFU (%) {UP}"] if utilisation else []
    columns += [f"Energy (J per 1k tokens) {DOWN}"] if energy else []
    columns += ["Outlier steps", "Trainable params (%)", "Steps trained", f"Quality (0-100) {UP}", "Record"]
    table = Table(f"per-method-{group.slug}", "Per method", per_method_note(group, gpus, utilisation, energy),
                  columns, cell_refs=False)
    for rec in group.records:
        ok, ref = rec.ok, rec["id"]
        row = [Cell(rec["label"]), Cell(model_header(group.records, rec["model"])), Cell(str(rec["task"])),
               Cell(method_family(rec)),
               Cell("success", ref) if ok else failure_cell(rec),
               Cell(gb_pm(rec.est.get("peak")), ref) if ok else _estimate_only(rec)]
        if cuda:
            row += [Cell(gb(rec["torch_max_reserved_bytes"]) if ok else NA, ref),
                    Cell(gb(rec["torch_max_allocated_bytes"]) if ok else NA, ref)]
        else:
            row.append(Cell(gb(rec["peak_over_baseline_bytes"]) if ok else NA, ref))
        measured = rec["measured_steps"]
        row += [_relative(rec, reference(group, rec, "full"), "full", peak_estimate, invert=True),
                Cell(rate_basis(rec) if ok else NA, ref),
                Cell(steps_text(rec) if ok and steps_estimate(rec) else NA, ref),
                _relative(rec, reference(group, rec, "lora"), "lora", steps_estimate),
                Cell(pm(rec.est.get("tokens")) if ok and rec.est.get("tokens") else NA, ref),
                *([Cell(_percent(mfu(rec, gpus)), ref)] if utilisation else []),
                *([Cell(_joules_per_1k_tokens(rec), ref)] if energy else []),
                Cell(f"{rec['outlier_steps']} of {measured}" if ok and rec["outlier_steps"] is not None
                     and measured else NA, ref),
                Cell(f"{rec['trainable_pct']:.3g}%" if rec["trainable_pct"] is not None else NA, ref),
                Cell(str(rec["train_steps"]) if ok and rec["train_steps"] is not None else NA, ref),
                Cell(quality_text(rec) if ok else NA, ref),
                Cell(f"#{rec['id']}", ref)]
        for c in row:
            if c.text == NA:
                c.kind = "none"
        table.rows.append(row)
    table.footnotes = reference_notes(group)
    return table


def _percent(fraction) -> str:
    """MFU in % with its interval (the row's steps/s estimate, scaled)."""
    return NA if fraction is None else pm(fraction.scaled(100), lambda v: f"{v:.1f}")


def _joules_per_1k_tokens(rec: Rec) -> str:
    """Energy per step over the run's tokens per step: no rate in it, so nothing to mix."""
    per_step, tokens_per_s, steps_per_s = rec["energy_joules_per_step"], rec["tokens_per_s"], rec["steps_per_s"]
    if not rec.ok or per_step is None or not tokens_per_s or not steps_per_s:
        return NA
    return sig(1000.0 * per_step * steps_per_s / tokens_per_s)


def reference_notes(group: Group) -> list[str]:
    """Which record is the reference where a model and workload has more than one full-FT or LoRA record."""
    notes = []
    for base, name in (("full", "full FT"), ("lora", "LoRA")):
        for (model, wl, method), same in _same_cell(group).items():  # in the order of the records
            if method == base and len(same) > 1:
                ref = reference(group, same[0], base)
                notes.append(f"{name} reference for {model_header(group.records, model)} \u00b7 "
                             f"{workload_title(wl)}: #{ref['id']} ({ref['label']}), of {len(same)} {name} records.")
    return notes


def columns_of(group: Group) -> tuple[list[str], list[tuple[str, tuple]], str]:
    """Method labels in method order; (model, workload) pairs by model size; and the table title suffix. With
    one workload in the group its description goes in the title, else into each model's heading."""
    ordered = sorted(group.records, key=lambda r: (method_sort_key(r), r["label"]))
    labels = list(dict.fromkeys(r["label"] for r in ordered))
    pairs = sorted({(r["model"], workload(r)) for r in group.records},
                   key=lambda p: (model_params(group.records, p[0]), p[0], str(p[1])))
    workloads = {wl for _, wl in pairs}
    suffix = f" ({workload_title(next(iter(workloads)))})" if len(workloads) == 1 else ""
    return labels, pairs, suffix


def pair_header(group: Group, pair: tuple[str, tuple], single_workload: bool) -> str:
    model, wl = pair
    head = model_header(group.records, model)
    return head if single_workload else f"{head} \u00b7 {workload_title(wl)}"


def _joined(cells: list[Cell]) -> Cell:
    """Several records for one matrix cell (never averaged): all of them, ' / '-separated."""
    if len(cells) == 1:
        return cells[0]
    kinds = {c.kind for c in cells}
    return Cell(" / ".join(f"{c.text} [#{c.ref}]" for c in cells), None, kinds.pop() if len(kinds) == 1 else "value")


def _matrix_cells(group: Group, label: str, pair: tuple[str, tuple], make) -> Cell:
    index = group.by("label-model-workload", lambda r: (r["label"], r["model"], workload(r)))
    cells = [make(r) for r in index.get((label, *pair), [])]
    return _joined(cells) if cells else none()


def memory_matrix(group: Group) -> Table:
    labels, pairs, suffix = columns_of(group)
    table = Table(f"memory-{group.slug}", f"Peak memory, method x model{suffix}",
                  f"GB {DOWN} (lower is better). {FAMILY_NOTE} Measured: {peak_note(group)}. Where a cell was not measured, the "
                  "preflight estimate stored in its record is shown as 'est.' next to the outcome"
                  + ("" if group.device == "cuda" else " (on a CPU: the host memory the cell needs, materialising a "
                     "random-init base before quantisation included)") + f".{memory_interval_note(group.device)} "
                  "\u2014 = no record.",
                  ["Method"] + [pair_header(group, p, bool(suffix)) for p in pairs])

    def make(r: Rec) -> Cell:
        return Cell(gb_pm(r.est.get("peak")), r["id"]) if r.ok else failure_cell(r, with_estimate=True)

    table.rows = [[Cell(label)] + [_matrix_cells(group, label, p, make) for p in pairs] for label in labels]
    return table


def speed_matrix(group: Group) -> Table:
    labels, pairs, suffix = columns_of(group)
    table = Table(f"speed-{group.slug}", f"Training speed, model x method{suffix}",
                  f"Steps/s {UP} (higher is better; one step = one optimizer step) \u00b1 95% CI: the mean of the "
                  "record's repeats where it has them, else the one run's batch-means interval (the per-method "
                  "table's 'Rates from' says which). In brackets: vs LoRA on the same model and workload (+ = "
                  "faster than LoRA) \u00b1 the 95% interval of the ratio; n.s. = within noise, a tie. "
                  "\u2014 = no record."
                  + (f" GaLore: {REFRESH_NOTE}" if any(r["steps_per_s_amortised"] for r in group.records) else ""),
                  ["Model"] + labels)

    def versus(r: Rec, value, name: str = "vs LoRA ") -> str:
        diff = _relative(r, reference(group, r, "lora"), "lora", value)
        return f" ({name}{diff.text})" if diff.kind == "value" and diff.text != "(ref.)" else ""

    def make(r: Rec) -> Cell:
        if not r.ok:
            return failure_cell(r)
        text = steps_text(r) + versus(r, steps_estimate)
        if r["steps_per_s_amortised"] is not None:  # GaLore: the speed between refreshes, then over a long run
            text += f"; refresh amortised: {pm(long_run_speed(r))}{versus(r, long_run_speed, '')}"
        return Cell(text, r["id"])

    table.rows = [[Cell(pair_header(group, p, bool(suffix)))]
                  + [_matrix_cells(group, label, p, make) for label in labels] for p in pairs]
    return table


REFRESH_NOTE = ("the first figure is the speed between projection refreshes; every update_proj_gap steps "
                "galore-torch recomputes each projection with an fp32 SVD, and 'refresh amortised' spreads that cost "
                "over the steps between two refreshes (see the GaLore projection refresh table).")


def refresh_table(group: Group) -> Table | None:
    """GaLore records: the refresh period and cost, and steps/s between refreshes vs over a long run."""
    recs = [r for r in group.records if r.ok and r["steps_per_s_amortised"] is not None]
    if not recs:
        return None
    table = Table(f"refresh-{group.slug}", "GaLore projection refresh",
                  "Every update_proj_gap optimizer steps galore-torch recomputes the projection of each projected "
                  "matrix (an fp32 SVD). Refresh: that step's time minus the mean step, from the record's per-step "
                  "times ('per-step') or, in records without per-step warm-up times, the warm-up's total minus "
                  "warm-up steps x mean step ('warm-up total'); either way the first step's start-up is counted "
                  "in, so it reads a little high. Amortised = gap / (gap x mean step + refresh): arithmetic on "
                  "the record's measurements, assuming every refresh costs what the measured one did; its "
                  "\u00b1 carries the steps' own 95% interval only (one refresh measured, taken as exact; "
                  "benchmarks/galore_refresh.py found \u00b112% run to run on a VM).",
                  ["Method", "Model", "Refresh every (steps)", "Refresh (s) \u2193", "Basis",
                   f"Steps/s between refreshes {UP}", f"Steps/s, refresh amortised {UP}",
                   f"Amortised vs LoRA {UP}", "Record"], cell_refs=False)
    for r in recs:
        table.rows.append([
            Cell(r["label"]), Cell(model_header(group.records, r["model"])), Cell(str(r["refresh_every_steps"])),
            Cell(sig(r["refresh_seconds"]), r["id"]), Cell(str(r["refresh_basis"])), Cell(steps_text(r), r["id"]),
            Cell(pm(long_run_speed(r)), r["id"]),
            _relative(r, reference(group, r, "lora"), "lora", long_run_speed),
            Cell(f"#{r['id']}", r["id"])])
    return table


def records_index(records: list[Rec]) -> Table:
    table = Table("records", "Records", "Every record in this report, by id; the CSV has every figure of each.",
                  ["#", "Cell", "Model", "Task", "Status", "Error / reason", "Estimate (GB)", "File"],
                  cell_refs=False)
    for rec in records:
        reason = rec["error"] or ""
        table.rows.append([Cell(f"#{rec['id']}", rec["id"]), Cell(rec["label"]), Cell(str(rec["model"])),
                           Cell(str(rec["task"])),
                           Cell(rec["status"], None, "value" if rec.ok else outcome_kind(rec)),
                           Cell(reason), Cell(gb(estimate_bytes(rec)), None, "est") if estimate_bytes(rec) else na(),
                           Cell(rec["file"])])
    return table
