"""bench.report on hand-written fixture records (tests/fixtures/report/): an H100 group with success, OOM,
failed and skipped (does not fit) cells, repeats and quality tasks; a CPU group with two torch versions;
corrupt, old-schema and foreign files; a model named <script>alert(1)</script>."""
import csv
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.report import build as build_mod
from bench.report import fit, quality_tables, tables
from bench.report.__main__ import main
from bench.report.figures_quality import pareto
from bench.report.groups import build_groups
from bench.report.load import load_records

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "report"
GPU_DIR, CPU_DIR = FIXTURES / "gpu-lab", FIXTURES / "cpu-box"
SCRIPT = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def groups():
    return build_groups(load_records([GPU_DIR, CPU_DIR], warn=lambda m: None))


@pytest.fixture(scope="module")
def gpu(groups):
    return groups[0]


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "fixture-report"
    warnings = []
    build_mod.build([GPU_DIR, CPU_DIR], out, warn=warnings.append)
    return out, warnings


def texts(table):
    return [[c.text for c in row] for row in table.rows]


def row_of(table, *starts):
    """The first row whose leading cells are `starts`."""
    for row in texts(table):
        if row[:len(starts)] == list(starts):
            return dict(zip(table.columns, row))
    raise AssertionError(f"no row {starts} in {table.title}")


def test_corrupt_old_schema_and_foreign_files_are_skipped_with_a_warning_naming_them():
    warnings = []
    records = load_records([CPU_DIR], warn=warnings.append)
    assert len(records) == 2
    assert len(warnings) == 3 and all(w.startswith("skipping ") for w in warnings)
    for name in ("broken.json", "old-schema.json", "not-a-record.json"):
        assert sum(str(CPU_DIR / name) in w for w in warnings) == 1
    assert any("schema_version 0" in w for w in warnings)


def test_two_hardware_groups_are_kept_apart_and_mixed_versions_flagged(gpu, groups):
    assert [g.title for g in groups] == ["NVIDIA H100 80GB HBM3", "CPU AMD EPYC, 2 cores, 25 GB RAM"]
    assert [g.device for g in groups] == ["cuda", "cpu"]
    assert len(gpu.records) == 11 and len(groups[1].records) == 2
    assert gpu.mixed() == {}
    assert groups[1].mixed() == {"pkg_torch": {"2.12.0+cpu": 1, "2.13.0+cpu": 1}}
    ids = [r["id"] for g in groups for r in g.records]
    assert ids == list(range(1, 14))
    # the CPU group's full-FT record is not the H100 group's reference, and vice versa
    cpu_full = next(r for r in groups[1].records if r["method"] == "full")
    assert tables.reference(groups[1], cpu_full, "lora")["device"] == "cpu"


def test_per_method_table(gpu):
    t = tables.per_method(gpu)
    assert "Peak memory (GB) \u2193" in t.columns and "Speed vs LoRA \u2191" in t.columns
    full = row_of(t, "full", "llama2-7b")
    peak, steps = "Peak memory (GB) \u2193", "Steps/s \u2191"
    assert (full["Status"], full[peak], full[steps]) == ("success", "67.5", "1.50 \u00b10.050")
    assert full["Speed vs LoRA \u2191"] == "\u221225% \u00b13%"
    assert full["Memory reduction vs full FT \u2191"] == "(ref.)"
    lora = row_of(t, "lora", "llama2-7b")
    assert lora["Memory reduction vs full FT \u2191"] == "+73%" and lora["Trainable params (%)"] == "0.124%"
    assert row_of(t, "qlora 4-bit", "llama2-7b")["Memory reduction vs full FT \u2191"] == "+91%"
    galore = row_of(t, "galore", "llama2-7b")
    assert (galore["Status"], galore[peak], galore[steps]) == ("OOM", "est. 41.0", "n/a")
    assert row_of(t, "full", "llama2-13b")["Status"] == "does not fit"
    assert row_of(t, "lora", "llama2-13b")["Status"] == "failed"
    # its LoRA reference failed: said so, not a number
    assert row_of(t, "qlora 4-bit", "llama2-13b")["Speed vs LoRA \u2191"] == "n/a (LoRA failed)"
    assert row_of(t, "lora", f"{SCRIPT} (1B)", "sst2")["Quality (0-100) \u2191"] == "91.0 acc (1 seed)"
    assert row_of(t, "lora", "llama2-7b")["Quality (0-100) \u2191"] == "n/a"  # synthetic: no quality
    reduction = row_of(t, "lora", f"{SCRIPT} (1B)", "sst2")["Memory reduction vs full FT \u2191"]
    assert reduction == "n/a (no full FT record)"


