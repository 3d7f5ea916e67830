"""The claims registry (bench/claims/claims.yaml), its verdict rule and the report block 'Published claims vs
this machine': the rule on hand-made intervals, each verdict path on hand-made records (measured, estimated,
unreached target, nothing at all), bad registry entries named by claim id and key, and every claim judged on
the committed H100 records."""
from pathlib import Path

import pytest

from bench.claims import estimates
from bench.claims.measured import outcome
from bench.claims.registry import ClaimsError, load_claims, parse_registry
from bench.claims.verdict import VERDICTS, judge
from bench.report.load import Rec, estimates as rec_estimates, flatten, load_records
from bench.stats import Estimate

ROOT = Path(__file__).resolve().parent.parent
CLAIMS = {c.id: c for c in load_claims()}


def _stat(mean, half, n=3):
    return {"n": n, "mean": mean, "stdev": 0.0, "ci95": [mean - half, mean + half]}


def make(rid, method, model, *, peak=None, steps=None, quality=None, half=0.0, task=None, pct=0.59,
         weights="bfloat16", bits=None, to_target=None, total=6.7e9, experiment="study", created="2026-01-01"):
    """A record as the report loads it: 3 repeats, the stated means with +-half as their 95% interval."""
    stats, runs = {}, [{"status": "success", "seed": s} for s in range(3)]
    if peak is not None:
        stats["peak_bytes"] = _stat(peak * 1e9, half * 1e9)
    if steps is not None:
        stats["steps_per_s"] = _stat(steps, half)
    if quality is not None:
        stats["quality_main"] = _stat(quality / 100, half / 100)
    for run, s in zip(runs, to_target or []):
        run["steps_to_target"] = s
    raw = {"status": "success", "created_at": created, "experiment": experiment,
           "cell": {"method": method, "model": model, "task": task or "synthetic", "rank": 16,
                    "bits": bits or (4 if method == "qlora" else 16)},
           "setup": {"device": "cpu" if task else "cuda", "batch_size": 4, "seq_len": 512, "weights_dtype": weights},
           "memory": {"device": "cuda", "peak_bytes": int((peak or 1) * 1e9)},
           "params": {"trainable_pct": pct, "total": int(total), "trainable": int(total * pct / 100)},
           "timing": {"steps_per_s": steps or 1.0},
           "quality": {"task": task, "main": (quality or 0) / 100, "main_metric": "accuracy",
                       "target": 0.75 if to_target else None} if task else None,
           "repeats": {"n": 3, "succeeded": 3, "runs": runs, "stats": stats}}
    est = rec_estimates(raw)
    rec = Rec(Path(f"r{rid}.json"), raw, flatten(raw, Path(f"r{rid}.json"), est), est)
    rec.flat["id"] = rid
    return rec


@pytest.mark.parametrize("interval, rng, verdict", [
    ((0.74, 0.76), (0.714, 0.787), "holds"),
    ((0.60, 0.65), (0.714, 0.787), "refuted"),       # wholly below
    ((0.80, 0.90), (0.714, 0.787), "refuted"),       # wholly above
    ((0.70, 0.76), (0.714, 0.787), "not established"),  # straddles lo
    ((17.0, 17.0), (None, 24.0), "holds"),           # exact value, open lower end
    ((61.0, 70.0), (60.0, None), "holds"),
    ((55.0, 65.0), (60.0, None), "not established"),
])
def test_verdict_rule_on_intervals(interval, rng, verdict):
    assert judge(Estimate(sum(interval) / 2, *interval, n=3), *rng) == verdict


def test_no_interval_is_not_established_and_nothing_is_not_measured():
    assert judge(Estimate(0.75), 0.7, 0.8) == "not established"
    assert judge(None, 0.7, 0.8) == "not measured"


