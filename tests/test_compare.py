"""bench.compare, the regression gate: verdicts on hand-written records (tests/fixtures/compare/), exit
status, bad input, the hardware check, the history store and trends. JSON only: no training here."""
import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

from bench.compare import history, trend
from bench.compare.cli import main
from bench.compare.load import hardware_id, load_side, match_key
from bench.compare.verdict import DEFAULT_TOLERANCE, METRICS, Measure, judge

FIXTURES = Path(__file__).parent / "fixtures" / "compare"
BASELINE = FIXTURES / "baseline"
LORA, QLORA = "lora-minilm-sst2.json", "qlora-tiny-synthetic.json"


def load(name: str) -> dict:
    return json.loads((BASELINE / name).read_text())


def variant(record: dict, steps: float = 1.0, memory: float = 1.0, quality: float = 0.0,
            stdev: float | None = None, **top) -> dict:
    """A copy with steps/s and peak memory scaled, quality shifted (fraction), repeats' stdev replaced."""
    out = copy.deepcopy(record)
    out["timing"]["steps_per_s"] *= steps
    out["memory"]["peak_bytes"] = int(out["memory"]["peak_bytes"] * memory)
    if out.get("quality"):
        out["quality"]["main"] += quality
    for name, factor in (("steps_per_s", steps), ("peak_bytes", memory)):
        stats = ((out.get("repeats") or {}).get("stats") or {}).get(name)
        if stats:
            stats["mean"] *= factor
            stats["ci95"] = [v * factor for v in stats["ci95"]]
            if stdev is not None and name == "steps_per_s":  # the repeats' t interval with the new spread
                stats["stdev"] = stdev
                half = 4.303 * stdev / 3 ** 0.5
                stats["ci95"] = [stats["mean"] - half, stats["mean"] + half]
    out.update(top)
    return out


def side(tmp_path: Path, name: str, *records: dict) -> str:
    folder = tmp_path / name
    folder.mkdir()
    for i, record in enumerate(records):
        (folder / f"{i}.json").write_text(json.dumps(record))
    return str(folder)


def gate(*argv: str, capsys) -> tuple[int, str, str]:
    code = main([*argv, "--summary", os.devnull])
    out = capsys.readouterr()
    return code, out.out, out.err


def verdict_of(markdown: str, cell: str) -> str:
    row = next(line for line in markdown.splitlines() if f"| {cell} |" in line)
    return row.split("|")[1].strip()


def test_identical_records_are_no_regression(capsys):
    code, out, err = gate(str(BASELINE), str(BASELINE), capsys=capsys)
    assert code == 0, err
    assert out.startswith("## bench.compare: no regression (2 ok)")
    assert verdict_of(out, "lora/minilm/sst2 r8") == "ok" and verdict_of(out, "qlora/tiny/synthetic r64 4-bit") == "ok"


@pytest.mark.parametrize("change,metric", [
    ({"steps": 0.9}, "steps/s"),
    ({"memory": 1.1}, "peak memory"),
    ({"quality": -0.02}, "quality"),
])
def test_ten_percent_slower_more_memory_or_two_points_less_accuracy_is_flagged(tmp_path, capsys, change, metric):
    cand = side(tmp_path, "cand", variant(load(LORA), **change), load(QLORA))
    code, out, _ = gate(str(BASELINE), cand, capsys=capsys)
    assert code == 1
    assert out.startswith("## bench.compare: REGRESSION (1 regressed, 1 ok)")
    assert verdict_of(out, "lora/minilm/sst2 r8") == "**regressed**"
    header = next(line for line in out.splitlines() if line.startswith("| verdict"))
    column = [c.strip() for c in header.split("|")].index(metric)
    row = next(line for line in out.splitlines() if "| lora/minilm/sst2 r8 |" in line)
    assert row.split("|")[column].strip().endswith("**regressed**"), row


def test_improvement_is_not_a_failure(tmp_path, capsys):
    cand = side(tmp_path, "cand", variant(load(LORA), steps=1.2, memory=0.8, quality=0.03), load(QLORA))
    code, out, _ = gate(str(BASELINE), cand, capsys=capsys)
    assert code == 0 and verdict_of(out, "lora/minilm/sst2 r8") == "improved"


