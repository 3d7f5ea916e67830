"""What the report says about one hardware group, before rendering: the at-a-glance findings, the tables,
the figures, the mixed-environment flags and the environment appendix."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from bench.report import figures, figures_quality, fit, quality_tables, tables
from bench.report.cells import (Cell, Table, gb, long_run_steps_value, model_header, outcome, quality_text, sig,
                                steps_text, steps_value)
from bench.report.figures import Fig
from bench.report.groups import Group, model_params, workload, workload_title
from bench.report.load import PACKAGES, Rec

FIT_MISSING = ("Hardware fit is read from GPU records only: CPU resident memory (fp32, the whole Python "
               "process) does not predict GPU memory. Run the cells on a GPU, or predict them with "
               "`python -m bench.estimate ... gpu=h100`.")


@dataclass
class Section:
    group: Group
    findings: list[tuple[str, list[tuple[str, int | None]]]]  # (heading, [(text, record id)])
    mixed: list[str]
    tables: list[Table]
    figures: list[Fig]
    notes: list[str] = field(default_factory=list)
    environment: Table | None = None


@dataclass
class Report:
    """The whole report before rendering. Here, beside Section, so the renderers read it without importing
    bench.report.build, which imports them."""
    title: str
    command: str
    sources: list[str]
    span: str  # first and last record time
    skipped_files: list[str]
    sections: list[Section]
    records: Table
    n_records: int


def findings(group: Group) -> list[tuple[str, list[tuple[str, int | None]]]]:
    """Per model and workload: lowest memory, fastest, best quality, and what did not run."""
    cells: dict[tuple, list[Rec]] = defaultdict(list)
    for rec in group.records:
        cells[(rec["model"], workload(rec))].append(rec)
    out = []
    for (model, wl), recs in sorted(cells.items(), key=lambda kv: (model_params(group.records, kv[0][0]), kv[0][0])):
        ok = [r for r in recs if r.ok]
        items: list[tuple[str, int | None]] = []
        if len(ok) == 1:  # nothing to rank
            only = ok[0]
            figures_ = [f"{gb(only['peak_bytes'])} GB" if only["peak_bytes"] else None,
                        f"{steps_text(only)} steps/s" if steps_value(only) else None,
                        quality_text(only) if only["quality_score"] is not None else None]
            items.append((f"one successful cell, {only['label']}: " + ", ".join(f for f in figures_ if f), only["id"]))
            ok = []
        if (mem := [r for r in ok if r["peak_bytes"]]):
            best = min(mem, key=lambda r: r["peak_bytes"])
            items.append((f"lowest peak memory: {best['label']}, {gb(best['peak_bytes'])} GB", best["id"]))
        if (fast := [r for r in ok if steps_value(r)]):  # GaLore ranked by its speed over a long run
            best = max(fast, key=long_run_steps_value)
            speed = (f"{sig(best['steps_per_s_amortised'])} steps/s with its projection refresh every "
                     f"{best['refresh_every_steps']} steps ({steps_text(best)} between refreshes)"
                     if best["steps_per_s_amortised"] is not None else f"{steps_text(best)} steps/s")
            items.append((f"fastest: {best['label']}, {speed}", best["id"]))
        if (scored := [r for r in ok if r["quality_score"] is not None]):
            best = max(scored, key=lambda r: r["quality_score"])
            items.append((f"best quality: {best['label']}, {quality_text(best)}", best["id"]))
        for r in recs:
            if not r.ok:
                items.append((f"{r['label']}: {outcome(r)}", r["id"]))
        out.append((f"{model_header(group.records, model)} \u00b7 {workload_title(wl)}", items))
    return out


def mixed_flags(group: Group) -> list[str]:
    flags = []
    for name, versions in group.mixed().items():
        pretty = name.removeprefix("pkg_").replace("_", "-") if name.startswith("pkg_") else name.replace("_", " ")
        listed = ", ".join(f"{v} ({n} record{'s' if n > 1 else ''})" for v, n in sorted(versions.items()))
        flags.append(f"{pretty}: {listed}")
    return flags


def environment(group: Group) -> Table:
    recs = group.records
    table = Table(f"env-{group.slug}", "Environment", "What the records say about the machine and software "
                  "(a value with a count differs between records).", ["", "Value"],
                  align_numbers=False)

    def values(key: str, fmt=str) -> str:
        counts: dict[str, int] = defaultdict(int)
        for r in recs:
            counts[fmt(r[key]) if r[key] is not None else "unknown"] += 1
        if len(counts) == 1:
            return next(iter(counts))
        return ", ".join(f"{v} ({n})" for v, n in sorted(counts.items()))

    rows = [("Device", values("device"))]
    if group.device == "cuda":
        rows += [("GPU", values("gpu_name")),
                 ("GPU memory", values("gpu_memory_bytes", lambda b: f"{b / 2**30:.1f} GiB")),
                 ("Driver", values("gpu_driver")), ("CUDA", values("gpu_cuda"))]
    rows += [("CPU", values("cpu_model")), ("CPU cores (usable)", values("cpu_cores")),
             ("Host memory", values("host_memory_bytes", lambda b: f"{b / 1e9:.1f} GB")),
             ("Python", values("python"))]
    rows += [(p, values(f"pkg_{p.replace('-', '_')}")) for p in PACKAGES]
    shas = {(r["git_sha"] or "unknown")[:10] for r in recs}
    dirty = sum(1 for r in recs if r["git_dirty"])
    rows.append(("bench code (git)", f"{', '.join(sorted(shas))}" + (f"; {dirty} of {len(recs)} records from a tree "
                                                                    "with uncommitted changes" if dirty else "")))
    rows.append(("Records", f"{len(recs)} (#{recs[0]['id']}\u2013#{recs[-1]['id']})"))
    table.rows = [[Cell(k), Cell(v)] for k, v in rows]
    return table


def build_section(group: Group, fig_dir: Path) -> Section:
    group_tables = [tables.per_method(group), tables.memory_matrix(group), tables.speed_matrix(group)]
    if (refresh := tables.refresh_table(group)) is not None:
        group_tables.append(refresh)
    quality = [t for t in (quality_tables.glue(group), quality_tables.squad(group)) if t is not None]
    group_tables += quality
    notes = [] if quality else ["Quality: no record here trained on a GLUE or SQuAD task (synthetic tokens measure "
                                "memory and speed only), so there is no quality table."]
    fit_table = fit.hardware_fit(group)
    if fit_table is not None:
        group_tables.append(fit_table)
    else:
        notes.append(FIT_MISSING if group.device != "cuda" else "Hardware fit: the GPU catalog (conf/gpu/) "
                     "could not be read.")
    figs = [figures.memory_vs_size(group, fig_dir), figures.speed_bars(group, fig_dir),
            figures.breakdown_bars(group, fig_dir), figures_quality.quality_vs_memory(group, fig_dir),
            figures_quality.convergence(group, fig_dir), figures_quality.rank_sweep(group, fig_dir)]
    return Section(group, findings(group), mixed_flags(group), group_tables, figs, notes, environment(group))