def test_registry_carries_every_source_and_the_whole_vram_table():
    sources = {c.source["key"] for c in CLAIMS.values()}
    assert sources == {"deep-dive", "efficient", "head-to-head", "chapter5", "llamafactory"}
    table = [k for k in CLAIMS if k.startswith("vram-")]
    assert len(table) == 6 * 7  # 6 method rows x 7 sizes
    assert CLAIMS["vram-qlora4-70b"].hi == 48 and CLAIMS["vram-qlora2-8x7b"].unsupported
    assert not CLAIMS["vram-qlora2-7b"].unsupported  # the 2-bit row: an HQQ base, measurable (not estimated)
    assert CLAIMS["vram-qlora4-8x7b"].unsupported and not CLAIMS["vram-lora-8x7b"].unsupported
    for key in ("hh-qlora-more-steps", "hh-quality-mnli", "ch5-llama3-8b-trainable-pct", "lf-qlora-memory",
                "dd-qlora-33b-fits-48gb", "dd-torch-compile", "ef-full-7b-60gb"):
        assert key in CLAIMS
    assert all(c.quote and c.measures for c in CLAIMS.values())


@pytest.mark.parametrize("mutate, named", [
    (lambda e: e.pop("quote"), "claim x: quote"),
    (lambda e: e.update(measures="vibes"), "claim x: measures"),
    (lambda e: e.update(cells=[e["cells"][0]]), "claim x: cells"),
    (lambda e: e["claimed"].update(range=[2, 1]), "claim x: claimed.range"),
    (lambda e: e.update(source="blog"), "claim x: source"),
    (lambda e: e.update(colour="red"), "claim x: colour"),
])
def test_bad_registry_entry_names_claim_and_key(mutate, named):
    entry = {"id": "x", "source": "s", "quote": "q", "measures": "speed_ratio",
             "cells": [{"method": "qlora", "model": "m"}, {"method": "lora", "model": "m"}],
             "claimed": {"value": "0.75x", "range": [0.7, 0.8], "unit": "x"}}
    mutate(entry)
    with pytest.raises(ClaimsError, match=named):
        parse_registry({"sources": {"s": {"title": "t"}}, "claims": [entry]})


@pytest.mark.parametrize("qlora, half, verdict", [(1.8, 0.02, "holds"), (1.2, 0.02, "refuted"),
                                                  (1.8, 0.4, "not established")])
def test_speed_ratio_claim_on_hand_made_records(qlora, half, verdict):
    recs = [make(1, "qlora", "llama2-7b", steps=qlora, half=half), make(2, "lora", "llama2-7b", steps=2.4, half=0.02)]
    out = outcome(recs, CLAIMS["hh-speed-7b"])
    assert out.verdict == verdict and out.refs == [1, 2] and not out.estimated


@pytest.mark.parametrize("qlora, half, verdict", [(85.0, 0.3, "holds"), (80.0, 0.5, "refuted"),
                                                  (84.5, 2.0, "not established")])
def test_quality_claim_is_the_equivalence_rule(qlora, half, verdict):
    recs = [make(1, "qlora", "minilm", quality=qlora, half=half, task="sst2"),
            make(2, "lora", "minilm", quality=85.2, half=0.3, task="sst2")]
    assert outcome(recs, CLAIMS["hh-quality-sst2"]).verdict == verdict


def test_steps_to_target_over_seeds_and_an_unreached_seed():
    lora = make(2, "lora", "minilm", quality=85, half=0.3, task="sst2", to_target=[20, 20, 20])
    holds = outcome([make(1, "qlora", "minilm", quality=85, half=0.3, task="sst2", to_target=[25, 25, 25]), lora],
                    CLAIMS["hh-qlora-more-steps"])
    assert holds.verdict == "holds" and holds.value.value == pytest.approx(1.25)
    slow = outcome([make(1, "qlora", "minilm", quality=85, half=0.3, task="sst2", to_target=[40, 40, 48]), lora],
                   CLAIMS["hh-qlora-more-steps"])
    assert slow.verdict == "refuted" and slow.value.lo > 1.3
    unreached = outcome([make(1, "qlora", "minilm", quality=85, half=0.3, task="sst2", to_target=[32, None, 48]),
                         lora], CLAIMS["hh-qlora-more-steps"])
    assert unreached.verdict == "not established" and "2 of 3 seeds" in unreached.note


