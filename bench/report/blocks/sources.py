"""The source tables replicated (issue 16): each published table of bench/claims/tables.yaml as a report table,
every cell "published | bench". Bench's figure is measured where a GPU record was made at exactly the cell's
stand-in setting (bench.claims.source_tables.matches), with its 95% interval and record id; else its peak
memory and trainable share are predicted by bench.estimate ("est.": a prediction, not a measurement; speed is
never predicted); a method bench does not have reads "not modelled". No GPU record matching any cell: no block.

Predictions are this module's only cost (a meta-device model per model x method x precision): each distinct
cell is predicted once per process and kept on disk ($XDG_CACHE_HOME or ~/.cache, bench/source-tables-*.json)
under a fingerprint of the estimator's and methods' code, conf/ and the library versions, so a later build
reads them back; bench.estimate (and torch) is imported only when a cell needs a prediction."""
from __future__ import annotations

import warnings
from collections import defaultdict
from typing import Any, Callable

from bench import stats
from bench.claims.source_tables import (SourceTable, SourceTablesError, Spec, Tables, expected, load_tables, matches,
                                        model_name)
from bench.report.cells import (PEAK_SOURCES, Cell, Table, diff_text, estimate_bytes, gb, gb_pm, outcome, outcome_kind,
                                pm)
from bench.report.load import Rec, ReportInputError
from bench.report.sections import Block

Estimator = Callable[[list[tuple[str, ...]]], dict[tuple[str, ...], dict[str, Any]]]
TITLE = "The source tables replicated"
SPEEDS = ("steps_per_s", "tokens_per_s", "speed_vs")  # measured only, never predicted


def _best(recs: list[Rec]) -> Rec | None:
    """The record a cell shows: a success over anything else, then the most repeats, then the latest."""
    if not recs:
        return None
    return max(recs, key=lambda r: (r.ok, r["repeats_n"] or 1, r["created_at"] or ""))


def _base_params(total: float | None, trainable: float | None) -> float | None:
    """The model's own parameters: adapters (trainable < total) are not part of the model."""
    if not total:
        return None
    return total - trainable if trainable and trainable < total else total


def _measured(spec: Spec, rec: Rec, versus: Rec | None) -> Cell:
    est, ref = rec.est, rec["id"]
    if spec.metric == "peak_gb":
        return Cell(f"{gb_pm(est.get('peak'))} GB", ref) if est.get("peak") else Cell("no peak", ref, "none")
    if spec.metric in ("steps_per_s", "tokens_per_s"):
        value = est.get("steps" if spec.metric == "steps_per_s" else "tokens")
        return Cell(pm(value), ref) if value else Cell("not timed", ref, "none")
    if spec.metric == "trainable_pct":
        pct = rec["trainable_pct"]
        return Cell(f"{pct:.2f}%", ref) if pct is not None else Cell("\u2014", ref, "none")
    if spec.metric == "gb_per_model_gb":
        base, peak = _base_params(rec["params_total"], rec["params_trainable"]), est.get("peak")
        if not base or not peak:
            return Cell("—", ref, "none")
        return Cell(pm(peak.scaled(1 / (2 * base)), lambda v: f"{v:.2f}"), ref)
    if spec.versus is not None and spec.versus.key == spec.method.key:  # speed_vs: the reference itself
        return Cell("reference", ref)
    if spec.versus is None or versus is None or not est.get("steps") or not versus.est.get("steps"):
        return Cell(f"no {spec.versus.key if spec.versus else 'reference'} record to compare", ref, "none")
    return Cell(f"{diff_text(stats.ratio(est['steps'], versus.est['steps']))} vs #{versus['id']}", ref)


def _estimated(spec: Spec, pred: dict[str, Any] | None) -> Cell:
    if spec.method.missing:
        return Cell("not modelled", None, "none")
    if spec.metric in SPEEDS:
        return Cell("not measured", None, "none")
    if pred is None or "error" in pred:
        return Cell("not predicted", None, "none")
    mark = "*" if pred.get("flag") else ""
    if spec.metric == "peak_gb":
        return Cell(f"est. {gb(pred['peak_bytes'])} GB{mark}", None, "est")
    if spec.metric == "trainable_pct":
        return Cell(f"est. {100 * pred['trainable'] / pred['total']:.2f}%{mark}", None, "est")
    base = _base_params(pred["total"], pred["trainable"])
    return Cell(f"est. {pred['peak_bytes'] / (2 * base):.2f}{mark}", None, "est")


def _with_published(published: str | None, bench: Cell) -> Cell:
    return Cell(f"{published if published is not None else '—'} | {bench.text}", bench.ref, bench.kind)