def test_memory_matrix_shows_failures_with_estimates_never_drops_them(gpu):
    t = tables.memory_matrix(gpu)
    assert t.columns[0] == "Method" and "llama2-7b \u00b7 synthetic, batch 4 x 512 tokens" in t.columns
    cells = {r[0]: r for r in texts(t)}
    col7 = t.columns.index("llama2-7b \u00b7 synthetic, batch 4 x 512 tokens")
    col13 = t.columns.index("llama2-13b \u00b7 synthetic, batch 4 x 512 tokens")
    methods = ("full", "lora", "qlora 4-bit", "galore")
    assert [cells[m][col7] for m in methods] == ["67.5", "18.2", "6.10", "OOM (est. 41.0)"]
    assert [cells[m][col13] for m in methods] == [
        "does not fit (est. 212)", "failed (est. 33.0)", "10.4", "\u2014"]
    kinds = {c.text: c.kind for row in t.rows for c in row}
    assert kinds["OOM (est. 41.0)"] == "fail" and kinds["does not fit (est. 212)"] == "nofit"
    assert all(c.ref is not None for row in t.rows for c in row[1:] if c.text != "\u2014")


def test_speed_matrix_has_the_difference_vs_lora(gpu):
    t = tables.speed_matrix(gpu)
    row = row_of(t, "llama2-7b \u00b7 synthetic, batch 4 x 512 tokens")
    assert row["full"] == "1.50 \u00b10.050 (vs LoRA \u221225% \u00b13%)"  # mean of 3 repeats vs one exact run
    assert row["lora"] == "2.00" and row["qlora 4-bit"] == "1.20 (vs LoRA \u221240%)" and row["galore"] == "OOM"
    row13 = row_of(t, "llama2-13b \u00b7 synthetic, batch 4 x 512 tokens")
    assert (row13["full"], row13["lora"], row13["qlora 4-bit"]) == ("does not fit", "failed", "0.700")


def test_glue_and_squad_tables(gpu):
    # the scores; the columns after them (differences vs LoRA) are tests/test_quality_cpu.py's to check
    glue = quality_tables.glue(gpu)
    assert glue.columns[:4] == ["Method", "SST-2 (acc)", "RTE (acc)", "Average \u2191"]
    assert [r[:4] for r in texts(glue)] == [["lora", "91.0", "70.0", "80.5"], ["qlora 4-bit", "OOM", "\u2014", "n/a"]]
    squad = quality_tables.squad(gpu)
    assert [r[:3] for r in texts(squad)] == [["lora", "80.1", "87.3"]]


def test_hardware_fit_from_measured_peaks_estimates_marked(gpu):
    gpus = fit.load_gpus()
    assert [g.key for g in gpus][-1] == "h200"
    t = fit.hardware_fit(gpu, gpus)
    full7 = row_of(t, "llama2-7b", "full")
    assert full7["A100 40GB (40 GB)"] == "no" and full7["A100 80GB (80 GB)"] == "fits"
    galore = row_of(t, "llama2-7b", "galore")
    assert galore["H100 SXM 80GB (80 GB)"] == "no (OOM)" and galore["H200 SXM 141GB (141 GB)"] == "?"
    assert row_of(t, "llama2-13b", "full")["H200 SXM 141GB (141 GB)"] == "no (est.)"
    lora13 = row_of(t, "llama2-13b", "lora")
    assert lora13["RTX 4090 (24 GB)"] == "no (est.)" and lora13["A100 40GB (40 GB)"] == "fits (est.)"
    assert fit.hardware_fit(build_groups(load_records([CPU_DIR], warn=lambda m: None))[0], gpus) is None