def test_a_task_comparison_takes_both_sides_from_one_study_and_needs_a_target():
    old = [make(1, "qlora", "minilm", quality=70.0, half=0.3, task="sst2", experiment="quick"),
           make(2, "lora", "minilm", quality=85.2, half=0.3, task="sst2", experiment="quick")]
    new_lora = make(3, "lora", "minilm", quality=85.0, half=0.3, task="sst2", created="2026-02-01")
    # the newer study has no QLoRA cell: both sides come from the older one, not a mix of budgets
    assert outcome(old + [new_lora], CLAIMS["hh-quality-sst2"]).refs == [1, 2]
    new_qlora = make(4, "qlora", "minilm", quality=85.1, half=0.3, task="sst2", created="2026-02-01")
    out = outcome(old + [new_lora, new_qlora], CLAIMS["hh-quality-sst2"])
    assert out.refs == [4, 3] and out.verdict == "holds"
    no_target = outcome(old, CLAIMS["hh-qlora-more-steps"])  # no task.target in the records
    assert no_target.verdict == "not measured" and no_target.command


def test_fit_claims_measured_first_then_estimated_then_not_measured(monkeypatch):
    claim = CLAIMS["dd-lora-7b-fits-24gb"]
    assert outcome([make(1, "lora", "llama2-7b", peak=17.0)], claim).verdict == "holds"
    assert outcome([make(1, "lora", "llama2-7b", peak=25.0)], claim).verdict == "refuted"
    monkeypatch.setattr(estimates, "load", lambda: {"lora llama2-7b": {"peak_bytes": 23e9}})
    est = outcome([], claim)  # 23 GB +-5% straddles 24 GB
    assert est.estimated and est.verdict == "not established"
    monkeypatch.setattr(estimates, "load", lambda: {})
    none = outcome([], claim)
    assert none.verdict == "not measured"
    assert "python -m bench.run" in none.command and "model=llama2-7b" in none.command


def test_full_precision_and_qlora_bits_pick_the_right_record():
    mixed = make(1, "full", "llama3.2-3b", peak=66.0, weights="float32")
    pure = make(2, "full", "llama3.2-3b", peak=36.4)
    q8 = make(4, "qlora", "llama3.2-3b", peak=8.6, bits=8)
    out = outcome([pure, mixed, q8, make(3, "qlora", "llama3.2-3b", peak=16.5)], CLAIMS["hh-qlora-memory-75"])
    assert out.refs == [3, 1] and out.value.value == pytest.approx(0.25) and out.verdict == "holds"


def test_stored_estimates_cover_every_estimable_cell():
    stored = estimates.load()
    if not stored:
        pytest.skip("bench/claims/estimates.yaml not built (python -m bench.claims.estimates)")
    cells = {estimates.cell_key(c) for claim in CLAIMS.values() if not claim.unsupported
             for c in claim.cells if not c.get("task") and estimates.modelled(c)}
    assert not sorted(cells - stored.keys())


def test_block_on_the_committed_h100_records_judges_every_claim():
    from bench.report.blocks import claims as block

    records = load_records([ROOT / "results" / "gpu-h100"], warn=lambda m: None)
    for i, rec in enumerate(records):
        rec.flat["id"] = i + 1
    built = block.build(records)
    rows = [row for table in built.tables for row in table.rows]
    assert built.title == "Published claims vs this machine" and len(rows) == len(CLAIMS)
    assert {row[0].text for row in rows} == set(CLAIMS)
    assert all(row[-1].text.split(" (")[0].split(":")[0] in VERDICTS for row in rows)
    by_id = {row[0].text: row for row in rows}
    assert by_id["ch5-llama3-8b-trainable-pct"][-1].text == "holds"  # 0.5196% to the 4th decimal
    assert by_id["dd-torch-compile"][-1].text.startswith("not measured")  # the eager side is measured, not compiled
    assert "train.compile=true,false" in by_id["dd-torch-compile"][-1].text


def test_a_bad_registry_is_a_report_input_error(monkeypatch):
    from bench.report.blocks import claims as block
    from bench.report.load import ReportInputError

    def bad():
        raise ClaimsError("claims.yaml: claim x: measures must be one of ...")

    monkeypatch.setattr(block, "load_claims", bad)
    with pytest.raises(ReportInputError, match="claim x: measures"):
        block.build([])


def test_the_2bit_row_is_measurable_by_hqq_and_says_it_is_not_estimated():
    claim = CLAIMS["vram-qlora2-7b"]
    got = outcome([], claim)
    assert got.verdict == "not measured" and "does not model an HQQ base" in got.note
    assert got.command.endswith("method=hqq model=llama2-7b method.base_bits=2 repeats=3")