def test_a_change_within_the_repeats_noise_is_not_flagged_but_the_same_change_with_tight_repeats_is(tmp_path, capsys):
    # baseline: 3 repeats, steps/s 4.0 +- 0.2 (95% CI +-12%); candidate 10% slower with the same spread
    noisy = side(tmp_path, "noisy", load(LORA), variant(load(QLORA), steps=0.9))
    code, out, _ = gate(str(BASELINE), noisy, capsys=capsys)
    assert code == 0 and verdict_of(out, "qlora/tiny/synthetic r64 4-bit") == "ok"
    assert "limit ±24.8%" in out  # the two 95% half-widths added
    tight_base = side(tmp_path, "tight_base", load(LORA), variant(load(QLORA), stdev=0.01))
    tight = side(tmp_path, "tight", load(LORA), variant(load(QLORA), steps=0.9, stdev=0.01))
    code, out, _ = gate(tight_base, tight, capsys=capsys)
    assert code == 1 and verdict_of(out, "qlora/tiny/synthetic r64 4-bit") == "**regressed**"


def test_small_change_within_tolerance_is_ok(tmp_path, capsys):
    cand = side(tmp_path, "cand", variant(load(LORA), steps=0.97, memory=1.03, quality=-0.005), load(QLORA))
    assert gate(str(BASELINE), cand, capsys=capsys)[0] == 0


def test_noise_rule_single_rerun_against_repeated_baseline_uses_the_prediction_interval():
    steps = next(m for m in METRICS if m.name == "steps_per_s")
    base = Measure(4.0, 0.2, 3)
    j = judge(steps, base, Measure(3.6), DEFAULT_TOLERANCE["steps_per_s"])
    assert j.verdict == "ok"
    assert j.noise == pytest.approx(4.303 * 0.2 * (1 + 1 / 3) ** 0.5 / 4.0, rel=1e-6)
    assert judge(steps, base, Measure(2.0), 0.05).verdict == "regressed"


def test_different_gpu_is_refused_unless_forced(tmp_path, capsys):
    other = [variant(load(n)) for n in (LORA, QLORA)]
    for record in other:
        record["env"]["gpu"]["name"] = "NVIDIA A100-SXM4-80GB"
    cand = side(tmp_path, "a100", *other)
    code, out, err = gate(str(BASELINE), cand, capsys=capsys)
    assert code == 2 and out == ""
    assert err.strip() == ("bench.compare: error: refusing to compare across hardware: baseline measured on "
                           "nvidia-h100-80gb-hbm3, candidate on nvidia-a100-sxm4-80gb; use "
                           "results/baselines/nvidia-a100-sxm4-80gb/ (or --force)")
    code, out, _ = gate(str(BASELINE), cand, "--force", capsys=capsys)
    assert code == 0 and "forced: baseline measured on nvidia-h100-80gb-hbm3" in out


def test_status_change_missing_and_new_cells(tmp_path, capsys):
    oom = variant(load(LORA), status="oom", error={"type": "OutOfMemoryError", "message": "CUDA out of memory"})
    new = variant(load(LORA))
    new["config"]["train"]["steps"] = 100
    code, out, _ = gate(str(BASELINE), side(tmp_path, "cand", oom, new), capsys=capsys)
    assert code == 1
    assert out.startswith("## bench.compare: REGRESSION (1 regressed, 1 missing, 1 new)")
    assert "status success -> oom" in out
    cand = side(tmp_path, "cand2", load(LORA))
    assert gate(str(BASELINE), cand, capsys=capsys)[0] == 0
    assert gate(str(BASELINE), cand, "--strict", capsys=capsys)[0] == 1


def test_match_key_ignores_environment_bookkeeping_and_repeats():
    record = load(QLORA)
    other = variant(record, experiment="x", env={"gpu": None})
    other["config"].update(experiment_name="ci", results_dir="/tmp", repeats=1)
    assert match_key(other) == match_key(record)
    other["config"]["train"]["seq_len"] = 512
    assert match_key(other) != match_key(record)
    assert hardware_id(record) == "nvidia-h100-80gb-hbm3"
    cpu = {"env": {"gpu": None, "cpu": {"model": "AMD EPYC", "cores": 2, "affinity": 2}}}
    assert hardware_id(cpu) == "cpu-amd-epyc-2c"