def test_report_files_self_contained_html_and_escaped_record_strings(report_dir):
    out, warnings = report_dir
    assert len(warnings) == 3
    html = (out / "report.html").read_text()
    md = (out / "report.md").read_text()
    assert "<script" not in html.lower()  # the model name is text, and the page has no script of its own
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in md
    assert SCRIPT not in md
    assert html.count("data:image/png;base64,") >= 8
    # nothing fetched or run: no stylesheet link, no remote image or link (a cited URL as text is fine)
    assert not re.search(r"<link|(src|href)=\"https?://|url\(", html, re.I)
    for word in ("OOM", "does not fit", "failed", "Mixed environment", "Skipped files", "old-schema.json"):
        assert word in html and word in md
    figures = sorted(p.name for p in (out / "figures").iterdir())
    # each figure drawn once, in the one format the report shows (PNG): embedded once, linked once from report.md
    assert len(figures) >= 8 and all(name.endswith(".png") for name in figures)
    assert html.count("data:image/png;base64,") == len(figures)
    assert sorted(name for name in figures if f"](figures/{name})" in md) == figures
    for name in figures:
        data = (out / "figures" / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[25] == 3  # colour type 3: a palette PNG
    with (out / "records.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 13 and rows[0]["id"] == "1"
    assert {r["status"] for r in rows} == {"success", "oom", "failed", "skipped"}
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temp folders left


def test_cli_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "r"
    assert main([str(tmp_path / "nope"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(tmp_path / "nope") in err and "Traceback" not in err
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty"), "--out", str(out)]) == 2
    assert "no records" in capsys.readouterr().err
    bad = tmp_path / "bad"
    bad.mkdir()
    shutil.copy(CPU_DIR / "broken.json", bad)
    assert main([str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert str(bad / "broken.json") in err and "Traceback" not in err
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["bad", "empty"]


def test_a_failed_build_keeps_the_previous_report(tmp_path, monkeypatch):
    out = tmp_path / "r"
    out.mkdir()
    (out / "report.md").write_text("previous\n")
    (out / ".bench-report").write_text('{"files": ["report.md"]}\n')  # an earlier build's folder

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(build_mod, "build_section", boom)
    with pytest.raises(RuntimeError):
        build_mod.build([CPU_DIR], out, warn=lambda m: None)
    assert (out / "report.md").read_text() == "previous\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]
    assert sorted(p.name for p in out.iterdir()) == [".bench-report", "report.md"]  # no staging folder left


def test_cli_imports_no_torch_and_builds_from_real_records(tmp_path):
    quickstart = ROOT / "results" / "quickstart"
    if not any(quickstart.glob("*.json")):
        pytest.skip("no quickstart records in this checkout")
    code = ("import runpy, sys\n"
            f"sys.argv = ['bench.report', {str(quickstart)!r}, '--out', {str(tmp_path / 'q')!r}]\n"
            "try:\n    runpy.run_module('bench.report', run_name='__main__')\n"
            "except SystemExit as exc:\n    print('exit', exc.code)\n"
            "print('torch imported:', 'torch' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert "exit 0" in done.stdout and "torch imported: False" in done.stdout, done.stdout + done.stderr
    assert "warning" not in done.stderr
    md = (tmp_path / "q" / "report.md").read_text()
    assert "4 records" in md and "| qlora 4-bit | minilm (22.7M) | sst2 | quantised base | success |" in md


def test_pareto_frontier():
    points = [(1.0, 80.0), (2.0, 85.0), (1.5, 70.0), (3.0, 84.0), (0.5, 60.0)]
    assert pareto(points) == [(0.5, 60.0), (1.0, 80.0), (2.0, 85.0)]


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (Debian: apt-get install chromium)")
def test_report_renders_in_headless_chromium(report_dir, tmp_path):
    out, _ = report_dir
    shot = tmp_path / "report.png"
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1400,3000",
                    (out / "report.html").as_uri()], capture_output=True, timeout=120, check=False)
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1400, 3000) and len(data) > 100_000  # a rendered page, not a blank one


def test_energy_column_only_where_records_measured_energy(tmp_path, gpu):
    assert not any("Energy" in c for c in tables.per_method(gpu).columns)  # the fixtures have none
    import json
    rec = json.loads((GPU_DIR / "lora-llama2-7b-synthetic-r16.json").read_text())  # 2 steps/s, 4,096 tokens/s
    rec["energy"] = {"joules": 300.0, "joules_per_step": 30.0, "source": "nvmlDeviceGetTotalEnergyConsumption"}
    (tmp_path / "lora.json").write_text(json.dumps(rec))
    group = build_groups(load_records([tmp_path], warn=lambda m: None))[0]
    row = row_of(tables.per_method(group), "lora")
    assert row["Energy (J per 1k tokens) \u2193"] == "14.6"  # 30 J per step of 2,048 tokens


def test_mfu_from_the_stored_flop_count_and_the_catalog_peak(tmp_path, gpu):
    import json
    assert not any("MFU" in c for c in tables.per_method(gpu).columns)  # no FLOP counts in the fixtures
    rec = json.loads((GPU_DIR / "lora-llama2-7b-synthetic-r16.json").read_text())  # H100 SXM, 2 steps/s
    rec["preflight"]["flops"] = {"model_flops": 49.45e12}
    (tmp_path / "lora.json").write_text(json.dumps(rec))
    cpu_rec = dict(rec, setup={**rec["setup"], "compute_dtype": "float32"})  # no 16-bit peak to compare with
    (tmp_path / "lora-fp32.json").write_text(json.dumps({**cpu_rec, "cell": {**rec["cell"], "model": "other"}}))
    group = build_groups(load_records([tmp_path], warn=lambda m: None))[0]
    table = tables.per_method(group)
    assert row_of(table, "lora", "llama2-7b")["MFU (%) \u2191"] == "10.0"  # 49.45 TFLOP x 2 / 989 TFLOP/s
    other = next(row for row in texts(table) if row[1].startswith("other"))
    assert dict(zip(table.columns, other))["MFU (%) \u2191"] == "n/a"
    assert "989 TFLOP/s" in table.note


@pytest.mark.parametrize("status,error_type,shown", [
    ("skipped", "TooSlow", "too slow here"), ("skipped", "DoesNotFit", "does not fit"),
    ("failed", "Interrupted", "interrupted"), ("failed", "RuntimeError", "failed"), ("oom", None, "OOM"),
])
def test_outcome_names_why_a_cell_has_no_numbers(status, error_type, shown):
    from bench.report.cells import outcome

    assert outcome({"status": status, "error_type": error_type}) == shown


def test_terminal_table_is_the_report_per_method_table_in_columns(gpu, tmp_path, capsys):
    """`python -m bench.report` prints each group's per-method table: the same cell texts as tables.per_method
    (nothing recomputed), columns that are n/a everywhere dropped, headers shortened."""
    from bench.report import terminal

    lines = terminal.text_table(tables.per_method(gpu))
    assert lines[0].startswith("Method") and "Task" not in lines[0]  # not among the terminal's columns
    assert "Peak GB \u2193" in lines[0] and "Memory vs full \u2191" in lines[0] and "Speed vs LoRA" in lines[0]
    full7 = next(line for line in lines if line.startswith("full ") and "llama2-7b" in line)
    assert "67.5" in full7 and "1.50 \u00b10.050" in full7 and "\u221225% \u00b13%" in full7 and "(ref.)" in full7
    assert any(line.startswith("galore ") and "OOM" in line and "est. 41.0" in line for line in lines)
    assert set(lines[1]) == {"-", " "} and len(lines) == 2 + len(tables.per_method(gpu).rows)

    assert main([str(GPU_DIR), str(CPU_DIR), "--out", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert out.count("Per method: ") == 2 and "report: " in out.splitlines()[-1]
    assert "Memory vs full = 1 - peak / full fine-tuning's peak" in out
