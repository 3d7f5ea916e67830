"""Steps to the quality target over seeds, and the mean curve's band: read from each repeat's own curve
(repeats.runs[i].quality_curve), with the ratio to LoRA and its verdict. Hand-made records, no training."""
import copy
import json
from pathlib import Path

import pytest

from bench.report import convergence
from bench.report.groups import build_groups
from bench.report.load import load_records

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "report" / "gpu-lab" / "lora-llama2-7b-synthetic-r16.json"


def record(method: str, curves: list[list[tuple[int, float]]], target: float = 0.8) -> dict:
    rec = copy.deepcopy(json.loads(FIXTURE.read_text()))
    rec["cell"].update(method=method, task="sst2", bits=4 if method == "qlora" else 16)
    rec["config"]["method"]["name"] = method
    rec["config"]["task"]["name"] = "sst2"
    rec["config_hash"] = f"{method}{len(curves)}"
    rec["quality"] = {"task": "sst2", "main_metric": "accuracy", "higher_is_better": True, "main": curves[0][-1][1],
                      "target": target, "curve": [{"step": s, "main": v} for s, v in curves[0]]}
    rec["repeats"] = {"n": len(curves), "succeeded": len(curves), "stats": {}, "representative": "test",
                      "runs": [{"status": "success", "seed": i, "quality_main": c[-1][1],
                                "quality_curve": [[s, v] for s, v in c]} for i, c in enumerate(curves)]}
    return rec


def group_of(tmp_path, *records):
    for i, rec in enumerate(records):
        (tmp_path / f"r{i}.json").write_text(json.dumps(rec))
    (group,) = build_groups(load_records([tmp_path]))
    return group


def test_steps_to_target_per_seed_and_ratio_to_lora(tmp_path):
    lora = record("lora", [[(0, .5), (10, .7), (20, .82)], [(0, .5), (10, .81), (20, .85)],
                           [(0, .5), (10, .79), (20, .9)]])
    qlora = record("qlora", [[(0, .5), (10, .6), (20, .7), (30, .8)], [(0, .5), (10, .7), (20, .8), (30, .8)],
                             [(0, .5), (10, .6), (20, .7), (30, .81)]])
    group = group_of(tmp_path, lora, qlora)
    by_method = {r["method"]: r for r in group.records}
    st = convergence.steps_to_target(by_method["lora"])
    assert st.steps == [20, 10, 20] and st.estimate.value == pytest.approx(50 / 3) and st.estimate.has_interval
    st_q = convergence.steps_to_target(by_method["qlora"])
    assert st_q.steps == [30, 20, 30]
    table = convergence.table(group)
    rows = {row[2].text.split()[0]: row for row in table.rows}
    assert rows["lora"][5].text == "(ref.)"
    assert rows["qlora"][5].text.startswith("\u00d71.60")  # 80/3 over 50/3
    assert "n.s." in rows["qlora"][5].text  # three seeds this spread cannot establish it


def test_a_seed_that_never_reaches_the_target_leaves_no_mean(tmp_path):
    lora = record("lora", [[(0, .5), (10, .85)], [(0, .5), (10, .9)]])
    slow = record("qlora", [[(0, .5), (10, .85)], [(0, .5), (10, .7)]])
    group = group_of(tmp_path, lora, slow)
    st = convergence.steps_to_target(next(r for r in group.records if r["method"] == "qlora"))
    assert st.steps == [10, None] and st.estimate is None and st.reached == 1
    row = next(row for row in convergence.table(group).rows if row[2].text.startswith("qlora"))
    assert row[4].text.startswith("1 of 2 seeds reached") and row[5].text.startswith("not established")


def test_band_is_the_mean_over_seeds_at_steps_all_of_them_reached(tmp_path):
    rec = record("lora", [[(0, .5), (10, .7), (20, .8)], [(0, .5), (10, .9)]])
    (r,) = group_of(tmp_path, rec).records
    points = convergence.band(r)
    assert [s for s, _ in points] == [0, 10]  # step 20: one seed only
    assert points[1][1].value == pytest.approx(0.8) and points[1][1].lo < 0.8 < points[1][1].hi


def test_no_target_no_table(tmp_path):
    rec = record("lora", [[(0, .5), (10, .7)]])
    del rec["quality"]["target"]
    group = group_of(tmp_path, rec)
    assert convergence.steps_to_target(group.records[0]) is None and convergence.table(group) is None
