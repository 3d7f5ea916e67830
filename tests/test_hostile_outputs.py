"""Hostile input to bench.report, bench.compare and bench.estimate (issue 13, "nothing lost, nothing silently
wrong"): output paths that are input folders, their parents, foreign folders, files or unwritable places;
odd-shaped but valid records; bad flags and values. Each case asserts exit status 2, one stderr line that
names the flag, key or path, and that no file appeared, changed or vanished (the tree's names, sizes and
mtimes, folders included). Positive controls show the good invocation still works. Commands run in-process
through their main(argv); a few go through `python -m` to show the real entry point behaves the same.
bench.estimate is only called where it fails before building any model, plus one model=tiny cell."""
import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

from bench.compare.cli import main as compare_main
from bench.compare.load import hardware_id
from bench.estimate.__main__ import check_outputs
from bench.estimate.__main__ import main as estimate_main
from bench.report import outdir
from bench.report.__main__ import main as report_main

REPORT_FIX = ROOT / "tests" / "fixtures" / "report" / "cpu-box"
COMPARE_FIX = ROOT / "tests" / "fixtures" / "compare" / "baseline"
LORA, QLORA = "lora-minilm-sst2.json", "qlora-tiny-synthetic.json"  # QLORA has repeats, LORA has quality
MAINS = {"report": report_main, "compare": compare_main, "estimate": estimate_main}
OUTSIDE = ("/proc/x", "/sys/x", "/nonexistent")  # places outside tmp_path that must not appear