class Replicator:
    """Finds each cell's record, predicts the rest in one batch, and writes the tables."""

    def __init__(self, config: Tables, records: list[Rec], estimator: Estimator):
        self.config, self.records, self.estimator = config, [r for r in records if r["device"] == "cuda"], estimator
        self.found: dict[tuple[str, ...], Rec | None] = {}

    def record(self, spec: Spec) -> Rec | None:
        key = spec.overrides
        if key not in self.found:
            want = expected(spec, self.config.standin)
            self.found[key] = _best([r for r in self.records if matches(r.raw, want)])
        return self.found[key]

    def versus(self, spec: Spec) -> Rec | None:
        if spec.versus is None:
            return None
        other = Spec(spec.versus, spec.model, "steps_per_s")
        rec = self.record(other)
        return rec if rec is not None and rec.ok else None

    def cells(self) -> list[tuple[SourceTable, list[str], str | None, Spec]]:
        return [(t, labels, published, spec) for t in self.config.tables for labels, row in t.rows
                for published, spec in row]

    def to_predict(self) -> list[tuple[str, ...]]:
        wanted = [(*self.config.standin, *spec.overrides) for _, _, _, spec in self.cells()
                  if not spec.method.missing and spec.metric not in SPEEDS
                  and (self.record(spec) is None or not self.record(spec).ok)]
        return list(dict.fromkeys(wanted))

    def table(self, source: SourceTable, preds: dict[tuple[str, ...], dict[str, Any]]) -> Table:
        out = Table(f"source-{source.key}", f"{source.caption} ({source.source})",
                    "Each cell: published | bench. Bench's figure is measured (\u00b1 its 95% interval, [#n] its "
                    "record) where a GPU record was made at the stand-in setting, else 'est.' (predicted by "
                    "bench.estimate, not measured); a record that did not run shows its outcome.",
                    [*source.label_columns, *source.columns], align_numbers=False)
        used: dict[str, set[int]] = defaultdict(set)
        flagged, notes, errors = False, [], defaultdict(list)  # errors, estimator notes -> the cells they concern
        said: dict[str, list[str]] = defaultdict(list)
        for labels, row in source.rows:
            cells = [Cell(label) for label in labels]
            for published, spec in row:
                rec = self.record(spec)
                if rec is not None and rec.ok:
                    bench = _measured(spec, rec, self.versus(spec))
                    used[rec["gpu_name"] or "unknown GPU"].add(rec["id"])
                elif rec is not None and spec.metric in ("peak_gb", *SPEEDS):  # did not run: its outcome
                    est = estimate_bytes(rec) if spec.metric == "peak_gb" else None  # and its own estimate
                    bench = Cell(outcome(rec) + (f" (est. {gb(est)} GB)" if est else ""), rec["id"], outcome_kind(rec))
                    used[rec["gpu_name"] or "unknown GPU"].add(rec["id"])
                else:
                    pred = preds.get((*self.config.standin, *spec.overrides))
                    bench = _estimated(spec, pred)
                    flagged |= bool(pred and pred.get("flag"))
                    if pred and "error" in pred and f"{spec.method.key} {spec.model}" not in errors[pred["error"]]:
                        errors[pred["error"]].append(f"{spec.method.key} {spec.model}")
                    for note in (pred or {}).get("notes") or []:
                        if f"{spec.method.key} {spec.model}" not in said[note]:
                            said[note].append(f"{spec.method.key} {spec.model}")
                    if spec.method.missing and spec.method.missing not in notes:
                        notes.append(spec.method.missing)
                cells.append(_with_published(published, bench))
            out.rows.append(cells)
        methods = {spec.method.key: spec.method.text for _, row in source.rows for _, spec in row}
        methods.update({spec.versus.key: spec.versus.text for _, row in source.rows for _, spec in row if spec.versus})
        models = dict.fromkeys(spec.model for _, row in source.rows for _, spec in row)
        named = ", ".join(m if model_name(m) == m else f"{m} = {model_name(m)}" for m in models)
        out.footnotes = [f"Published setup: {source.setup}. Stand-ins: {source.stand_ins}; models: {named}.",
                         "Methods: " + "; ".join(f"{k} = {v}" for k, v in methods.items()) + "."]
        if used:
            out.footnotes.append("Measured on: " + "; ".join(
                f"{gpu} (#{', #'.join(map(str, sorted(ids)))})" for gpu, ids in sorted(used.items())) + ".")
        if flagged:
            out.footnotes.append("*: peft can't apply dropout to fused MoE expert weights (bench refuses the cell as "
                                 "configured); predicted with method.dropout=0.")
        out.footnotes += [f"Not predicted ({', '.join(cells)}): {e}" for e, cells in errors.items()]
        out.footnotes += [f"Estimator's note ({', '.join(cells)}): {n}" for n, cells in said.items()]
        out.footnotes += [n[0].upper() + n[1:] + "." for n in notes]
        return out


