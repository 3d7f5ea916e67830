"""GaLore's projection refresh in the report: the refresh cost read from a record's step times, its speed with
the refresh amortised, and the report ranking GaLore by that, not by its speed between refreshes."""
import copy
import json
from pathlib import Path

import pytest

from bench.report import tables
from bench.report.groups import build_groups
from bench.report.load import load_records
from bench.report.refresh import refresh_figures
from bench.report.sections import findings

GPU_DIR = Path(__file__).resolve().parent / "fixtures" / "report" / "gpu-lab"
LORA = json.loads((GPU_DIR / "lora-llama2-7b-synthetic-r16.json").read_text())  # 2.0 steps/s


def galore(step_times, warmup_times=None, warmup=2, gap=20, with_warmup=None):
    rec = copy.deepcopy(LORA)
    rec["cell"].update(method="galore", bits=16)
    rec["config"]["method"] = {"name": "galore", "rank": 16, "update_proj_gap": gap, "optimizer": "adamw"}
    rec["params"] = {**rec.get("params", {}), "trainable_pct": 100.0}
    rec["timing"].update(warmup_steps=warmup, measured_steps=len(step_times), step_times_s=step_times,
                         steps_per_s=len(step_times) / sum(step_times), train_seconds=sum(step_times))
    if warmup_times is not None:
        rec["timing"]["warmup_step_times_s"] = warmup_times
    if with_warmup is not None:
        rec["timing"]["train_seconds_with_warmup"] = with_warmup
    return rec


def test_refresh_from_the_warmup_step_times():
    out = refresh_figures(galore([0.25] * 10, warmup_times=[5.0, 0.25]))
    assert out["refresh_basis"] == "per-step" and out["refresh_every_steps"] == 20
    assert out["refresh_seconds"] == pytest.approx(4.75)
    assert out["steps_per_s_amortised"] == pytest.approx(20 / (20 * 0.25 + 4.75))


def test_refresh_steps_inside_the_measured_window_are_left_out_of_the_steady_step():
    # gap 4, warm-up 2: loop steps 0, 4, 8 refresh; the measured window holds loop steps 2..11
    measured = [1.0 if (2 + i) % 4 == 0 else 0.2 for i in range(10)]
    out = refresh_figures(galore(measured, warmup_times=[1.0, 0.2], gap=4))
    assert out["refresh_seconds"] == pytest.approx(0.8)
    assert out["steps_per_s_amortised"] == pytest.approx(4 / (4 * 0.2 + 0.8))


def test_older_records_fall_back_to_the_warmup_total():
    out = refresh_figures(galore([0.25] * 10, with_warmup=2.5 + 3.0))  # 3.0 s of warm-up for 2 steps
    assert out["refresh_basis"] == "warm-up total"
    assert out["refresh_seconds"] == pytest.approx(3.0 - 2 * 0.25)


def test_no_refresh_figures_for_other_methods_or_without_step_times():
    assert refresh_figures(LORA)["steps_per_s_amortised"] is None
    bare = galore([0.25] * 10, warmup_times=[5.0, 0.25])
    bare["timing"]["step_times_s"] = []  # trackers off
    assert refresh_figures(bare)["refresh_seconds"] is None


def test_report_ranks_galore_by_its_amortised_speed(tmp_path):
    # between refreshes GaLore (4.0 steps/s) beats LoRA (2.0); with a 20 s refresh every 20 steps it does not
    (tmp_path / "lora.json").write_text(json.dumps(LORA))
    (tmp_path / "galore.json").write_text(json.dumps(galore([0.25] * 10, warmup_times=[20.25, 0.25])))
    group = build_groups(load_records([tmp_path], warn=lambda m: None))[0]
    rec = next(r for r in group.records if r["method"] == "galore")
    assert rec["steps_per_s_amortised"] == pytest.approx(20 / 25)
    speed = {row[0].text: [c.text for c in row[1:]] for row in tables.speed_matrix(group).rows}
    galore_cell = next(t for t in speed["llama2-7b"] if t.startswith("4.00"))
    assert galore_cell == "4.00 (vs LoRA +100%); refresh amortised: 0.800 (\u221260%)"
    refresh = tables.refresh_table(group)
    assert [c.text for c in refresh.rows[0]][2:8] == ["20", "20.0", "per-step", "4.00", "0.800", "\u221260%"]
    fastest = [text for _, items in findings(group) for text, _ in items if text.startswith("fastest")]
    assert fastest == ["fastest: lora, 2.00 steps/s"]


def test_no_refresh_table_without_galore(tmp_path):
    (tmp_path / "lora.json").write_text(json.dumps(LORA))
    group = build_groups(load_records([tmp_path], warn=lambda m: None))[0]
    assert tables.refresh_table(group) is None
    assert "GaLore" not in tables.speed_matrix(group).note