@pytest.fixture
def world(tmp_path, monkeypatch):
    """tmp_path as the working folder: records, a foreign folder, a file, look-alike report folders, two
    compare sides; returns the placeholders the cases use."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    exp = tmp_path / "results" / "exp"
    exp.mkdir(parents=True)
    for name in ("full-tiny-synthetic.json", "lora-tiny-synthetic-r8.json"):
        (exp / name).write_bytes((REPORT_FIX / name).read_bytes())
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("mine\n")
    (tmp_path / "file.txt").write_text("a file\n")
    (tmp_path / "empty").mkdir()
    fake = tmp_path / "lookalike"  # report.md + report.html, but not bench's
    fake.mkdir()
    (fake / "report.md").write_text("# my report\n")
    (fake / "report.html").write_text("<title>mine</title>\n")
    half = tmp_path / "half"  # bench's report.md alone is not a report folder
    half.mkdir()
    (half / "report.md").write_text("# bench report: x\n")
    for side in ("base", "cand"):
        (tmp_path / side).mkdir()
        for name in (LORA, QLORA):
            (tmp_path / side / name).write_bytes((COMPARE_FIX / name).read_bytes())
    (tmp_path / "estimate.json").write_text('{"not": "an estimate"}\n')
    (tmp_path / "table.csv").write_text("a,b\n1,2\n")
    hw = hardware_id(json.loads((COMPARE_FIX / QLORA).read_text()))
    return {"tmp": str(tmp_path), "exp": str(exp), "results": str(exp.parent), "foreign": str(tmp_path / "foreign"),
            "file": str(tmp_path / "file.txt"), "empty": str(tmp_path / "empty"), "lookalike": str(fake),
            "half": str(half), "base": str(tmp_path / "base"), "cand": str(tmp_path / "cand"),
            "cand_q": str(tmp_path / "cand" / QLORA), "cand_l": str(tmp_path / "cand" / LORA),
            "base_q": str(tmp_path / "base" / QLORA), "missing": str(tmp_path / "missing"), "hw": hw,
            "est_json": str(tmp_path / "estimate.json"), "est_csv": str(tmp_path / "table.csv")}


def snapshot(root: Path) -> dict[str, tuple]:
    out = {}
    for path in [root, *root.rglob("*")]:
        st = path.lstat()
        out[str(path.relative_to(root))] = (path.is_dir(), st.st_size, st.st_mtime_ns)
    return out


def call(tool: str, argv: list[str], capsys) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        code = MAINS[tool](argv)
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return (0 if code is None else code), out.out, out.err


def assert_refused(tool: str, argv: list[str], needles: list[str], world: dict, capsys) -> None:
    root = Path(world["tmp"])
    before = snapshot(root)
    code, out, err = call(tool, argv, capsys)
    lines = err.splitlines()
    assert code == 2, (code, err)
    assert len(lines) == 1 and lines[0].startswith(f"bench.{tool}: error: "), err
    assert "Traceback" not in err and out == ""
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert snapshot(root) == before
    assert not any(os.path.lexists(p) for p in OUTSIDE)


def fill(items: list[str], world: dict) -> list[str]:
    return [item.format(**world) for item in items]


# (tool, argv, what the line must name)
BAD_ARGS = {
    # bench.report: where the report may not go
    "report-out-is-input": ("report", ["{exp}", "--out", "{exp}"], ["--out", "{exp}", "input folder"]),
    "report-out-is-parent": ("report", ["{exp}", "--out", "{results}"], ["--out", "{results}", "input folder"]),
    "report-out-is-grandparent": ("report", ["{exp}", "--out", "{tmp}"], ["--out", "{tmp}"]),
    "report-out-is-cwd": ("report", ["results/exp", "--out", "."], ["--out .", "input folder"]),
    "report-out-dotdot": ("report", ["{exp}", "--out", "{exp}/sub/../.."], ["--out", "input folder"]),
    "report-out-second-input": ("report", ["{exp}", "{base}", "--out", "{base}"], ["--out", "{base}"]),
    "report-out-foreign": ("report", ["{exp}", "--out", "{foreign}"], ["--out", "{foreign}", "no bench report"]),
    "report-out-lookalike": ("report", ["{exp}", "--out", "{lookalike}"], ["--out", "{lookalike}"]),
    "report-out-half": ("report", ["{exp}", "--out", "{half}"], ["--out", "{half}"]),
    "report-out-file": ("report", ["{exp}", "--out", "{file}"], ["--out", "{file}"]),
    "report-out-under-file": ("report", ["{exp}", "--out", "{file}/sub"], ["--out", "{file}"]),
    "report-out-proc": ("report", ["{exp}", "--out", "/proc/x"], ["--out", "/proc/x"]),
    "report-out-sys": ("report", ["{exp}", "--out", "/sys/x"], ["--out", "/sys/x"]),
    "report-bogus-flag": ("report", ["{exp}", "--bogus"], ["--bogus"]),
    "report-out-no-value": ("report", ["{exp}", "--out"], ["--out"]),
    "report-no-dirs": ("report", [], ["dirs"]),
    "report-missing-dir": ("report", ["{missing}", "--out", "{tmp}/r"], ["{missing}"]),
    "report-empty-dir": ("report", ["{empty}", "--out", "{tmp}/r"], ["{empty}", "no records"]),
    # bench.compare: flags and values
    "compare-tol-memory-nan": ("compare", ["{base}", "{base}", "--tol-memory", "nan"], ["--tol-memory"]),
    "compare-tol-speed-inf": ("compare", ["{base}", "{base}", "--tol-speed", "inf"], ["--tol-speed"]),
    "compare-tol-quality-minus-inf": ("compare", ["{base}", "{base}", "--tol-quality", "-inf"], ["--tol-quality"]),
    "compare-tol-speed-negative": ("compare", ["{base}", "{base}", "--tol-speed", "-1"], ["--tol-speed", ">= 0"]),
    "compare-tol-memory-text": ("compare", ["{base}", "{base}", "--tol-memory", "abc"], ["--tol-memory", "abc"]),
    "compare-last-negative": ("compare", ["--trend", "{tmp}/h", "--last", "-3"], ["--last", "-3"]),
    "compare-last-zero": ("compare", ["--trend", "{tmp}/h", "--last", "0"], ["--last"]),
    "compare-last-text": ("compare", ["--trend", "{tmp}/h", "--last", "x"], ["--last"]),
    "compare-history-proc": ("compare", ["{base}", "{cand}", "--append-history", "/proc/x"],
                             ["--append-history", "/proc/x"]),
    "compare-history-file": ("compare", ["{base}", "{cand}", "--append-history", "{file}"],
                             ["--append-history", "{file}"]),
    "compare-history-under-file": ("compare", ["{base}", "{cand}", "--append-history", "{file}/h"],
                                   ["--append-history", "{file}"]),
    "compare-summary-proc": ("compare", ["{base}", "{cand}", "--summary", "/proc/x"], ["--summary", "/proc/x"]),
    "compare-summary-folder": ("compare", ["{base}", "{cand}", "--summary", "{empty}"], ["--summary", "{empty}"]),
    "compare-summary-no-folder": ("compare", ["{base}", "{cand}", "--summary", "/nonexistent/s.md"],
                                  ["--summary", "/nonexistent"]),
    "compare-bogus-flag": ("compare", ["{base}", "{cand}", "--bogus"], ["--bogus"]),
    "compare-one-path": ("compare", ["{base}"], ["BASELINE CANDIDATE"]),
    "compare-three-paths": ("compare", ["{base}", "{cand}", "{base}"], ["BASELINE CANDIDATE"]),
    "compare-missing-side": ("compare", ["{base}", "{missing}"], ["{missing}"]),
    "compare-empty-side": ("compare", ["{empty}", "{cand}"], ["{empty}"]),
    "compare-trend-missing": ("compare", ["--trend", "{missing}"], ["{missing}"]),
    "compare-trend-with-paths": ("compare", ["--trend", "{tmp}/h", "{base}"], ["--trend"]),
    "compare-hardware-id-missing": ("compare", ["--hardware-id", "{missing}"], ["{missing}"]),
    # bench.estimate: outputs and overrides, all refused before a model is built
    "estimate-json-no-folder": ("estimate", ["model=tiny", "--json", "/nonexistent/x.json"],
                                ["--json", "/nonexistent"]),
    "estimate-json-folder": ("estimate", ["model=tiny", "--json", "{empty}"], ["--json", "{empty}"]),
    "estimate-csv-proc": ("estimate", ["model=tiny", "--csv", "/proc/x"], ["--csv", "/proc/x"]),
    "estimate-csv-sys": ("estimate", ["model=tiny", "--csv", "/sys/x.csv"], ["--csv", "/sys/x.csv"]),
    "estimate-csv-under-file": ("estimate", ["model=tiny", "--csv", "{file}/x.csv"], ["--csv", "{file}"]),
    "estimate-json-foreign-file": ("estimate", ["model=tiny", "--json", "{est_json}"], ["--json", "{est_json}"]),
    "estimate-csv-foreign-file": ("estimate", ["model=tiny", "--csv", "{est_csv}"], ["--csv", "{est_csv}"]),
    "estimate-json-is-csv": ("estimate", ["model=tiny", "--json", "{tmp}/a", "--csv", "{tmp}/a"], ["--csv", "{tmp}/a"]),
    "estimate-json-no-value": ("estimate", ["model=tiny", "--json"], ["--json"]),
    "estimate-bogus-flag": ("estimate", ["model=tiny", "--bogus"], ["--bogus"]),
    "estimate-bogus-experiment": ("estimate", ["+experiment=bogus"], ["experiment", "bogus"]),
    "estimate-bogus-experiment-no-plus": ("estimate", ["experiment=bogus"], ["experiment"]),
    "estimate-experiment-bad-key": ("estimate", ["+experiment=seed_tables", "foo=1"], ["foo"]),
    "estimate-bogus-model": ("estimate", ["model=bogus"], ["model", "bogus"]),
    "estimate-bogus-method": ("estimate", ["method=bogus", "model=tiny"], ["method", "bogus"]),
    "estimate-sweep-bogus-model": ("estimate", ["model=tiny,bogus"], ["model", "bogus"]),
    "estimate-unknown-key": ("estimate", ["model=tiny", "foo=1"], ["foo"]),
    "estimate-unknown-method-key": ("estimate", ["model=tiny", "method.bogus=1"], ["bogus"]),
    "estimate-bad-value": ("estimate", ["model=tiny", "train.steps=abc"], ["train.steps"]),
    "estimate-bad-rank": ("estimate", ["model=tiny", "method.rank=0"], ["method.rank"]),
    "estimate-bogus-gpu": ("estimate", ["model=tiny", "gpu=bogus"], ["gpu", "bogus"]),
    "estimate-not-an-override": ("estimate", ["bogus"], ["bogus"]),
    "estimate-calibrate-nothing": ("estimate", ["--calibrate"], ["--calibrate"]),
    "estimate-calibrate-missing": ("estimate", ["--calibrate", "{missing}"], ["{missing}"]),
}


@pytest.mark.parametrize("case", list(BAD_ARGS))
def test_bad_argument_or_output_path_is_one_line_exit_2_nothing_written(case, world, capsys):
    tool, argv, needles = BAD_ARGS[case]
    assert_refused(tool, fill(argv, world), fill(needles, world), world, capsys)


def test_report_refuses_a_symlink_to_the_input_folder(world, capsys):
    link = Path(world["tmp"]) / "link"
    link.symlink_to(world["exp"])
    assert_refused("report", [world["exp"], "--out", str(link)], ["--out", str(link), "input folder"], world, capsys)


def test_report_default_output_folder_is_checked_too(world, capsys):
    (Path(world["tmp"]) / "reports" / "exp").mkdir(parents=True)  # reports/exp: someone else's, not empty
    (Path(world["tmp"]) / "reports" / "exp" / "keep.txt").write_text("keep\n")
    assert_refused("report", ["results/exp"], ["output folder", "reports/exp"], world, capsys)


def test_report_on_a_folder_of_odd_shaped_records_only_is_one_line(world, capsys):
    odd = Path(world["tmp"]) / "odd"
    odd.mkdir()
    record = json.loads((REPORT_FIX / "full-tiny-synthetic.json").read_text())
    (odd / "a.json").write_text(json.dumps({**record, "cell": ["full"]}))
    (odd / "b.json").write_text(json.dumps({**record, "status": "weird"}))
    assert_refused("report", [str(odd), "--out", f"{world['tmp']}/r"], [str(odd / "a.json"), "1 more"], world, capsys)


def mutate(record: dict, field: str, value) -> dict:
    out = copy.deepcopy(record)
    *parents, last = field.split(".")
    node = out
    for key in parents:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    node[last] = value
    return out


# A field compare reads, given a value of the wrong shape: each is bad input naming the file and the field.
ODD_FIELDS = [
    ("created_at", 5), ("created_at", ["2026"]), ("env", []), ("env", "cpu"), ("env.git", "abc"),
    ("env.git.sha", 5), ("env.gpu", "h100"), ("env.gpu.name", 5), ("env.gpu.count", 0), ("env.gpu.count", "2"),
    ("env.cpu", []), ("env.packages", ["torch"]), ("env.packages.torch", 2), ("memory", "big"), ("memory", []),
    ("memory.peak_bytes", "big"), ("memory.peak_bytes", float("nan")), ("memory.peak_bytes", float("inf")),
    ("memory.peak_bytes", True), ("timing", []), ("timing.steps_per_s", "fast"), ("timing.steps_per_s", {}),
    ("quality", "good"), ("quality.main", "0.9"), ("quality.task", 5), ("repeats", []), ("repeats.stats", []),
    ("repeats.stats.steps_per_s", 5), ("repeats.stats.steps_per_s.mean", "x"), ("repeats.stats.steps_per_s.stdev", -1),
    ("repeats.stats.steps_per_s.n", 0), ("repeats.stats.peak_bytes.n", 2.5), ("cell", "lora"),
    ("cell.method", ["lora"]), ("error", "boom"), ("error.message", 5), ("memory.device", 1),
]


ODD_CASES = [("cand", f, v) for f, v in ODD_FIELDS] + [("base", f, v) for f, v in ODD_FIELDS[:3] + ODD_FIELDS[15:17]]


@pytest.mark.parametrize("side,field,value", ODD_CASES, ids=[f"{s}-{f}={v!r}" for s, f, v in ODD_CASES])
def test_compare_odd_shaped_record_is_bad_input_naming_file_and_field(side, field, value, world, capsys):
    path = Path(world[f"{side}_q"])
    path.write_text(json.dumps(mutate(json.loads(path.read_text()), field, value)))
    assert_refused("compare", [world["base"], world["cand"]], [str(path), field], world, capsys)


@pytest.mark.parametrize("name,content,needle", [
    ("no-config", lambda r: {**r, "config": []}, "no config"),
    ("schema-2", lambda r: {**r, "schema_version": 2}, "schema_version 2"),
    ("status", lambda r: {**r, "status": "weird"}, "status"),
    ("a-list", lambda r: [r], "schema_version"),
    ("truncated", None, "not a readable JSON record"),
])
def test_compare_unreadable_record_is_bad_input(name, content, needle, world, capsys):
    path = Path(world["cand_l"])
    record = json.loads(path.read_text())
    path.write_text(json.dumps(content(record)) if content else json.dumps(record)[:100])
    assert_refused("compare", [world["base"], world["cand"]], [str(path), needle], world, capsys)


def history_line(**changes) -> str:
    entry = {"key": "k", "run": "1", "date": "2026-11-01", "sha": "a" * 40, "hardware": "h", "cell": "c",
             "status": "success", "packages": {}, "metrics": {"steps_per_s": {"value": 1.0, "stdev": None, "n": 1}}}
    return json.dumps({**entry, **changes}) + "\n"


@pytest.mark.parametrize("changes,needle", [
    ({"metrics": {"steps_per_s": {"value": "x"}}}, "metrics.steps_per_s.value"),
    ({"metrics": {"steps_per_s": [1]}}, "metrics.steps_per_s"),
    ({"metrics": []}, "metrics"),
    ({"run": 5}, "run"),
    ({"hardware": ["h"]}, "hardware"),
])
def test_compare_odd_history_entry_is_bad_input(changes, needle, world, capsys):
    path = Path(world["tmp"]) / "hist.jsonl"
    path.write_text(history_line() + history_line(**changes))
    assert_refused("compare", ["--trend", str(path)], [f"{path}:2", needle], world, capsys)


def test_compare_checks_the_history_store_before_writing_the_summary(world, capsys):
    store = Path(world["tmp"]) / "store"
    store.mkdir()
    (store / f"{world['hw']}.jsonl").write_text("{oops\n")
    summary = Path(world["tmp"]) / "summary.md"
    assert_refused("compare", [world["base"], world["cand"], "--append-history", str(store), "--summary",
                               str(summary)], [f"{world['hw']}.jsonl:1"], world, capsys)


def test_compare_github_step_summary_is_checked(world, capsys, monkeypatch):
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", "/proc/x")
    assert_refused("compare", [world["base"], world["cand"]], ["$GITHUB_STEP_SUMMARY", "/proc/x"], world, capsys)


# ---- positive controls: the good invocation still works ----

def test_compare_identical_is_0_and_a_50_percent_slower_candidate_is_1(world, capsys):
    code, out, err = call("compare", [world["base"], world["cand"], "--tol-memory", "0"], capsys)
    assert code == 0 and "no regression" in out and err == ""
    path = Path(world["cand_q"])
    record = json.loads(path.read_text())
    record["timing"]["steps_per_s"] *= 0.5
    record["repeats"]["stats"]["steps_per_s"]["mean"] *= 0.5
    path.write_text(json.dumps(record))
    code, out, err = call("compare", [world["base"], world["cand"]], capsys)
    assert code == 1 and "REGRESSION" in out and err == ""


def test_compare_history_and_summary_are_written_and_the_trend_reads_them(world, capsys):
    store, summary = Path(world["tmp"]) / "new" / "store", Path(world["tmp"]) / "summary.md"
    code, _, err = call("compare", [world["base"], world["cand"], "--append-history", str(store), "--run", "1",
                                    "--summary", str(summary)], capsys)
    assert code == 0 and "appended" in err and summary.read_text().startswith("## bench.compare")
    code, out, _ = call("compare", ["--trend", str(store), "--last", "1"], capsys)
    assert code == 0 and out.startswith("## bench.compare --trend")


def test_report_rebuild_keeps_foreign_files_and_drops_only_its_own_stale_ones(world, capsys):
    out = Path(world["tmp"]) / "reports" / "exp"  # an earlier build's folder, as its marker lists it
    (out / "figures").mkdir(parents=True)
    for rel, text in (("report.md", "old\n"), ("figures/old-figure.png", "stale\n"), ("notes.txt", "mine\n"),
                      ("figures/my-plot.png", "mine\n")):
        (out / rel).write_text(text)
    files = ["report.md", "figures/old-figure.png", "../../file.txt"]  # a tampered entry is never followed
    (out / ".bench-report").write_text(json.dumps({"made_by": "python -m bench.report", "files": files}))
    code, _, err = call("report", [world["exp"], "--out", str(out)], capsys)
    assert code == 0 and err == ""
    assert (out / "notes.txt").read_text() == "mine\n" and (out / "figures" / "my-plot.png").read_text() == "mine\n"
    assert not (out / "figures" / "old-figure.png").exists() and Path(world["file"]).exists()
    assert (out / "report.md").read_text().startswith("# bench report: exp")
    marker = json.loads((out / ".bench-report").read_text())["files"]
    assert "report.md" in marker and "notes.txt" not in marker and "figures/my-plot.png" not in marker
    assert not [p for p in out.rglob(".*tmp-*")] and not [p for p in out.parent.iterdir() if p.name.startswith(".")]


def test_report_accepts_a_report_folder_made_before_the_marker(world):
    legacy = Path(world["tmp"]) / "legacy"
    legacy.mkdir()
    (legacy / "report.md").write_text((ROOT / "reports" / "quickstart" / "report.md").read_text()[:500])
    (legacy / "report.html").write_text((ROOT / "reports" / "quickstart" / "report.html").read_text()[:500])
    (legacy / "notes.txt").write_text("mine\n")
    assert outdir.check(legacy, [world["exp"]], "--out") == []  # only overwritten, nothing removed
    assert outdir.check(Path(world["empty"]), [world["exp"]], "--out") == []
    assert outdir.check(Path(world["tmp"]) / "new" / "r", [world["exp"]], "--out") is None


def test_report_skips_an_odd_record_with_one_warning_and_escapes_pipes_in_tables(world, capsys):
    src = Path(world["tmp"]) / "a|b" / "exp"
    src.mkdir(parents=True)
    for p in Path(world["exp"]).iterdir():
        (src / p.name).write_bytes(p.read_bytes())
    record = json.loads((REPORT_FIX / "full-tiny-synthetic.json").read_text())
    (src / "odd.json").write_text(json.dumps({**record, "config": 5, "cell": 7}))
    out = Path(world["tmp"]) / "r"
    code, _, err = call("report", [str(src), "--out", str(out)], capsys)
    assert code == 0 and len(err.splitlines()) == 1 and "warning" in err and str(src / "odd.json") in err
    md = (out / "report.md").read_text().split("## Records")[1]
    rows = [line for line in md.splitlines() if line.startswith("|")]
    cells = {len(line.replace("\\|", "").split("|")) for line in rows}
    assert len(rows) == 4 and len(cells) == 1  # header, rule, two records: every row the same width


def test_estimate_tiny_cell_writes_json_and_csv_and_may_replace_its_own_output(world, capsys):
    tmp = Path(world["tmp"])
    code, out, err = call("estimate", ["model=tiny", "--json", str(tmp / "e.json"), "--csv", str(tmp / "e.csv")],
                          capsys)
    assert code == 0, err
    assert json.loads((tmp / "e.json").read_text())[0]["model"] == "tiny"
    assert (tmp / "e.csv").read_text().startswith("method,model,")
    check_outputs({"json": str(tmp / "e.json"), "csv": str(tmp / "e.csv")})  # its own output: may be replaced
    check_outputs({"json": "-", "csv": None})
    assert not [p for p in tmp.iterdir() if p.name.startswith(".")]


# ---- the real entry points ----

SUBPROCESS = {
    "report-out-is-input": ("report", ["{exp}", "--out", "{exp}"], ["--out", "{exp}"]),
    "report-bogus-flag": ("report", ["{exp}", "--bogus"], ["--bogus"]),
    "compare-tol-memory-nan": ("compare", ["{base}", "{base}", "--tol-memory", "nan"], ["--tol-memory"]),
    "compare-last-negative": ("compare", ["--trend", "{tmp}/h", "--last", "-3"], ["--last"]),
    "estimate-bogus-experiment": ("estimate", ["+experiment=bogus"], ["experiment", "bogus"]),
    "estimate-json-no-folder": ("estimate", ["model=tiny", "--json", "/nonexistent/x.json"], ["--json"]),
}


@pytest.mark.parametrize("case", list(SUBPROCESS))
def test_real_entry_point_is_one_line_exit_2(case, world):
    tool, argv, needles = SUBPROCESS[case]
    root = Path(world["tmp"])
    before = snapshot(root)
    env = {k: v for k, v in os.environ.items() if k != "GITHUB_STEP_SUMMARY"}
    proc = subprocess.run([sys.executable, "-m", f"bench.{tool}", *fill(argv, world)], cwd=root, capture_output=True,
                          text=True, timeout=120, env={**env, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"})
    lines = proc.stderr.splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith(f"bench.{tool}: error: "), proc.stderr
    assert all(n in lines[0] for n in fill(needles, world)) and proc.stdout == ""
    assert snapshot(root) == before