def build(records: list[Rec], estimator: Estimator | None = None) -> Block | None:
    """The block, or None when no GPU record matches any cell of the published tables."""
    try:
        config = load_tables()
    except SourceTablesError as exc:
        raise ReportInputError(str(exc)) from None
    rep = Replicator(config, records, estimator or predict_many)
    if not any(rep.record(spec) is not None for _, _, _, spec in rep.cells()):
        return None
    preds = rep.estimator(rep.to_predict())
    peak_sources = sorted({PEAK_SOURCES.get(r["peak_source"], r["peak_source"] or "unknown")
                           for r in rep.found.values() if r is not None and r.ok})
    intro = [f"The tables the published comparisons print, with bench's figure beside each published one. Every bench "
             f"cell is run (or predicted) at one stand-in setting: {config.standin_text} ("
             + " ".join(config.standin) + "), the setting of results/gpu-h100; each table says what stands in for "
             "what its source leaves open. A published figure comes from other hardware, software and settings: "
             "the pair shows how far apart they are, not which is right."]
    notes = ["Measured peak memory: " + "; ".join(peak_sources) + "." if peak_sources else "",
             "est. = bench.estimate's prediction on the meta device for a CUDA GPU at the stand-in setting (peak "
             "memory; the trainable share is the exact count of the model bench would build). Its peaks are within "
             "±5% of the NVML peak on all 16 H100 records (leave-one-model-size-out: max 4.6%; "
             "bench/estimate/README.md), which reach 13B, 16-bit and 4-bit bases and dense models only: an 8-bit "
             "base, larger or MoE models are predicted without a measurement to check them. Speed is never "
             "predicted, so an unmeasured speed cell reads 'not measured'. The speed column of a summary table "
             "is steps/s relative to the named method on the same model (ratio \u00b1 95% interval; 'n.s.' = "
             "within noise)."]
    return Block("source-tables", TITLE, intro, [rep.table(t, preds) for t in config.tables], [n for n in notes if n])


_PREDICTED: dict[tuple[str, ...], dict[str, Any]] = {}  # this process's predictions, by overrides


def _predict(cfg, key: tuple[str, ...]) -> dict[str, Any]:
    from bench.estimate.predict import predict_cell_analytic

    pred = predict_cell_analytic(cfg, device="cuda")
    if pred is None:  # a meta build would import torch into the report: the cell says how to predict it
        return {"error": "not predicted in the report (an architecture or method bench.estimate.analytic does not "
                         "cover; predict it with: python -m bench.estimate " + " ".join(key) + ")"}
    params = pred.inventory.summary()
    return {"peak_bytes": int(pred.peak_bytes), "total": int(params["total"]), "trainable": int(params["trainable"]),
            "notes": [str(n) for n in pred.notes]}


def predict_many(wanted: list[tuple[str, ...]]) -> dict[tuple[str, ...], dict[str, Any]]:
    """bench.estimate's prediction of each override list (a CUDA target): peak bytes, parameters, trainable;
    {"error": line} where it refuses the cell or only a meta build could predict it (the report imports no
    torch); "flag" where it took method.dropout=0 (fused MoE experts). Analytic predictions take milliseconds,
    so they are made at every build (memoised in this process), never read from a cache that could be stale."""
    from bench.config import ConfigError
    from bench.estimate import sweep

    missing = [k for k in wanted if k not in _PREDICTED]
    try:  # one Hydra compose per distinct method x model; a cell that can't compose is retried alone below
        # task=synthetic is conf/config.yaml's default: left out, the grid is method= / model= choices only,
        # which sweep.compose_many composes once per method and once per model
        cfgs = sweep.compose_many([[o for o in k if o != "task=synthetic"] for k in missing]) if missing else []
    except ConfigError:
        cfgs = [None] * len(missing)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for key, cfg in zip(missing, cfgs):
            try:
                try:
                    _PREDICTED[key] = _predict(cfg if cfg is not None else sweep.compose(list(key)), key)
                except ConfigError as exc:
                    if "dropout must be 0" not in str(exc):
                        raise
                    retry = (*key, "method.dropout=0")
                    _PREDICTED[key] = {**_predict(sweep.compose(list(retry)), retry), "flag": True}
            except Exception as exc:  # noqa: BLE001  a cell the estimator refuses or fails on is a footnote
                _PREDICTED[key] = {"error": (str(exc).splitlines() or [type(exc).__name__])[0]}
    return {k: _PREDICTED[k] for k in wanted}