@pytest.mark.parametrize("argv,needle", [
    (["missing-folder", str(BASELINE)], "missing-folder: no such file or folder"),
    ([str(FIXTURES / "bad" / "truncated.json"), str(BASELINE)], "truncated.json: not a readable JSON record"),
    ([str(FIXTURES / "bad" / "not-a-record.json"), str(BASELINE)], "not-a-record.json: schema_version None"),
    ([str(BASELINE)], "expected BASELINE CANDIDATE, got 1 path(s)"),
    ([str(BASELINE), str(BASELINE), "--tol-speed", "-1"], "must be >= 0"),
    ([str(BASELINE), str(BASELINE), "--bogus"], "unrecognized arguments: --bogus"),
])
def test_bad_input_is_one_line_naming_the_path_and_exit_2(tmp_path, capsys, monkeypatch, argv, needle):
    monkeypatch.chdir(tmp_path)
    code, out, err = gate(*argv, capsys=capsys)
    lines = err.strip().splitlines()
    assert code == 2 and out == ""
    assert len(lines) == 1 and lines[0].startswith("bench.compare: error: ") and needle in lines[0], err


def test_empty_folder_and_real_entry_point_without_traceback_or_torch(tmp_path):
    (tmp_path / "empty").mkdir()
    code = ("import sys, runpy; sys.argv = ['bench.compare', sys.argv[1], sys.argv[2]]\n"
            "try:\n    runpy.run_module('bench.compare', run_name='__main__')\n"
            "except SystemExit as e:\n    assert 'torch' not in sys.modules; raise")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "empty"), str(BASELINE)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == f"bench.compare: error: {tmp_path / 'empty'}: no record files (*.json) in this folder\n"
    proc = subprocess.run([sys.executable, "-c", code, str(BASELINE), str(BASELINE)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr and "no regression" in proc.stdout


def test_summary_goes_to_the_file_and_to_github_step_summary(tmp_path, capsys, monkeypatch):
    target = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(target))
    assert main([str(BASELINE), str(BASELINE)]) == 0
    assert main([str(BASELINE), str(BASELINE)]) == 0
    text = target.read_text()
    assert text.count("## bench.compare: no regression") == 2  # appended, as GitHub expects
    own = tmp_path / "own.md"
    assert main([str(BASELINE), str(BASELINE), "--summary", str(own)]) == 0
    assert own.read_text().startswith("## bench.compare") and capsys.readouterr().out


def run_at(records: list[dict], sha: str, date: str, steps: float = 1.0, **changes) -> list[dict]:
    out = [variant(r, steps=steps, **changes) for r in records]
    for r in out:
        r["env"]["git"]["sha"] = sha * 40
        r["created_at"] = date
    return out


def test_history_appends_once_per_run_and_the_trend_marks_the_regression(tmp_path, capsys):
    base = [load(LORA), load(QLORA)]
    store = tmp_path / "history"
    runs = [("a", "2026-11-01", 1.0), ("b", "2026-11-02", 1.01), ("c", "2026-11-03", 0.66), ("d", "2026-11-04", 0.67)]
    for sha, date, steps in runs:
        records = run_at(base, sha, date, steps=steps)
        if sha == "c":
            for r in records:
                r["env"]["packages"]["transformers"] = "5.24.0"
        added = history.append(store, history.entries_from_records(records, run=sha))
        assert list(added.values()) == [2]
    assert list(history.append(store, history.entries_from_records(records, run="d")).values()) == [0]
    path = store / "nvidia-h100-80gb-hbm3.jsonl"
    entries = history.read(path)
    assert len(entries) == 8 and entries[0]["sha"] == "a" * 40
    assert entries[0]["metrics"]["quality_main"]["value"] == 85.0  # GLUE accuracy in points
    code = main(["--trend", str(store), "--summary", os.devnull])
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith("## bench.compare --trend") and "2 regressions marked" in out
    lora_table = out.split("### lora/minilm/sst2 r8")[1].split("###")[0]
    regressed_rows = [line for line in lora_table.splitlines() if "**regressed**" in line]
    assert len(regressed_rows) == 1 and "cccccccccc" in regressed_rows[0]
    assert "transformers 5.23.0 → 5.24.0" in regressed_rows[0]
    assert "| lora/minilm/sst2 r8 | nvidia-h100-80gb-hbm3 | steps/s | 4 | 10 | 6.7 | -33.0%, no interval |" in out
    # the qlora cell's repeats (95% CI +-12% each) widen its limit to ~25%; the 34% step is still marked
    qlora_table = out.split("### qlora/tiny/synthetic r64 4-bit")[1]
    assert "(-34.7% ±13.5%) **regressed** (limit ±24.6%)" in qlora_table


def test_history_through_the_gate_and_corrupt_history(tmp_path, capsys):
    store = tmp_path / "h"
    code = main([str(BASELINE), str(BASELINE), "--append-history", str(store), "--run", "42",
                 "--sha", "f" * 40, "--date", "2026-11-22T00:00:00+00:00", "--summary", os.devnull])
    assert code == 0
    (entry, _) = history.read(store)
    assert entry["run"] == "42" and entry["date"].startswith("2026-11-22") and entry["sha"] == "f" * 40
    bad = store / "broken.jsonl"
    bad.write_text("{oops\n")
    capsys.readouterr()
    assert main(["--trend", str(bad)]) == 2
    assert capsys.readouterr().err.startswith(f"bench.compare: error: {bad}:1: not a history entry")


def test_trend_sparkline():
    assert trend.sparkline([1.0, 2.0, 3.0]) == "▁▅█"
    assert trend.sparkline([5.0, 5.0]) == "▁▁"


def test_committed_cpu_baseline_loads_and_matches_itself(capsys):
    baselines = ROOT / "results" / "baselines"
    folders = [p for p in baselines.iterdir() if p.is_dir()]
    assert folders, "no committed baseline under results/baselines/"
    for folder in folders:
        records = load_side(folder)
        assert {hardware_id(r) for r in records} == {folder.name}
        code, out, _ = gate(str(folder), str(folder), capsys=capsys)
        assert code == 0 and "regressed" not in out


@pytest.mark.parametrize("experiment", ["ci_gpu", "ci_cpu"])
def test_ci_experiments_pass_the_command_line_checks(experiment):
    from bench.launch.cli import validate_argv

    assert len(validate_argv(["-m", f"+experiment={experiment}"])) == 4  # one config per cell the sweep launches


def test_cpu_cells_started_differently_are_flagged_as_not_comparable(tmp_path, capsys):
    def started(how: str, device: str) -> dict:
        record = load(QLORA)
        record["memory"]["device"] = device
        record["env"]["cell_start"] = how
        return record

    for device, flagged in (("cpu", True), ("cuda", False)):
        base = side(tmp_path, f"base-{device}", started("exec", device))
        cand = side(tmp_path, f"cand-{device}", started("fork", device))
        code, out, err = gate(base, cand, capsys=capsys)
        assert code == 0, err
        assert ("cell start exec vs fork: CPU peaks not comparable" in out) is flagged


@pytest.mark.parametrize("half,verdict", [(0.01, "**regressed**"), (0.12, "ok")])
def test_a_slowdown_beyond_the_tolerance_counts_only_when_established(tmp_path, capsys, half, verdict):
    """Single runs, 10% slower (beyond the 5% tolerance): with +-1% within-run intervals the ratio's interval
    excludes 1 (regressed); with +-12% it does not: shown with its ± and "n.s.", not flagged."""
    def run(steps: float) -> dict:
        record = variant(load(LORA), steps=steps)
        rate = record["timing"]["steps_per_s"]
        record["timing"]["steps_per_s_ci95"] = [rate * (1 - half), rate * (1 + half)]
        return record

    base, cand = side(tmp_path, "base", run(1.0), load(QLORA)), side(tmp_path, "cand", run(0.9), load(QLORA))
    code, out, _ = gate(base, cand, capsys=capsys)
    assert code == (1 if verdict == "**regressed**" else 0) and verdict_of(out, "lora/minilm/sst2 r8") == verdict
    row = next(line for line in out.splitlines() if "| lora/minilm/sst2 r8 |" in line)
    steps = row.split("|")[4]
    assert steps.strip().startswith("10 → 9 (-10.0% ±") and ("n.s." in steps) is (verdict == "ok")


def test_an_odd_interval_is_bad_input_naming_the_field(tmp_path, capsys):
    record = load(LORA)
    record["timing"]["steps_per_s_ci95"] = [11.0, 9.0]  # lo above hi
    code, out, err = gate(str(BASELINE), side(tmp_path, "cand", record), capsys=capsys)
    assert code == 2 and out == "" and "timing.steps_per_s_ci95 must be [lo, hi]" in err
    record["timing"]["steps_per_s_ci95"] = [9.0, None]  # unbounded above: fine
    assert gate(str(BASELINE), side(tmp_path, "ok", record), capsys=capsys)[0] == 0
