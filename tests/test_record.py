"""Record schema: hashing, atomic writes, round trip, rejection of foreign files."""
import json
import math

import pytest

from bench.record import (SCHEMA_VERSION, config_hash, read_record, record_path, write_record)
from bench.trackers.timing import summarize


def _record(**extra):
    rec = {"schema_version": SCHEMA_VERSION, "status": "success", "error": None, "cell": {"method": "lora"},
           "config": {"a": 1}, "losses": [1.5, 1.25], "timing": None}
    rec.update(extra)
    return rec


def test_round_trip_and_no_temp_files_left(tmp_path):
    path = write_record(_record(), tmp_path / "exp" / "cell.json")
    assert read_record(path) == _record()
    assert [p.name for p in (tmp_path / "exp").iterdir()] == ["cell.json"]


def test_non_finite_numbers_become_null(tmp_path):
    path = write_record(_record(losses=[1.0, math.nan, math.inf]), tmp_path / "r.json")
    assert json.loads(path.read_text())["losses"] == [1.0, None, None]


def test_failed_write_leaves_previous_record_intact(tmp_path):
    path = write_record(_record(), tmp_path / "r.json")
    with pytest.raises(TypeError):
        write_record(_record(config={"bad": object.__new__(type("X", (), {"__str__": None}))}), path)
    assert read_record(path)["status"] == "success"
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


@pytest.mark.parametrize("content,needle", [("{not json", "not a readable JSON"),
                                            ('{"schema_version": 0, "status": "success"}', "schema_version 0"),
                                            ('{"schema_version": 1, "status": "weird"}', "unknown status")])
def test_bad_files_are_refused_with_their_name(tmp_path, content, needle):
    path = tmp_path / "broken.json"
    path.write_text(content)
    with pytest.raises(ValueError) as err:
        read_record(path)
    assert "broken.json" in str(err.value) and needle in str(err.value)


def test_config_hash_ignores_bookkeeping_but_not_settings():
    base = {"method": {"rank": 8}, "experiment_name": "a", "results_dir": "x"}
    assert config_hash(base) == config_hash({**base, "experiment_name": "b", "results_dir": "y"})
    assert config_hash(base) != config_hash({**base, "method": {"rank": 16}})


def test_record_path_names_the_cell():
    path = record_path("results", "exp", {"method": "qlora", "model": "7b", "task": "synthetic", "rank": 16},
                       "abcdef0123456789")
    assert str(path) == "results/exp/qlora-7b-synthetic-r16-abcdef0123.json"


def test_timing_rates_derive_from_step_times():
    t = summarize([0.5, 0.25, 0.25], warmup_steps=2, samples_per_step=4, tokens_per_step=512)
    assert t["steps_per_s"] == pytest.approx(3 / 1.0)
    assert t["samples_per_s"] == pytest.approx(12.0)
    assert t["tokens_per_s"] == pytest.approx(1536.0)
    assert t["step_p50_s"] == pytest.approx(0.25)
    assert t["measured_steps"] == 3 and t["train_seconds"] == pytest.approx(1.0)
    bare = summarize([], 2, 4, 512, measured_steps=10, measured_seconds=2.0)
    assert bare["steps_per_s"] == pytest.approx(5.0) and bare["step_p50_s"] is None
