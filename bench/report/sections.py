"""What the report says about one hardware group, before rendering: the at-a-glance findings, the tables,
the figures, the mixed-environment flags and the environment appendix."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from bench import stats
from bench.report import convergence, figures, figures_quality, fit, quality_tables, tables
from bench.report.cells import (Cell, Table, gb_pm, long_run_speed, model_header, outcome, pm, quality_text, steps_text,
                                steps_value)
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
class Block:
    """A report-wide section, before the hardware groups (claims, what fits where, lever ablations): built by
    one module under bench/report/blocks/ from all records; its tables may compare across hardware only in
    the way its notes say."""
    key: str
    title: str
    intro: list[str]
    tables: list[Table]
    notes: list[str] = field(default_factory=list)


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
    blocks: list[Block] = field(default_factory=list)


def leader(what: str, recs: list[Rec], value, text, higher_is_better: bool, kind: str = "ratio",
           missing: str = "1 run each, no interval") -> tuple[str, int | None] | None:
    """'fastest: lora, 2.45 ±0.16 steps/s' only when its lead over every other is established (stats.best);
    else the tie, or, where a tied figure has no interval at all, that no winner is named."""
    est = {r["id"]: value(r) for r in recs}
    est = {k: v for k, v in est.items() if v is not None}
    if len(est) < 2:
        return None
    by_id = {r["id"]: r for r in recs}
    top, tied = stats.best(est, higher_is_better, kind)  # type: ignore[arg-type]
    if top is not None:
        return f"{what}: {by_id[top]['label']}, {text(by_id[top])}", top
    listed = ", ".join(f"{by_id[k]['label']} {text(by_id[k])}" for k in tied)
    if any(not est[k].has_interval for k in tied):
        return f"{what}: none named ({missing}): {listed}", None
    if kind == "delta":  # quality: "comparable" is an equivalence verdict (the quality table's), not this
        return f"{what}: none named (differences n.s., not established): {listed}", None
    return f"{what}: tie (within noise): {listed}", None


def _speed_text(r: Rec) -> str:
    if r["steps_per_s_amortised"] is None:
        return f"{steps_text(r)} steps/s"
    return (f"{pm(long_run_speed(r))} steps/s with its projection refresh every {r['refresh_every_steps']} steps "
            f"({steps_text(r)} between refreshes)")


def findings(group: Group) -> list[tuple[str, list[tuple[str, int | None]]]]:
    """Per model and workload: lowest memory, fastest, best quality (each named only when established, else
    the tie), and what did not run."""
    cells: dict[tuple, list[Rec]] = defaultdict(list)
    for rec in group.records:
        cells[(rec["model"], workload(rec))].append(rec)
    out = []
    for (model, wl), recs in sorted(cells.items(), key=lambda kv: (model_params(group.records, kv[0][0]), kv[0][0])):
        ok = [r for r in recs if r.ok]
        items: list[tuple[str, int | None]] = []
        if len(ok) == 1:  # nothing to rank
            only = ok[0]
            figures_ = [f"{gb_pm(only.est.get('peak'))} GB" if only.est.get("peak") else None,
                        f"{steps_text(only)} steps/s" if steps_value(only) else None,
                        quality_text(only) if only.est.get("quality") else None]
            items.append((f"one successful cell, {only['label']}: " + ", ".join(f for f in figures_ if f), only["id"]))
            ok = []
        found = [leader("lowest peak memory", ok, lambda r: r.est.get("peak"),
                        lambda r: f"{gb_pm(r.est.get('peak'))} GB", higher_is_better=False),
                 leader("fastest", ok, long_run_speed, _speed_text, higher_is_better=True),  # GaLore: long run
                 leader("best quality", ok, lambda r: r.est.get("quality"), lambda r: quality_text(r, seeds=False),
                        higher_is_better=True, kind="delta", missing="1 seed each, no interval")]
        items += [f for f in found if f is not None]
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
    quality = [t for t in (quality_tables.glue(group), quality_tables.squad(group), convergence.table(group))
               if t is not None]
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
