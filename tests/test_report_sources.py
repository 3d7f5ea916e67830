"""The source tables replicated (bench/report/blocks/sources.py, bench/claims/tables.yaml): on the committed H100
records and hand-made ones, each published figure beside bench's, measured only at the stand-in setting, else
marked "est." (the estimator swapped for a stub that records what it is asked, except in the one test that runs
bench.estimate on the tiny model); rendered in Markdown and HTML; a bad tables.yaml is one line, exit 2."""
import copy
import json
import shutil
from pathlib import Path

import pytest

from bench.claims import source_tables
from bench.claims.source_tables import SourceTablesError, load_tables
from bench.report import build as build_mod
from bench.report.__main__ import main
from bench.report.blocks import sources
from bench.report.groups import build_groups
from bench.report.load import ReportInputError, load_records

ROOT = Path(__file__).resolve().parent.parent
H100 = ROOT / "results" / "gpu-h100"
FIXTURES = ROOT / "tests" / "fixtures" / "report"
LORA_7B = H100 / "lora-llama2-7b-synthetic-r16-86e16895b5.json"
PEAK = 12_345_000_000  # the stub's prediction: 12.3 GB, 1.5e9 of 7e9 parameters trainable (21.43%)
HQQ = (ROOT / "conf" / "method" / "hqq.yaml").is_file()

pytestmark = pytest.mark.skipif(not LORA_7B.exists(), reason="no H100 records in this checkout")


class Stub:
    def __init__(self):
        self.asked: list[tuple[str, ...]] = []

    def __call__(self, wanted):
        self.asked += wanted
        return {k: {"peak_bytes": PEAK, "total": 7_000_000_000, "trainable": 1_500_000_000} for k in wanted}


def records(*dirs):
    return [r for g in build_groups(load_records(list(dirs), warn=lambda m: None)) for r in g.records]


def table(block, key):
    return next(t for t in block.tables if t.key == f"source-{key}")


def cell_row(t, labels):
    """The row whose label cells are `labels` (one label or a tuple)."""
    labels = (labels,) if isinstance(labels, str) else labels
    return next(r for r in t.rows if tuple(c.text for c in r[:len(labels)]) == labels)


def cell(t, labels, column):
    return cell_row(t, labels)[t.columns.index(column)]


def id_of(recs, name):
    return next(r["id"] for r in recs if Path(r["file"]).name == name)


@pytest.fixture(scope="module")
def h100():
    recs = records(H100)
    stub = Stub()
    return recs, sources.build(recs, stub), stub


def test_published_and_measured_side_by_side_with_interval_and_record(h100):
    recs, block, _ = h100
    vram = table(block, "efficient-vram")
    lora = cell(vram, "LoRA", "7B")
    assert (lora.text, lora.kind) == ("16GB | 17.0 GB", "value")  # NVML process peak 17,014,194,176 B
    assert lora.ref == id_of(recs, LORA_7B.name)
    speed = table(block, "head-to-head-speed")
    assert cell(speed, "7B", "LoRA steps/s").text == "2.4 | 2.45 \u00b10.16"  # the 3 repeats' mean and CI
    assert cell(speed, "13B", "QLoRA steps/s").text == "1.1 | 1.08 \u00b10.074"
    qlora_7b = id_of(recs, "qlora-llama2-7b-synthetic-r16-33e5396288.json")
    summary = table(block, "deep-dive-summary")
    assert cell(summary, "LoRA", "Speed").text == "fast | reference"
    faster = cell(summary, "QLoRA", "Speed")
    assert faster.text.startswith("fast | \u221240% ") and faster.text.endswith(f" vs #{lora.ref}")
    assert faster.ref == qlora_7b
    throughput = cell(table(block, "llamafactory-table4"), "LoRA", "Throughput (tokens/s)")
    assert throughput.text == "1,954.07 | 5,022 \u00b1330"


def test_a_cell_that_did_not_run_shows_its_outcome_and_its_own_estimate(h100, tmp_path):
    recs, block, _ = h100
    full = cell(table(block, "efficient-vram"), "Full AMP", "7B")
    assert full.text == "120GB | does not fit (est. 142 GB)" and full.kind == "nofit"  # its preflight: 142.0e9 B
    assert full.ref == id_of(recs, "full-llama2-7b-synthetic-34c9d41200.json")
    oom = json.loads(LORA_7B.read_text())
    oom["status"], oom["error"] = "oom", {"type": "OutOfMemoryError", "message": "CUDA out of memory"}
    _write(tmp_path, "oom.json", oom)
    recs = records(tmp_path / "recs")
    speed = cell(table(sources.build(recs, Stub()), "head-to-head-speed"), "7B", "LoRA steps/s")
    assert (speed.text, speed.kind, speed.ref) == ("2.4 | OOM", "fail", recs[0]["id"])


def test_unmeasured_cells_are_predicted_and_marked_est_and_speed_is_never_predicted(h100):
    _, block, stub = h100
    vram = table(block, "efficient-vram")
    lora_30b = cell(vram, "LoRA", "30B")
    assert (lora_30b.text, lora_30b.kind, lora_30b.ref) == ("64GB | est. 12.3 GB", "est", None)
    assert cell(table(block, "efficient-ratios"), "Full", "Trainable parameters").text == "100% | est. 21.43%"
    assert cell(table(block, "head-to-head-speed"), "30B", "LoRA steps/s").text == "0.8 | not measured"
    assert cell(table(block, "deep-dive-summary"), "GaLore", "Speed").text == "moderate | not measured"
    asked = {" ".join(k) for k in stub.asked}
    assert len(asked) == len(stub.asked)  # each distinct cell asked once
    assert any("method=lora_all" in k and "model=30b" in k for k in asked)
    assert not any("method=lora_all" in k and "model=7b" in k for k in asked)  # measured: not predicted
    assert all("train.batch_size=4" in k and "train.seq_len=512" in k for k in asked)
    assert cell(vram, ("QLoRA", "4"), "7B").text == "6GB | 8.62 GB"
    assert cell(vram, ("QLoRA", "8"), "8x22B").text == "160GB | est. 12.3 GB"
    two_bit = [c.text for c in cell_row(vram, ("QLoRA", "2"))[2:]]
    if HQQ:  # a 2-bit base (HQQ) is a method: predicted (the stub answers everything), never measured here
        assert two_bit[0] == "4GB | est. 12.3 GB" and any("method=hqq" in k for k in asked)
    else:
        assert all(t.endswith("| not modelled") for t in two_bit) and not any("method=hqq" in k for k in asked)


def test_a_cell_the_estimator_refuses_says_not_predicted_and_why(h100):
    recs = h100[0]

    def refuses_hqq(wanted):
        return {k: {"error": "bench.estimate does not model method 'hqq'"} if "method=hqq" in k else
                {"peak_bytes": PEAK, "total": 7_000_000_000, "trainable": 1_500_000_000, "notes": ["a note"]}
                for k in wanted}

    vram = table(sources.build(recs, refuses_hqq), "efficient-vram")
    if not HQQ:
        pytest.skip("no conf/method/hqq.yaml: the 2-bit row is 'not modelled' (asserted above)")
    assert [c.text for c in cell_row(vram, ("QLoRA", "2"))[2:4]] == ["4GB | not predicted", "8GB | not predicted"]
    assert ("Not predicted (qlora2 7b, qlora2 13b, qlora2 30b, qlora2 70b, qlora2 110b, qlora2 8x7b, qlora2 8x22b): "
            "bench.estimate does not model method 'hqq'") in vram.footnotes
    noted = [f for f in vram.footnotes if f.startswith("Estimator's note (")]
    assert len(noted) == 1 and noted[0].endswith("): a note") and "full-amp 30b, full-amp 110b, " in noted[0]


def test_footnotes_name_the_stand_ins_and_the_gpu(h100):
    _, block, _ = h100
    notes = " ".join(table(block, "llamafactory-table4").footnotes)
    assert "8-bit AdamW" in notes and "Measured on: NVIDIA H100 80GB HBM3 (#" in notes
    assert "NVML process peak" in " ".join(block.notes)
    assert "; models: 7b = llama2-7b, 13b = llama2-13b, 30b = llama-33b, " in table(block, "efficient-vram").footnotes[0]
    assert "; models: llama2-7b." in table(block, "llamafactory-table4").footnotes[0]


def _write(tmp_path, name, raw):
    path = tmp_path / "recs" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(raw))


def test_hand_made_records_match_only_at_the_stand_in_setting(tmp_path):
    base = json.loads(LORA_7B.read_text())
    del base["repeats"]  # one run: its peak is memory.peak_bytes
    other_lr = copy.deepcopy(base)
    other_lr["config"]["method"]["lr"] = 1e-3  # changes neither memory nor speed: still the cell
    other_lr["created_at"] = "2099-01-01T00:00:00Z"
    other_lr["memory"]["peak_bytes"] = 20_000_000_000
    bigger = copy.deepcopy(base)
    bigger["config"]["train"]["batch_size"] = 8  # another workload: not the cell
    bigger["memory"]["peak_bytes"] = 30_000_000_000
    other_rank = copy.deepcopy(base)
    other_rank["config"]["method"]["rank"] = 64
    other_modules = copy.deepcopy(base)
    other_modules["config"]["method"]["target_modules"] = "qv"  # the method's YAML says all-linear
    no_precision = copy.deepcopy(base)
    del no_precision["config"]["train"]["precision"]  # a setting the cell names must be in the record
    for name, raw in (("lr.json", other_lr), ("b8.json", bigger), ("r64.json", other_rank),
                      ("qv.json", other_modules), ("no-precision.json", no_precision)):
        _write(tmp_path, name, raw)
    recs = records(tmp_path / "recs")
    stub = Stub()
    lora = cell(table(sources.build(recs, stub), "efficient-vram"), "LoRA", "7B")
    assert lora.text == "16GB | 20.0 GB" and lora.ref == id_of(recs, "lr.json")
    only_wrong = [r for r in recs if Path(r["file"]).name != "lr.json"]
    assert sources.build(only_wrong, Stub()) is None  # nothing at the stand-in setting: no block
    older = copy.deepcopy(base)
    del older["config"]["method"]["bias"]  # made before the method had the setting: ran at its default
    (tmp_path / "older").mkdir()
    (tmp_path / "older" / "older.json").write_text(json.dumps(older))
    lora = cell(table(sources.build(records(tmp_path / "older"), Stub()), "efficient-vram"), "LoRA", "7B")
    assert lora.text == "16GB | 17.0 GB"


def test_a_tie_in_speed_reads_ns_never_a_winner(tmp_path):
    lora = json.loads(LORA_7B.read_text())
    galore = copy.deepcopy(lora)
    galore["cell"]["method"] = "galore"
    galore["config"]["method"] = {"name": "galore", "rank": 16, "update_proj_gap": 200, "scale": 0.25,
                                  "proj_type": "std", "target_modules": "attn,mlp,attention,intermediate,output",
                                  "optimizer": "adamw", "layerwise": False, "base_bits": 16}
    steps = galore["repeats"]["stats"]["steps_per_s"]  # 1% faster, each side's interval about +-6.5%
    steps["mean"], steps["ci95"] = steps["mean"] * 1.01, [v * 1.01 for v in steps["ci95"]]
    _write(tmp_path, "lora.json", lora)
    _write(tmp_path, "galore.json", galore)
    recs = records(tmp_path / "recs")
    speed = cell(table(sources.build(recs, Stub()), "deep-dive-summary"), "GaLore", "Speed")
    assert speed.text.startswith("moderate | ") and ", n.s." in speed.text, speed.text


def test_no_gpu_record_at_the_stand_in_setting_means_no_block():
    stub = Stub()
    assert sources.build(records(FIXTURES / "cpu-box"), stub) is None
    assert sources.build(records(FIXTURES / "gpu-lab"), stub) is None  # their configs lack the stand-in's train keys
    assert stub.asked == []


def _two_records(tmp_path, names=(LORA_7B.name, "qlora-llama2-7b-synthetic-r16-33e5396288.json")) -> Path:
    """LoRA and QLoRA on llama2-7b, copied (a whole report of 2 records draws its figures in seconds)."""
    folder = tmp_path / "h100"
    folder.mkdir()
    for name in names:
        shutil.copy(H100 / name, folder / name)
    return folder


def test_the_block_renders_in_markdown_and_html(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "predict_many", Stub())
    out = build_mod.build([_two_records(tmp_path)], tmp_path / "report", warn=lambda m: None)
    md, html = (out / "report.md").read_text(), (out / "report.html").read_text()
    assert "## The source tables replicated" in md and "| LoRA | 16 | 16GB \\| 17.0 GB \\[#" in md
    assert "64GB \\| est. 12.3 GB" in md
    assert '<h2 id="source-tables">The source tables replicated</h2>' in html
    assert "16GB | 17.0 GB" in html and '<td class="est">64GB | est. 12.3 GB</td>' in html
    assert md.index("The source tables replicated") < md.index("## Records")


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["tables"][0]["cell"].update(metric="vram"),
     "table efficient-vram row 1 column 1: metric must be one of"),
    (lambda d: d["tables"][2]["rows"][1]["published"].pop(), "table head-to-head-speed row 2: published must list 2"),
    (lambda d: d["tables"][0]["rows"][0].update(method="lora-xl"),
     "table efficient-vram row 1 column 1: method must be a key"),
    (lambda d: d["tables"][0]["columns"][6].update(model="8x99b"),
     "table efficient-vram row 1 column 7: model must be a conf/model/"),
    (lambda d: d["tables"][2]["rows"][0].update(method="lora"),
     "table head-to-head-speed row 1 column 1: method is set by both"),
    (lambda d: d["methods"]["lora"].update(overrides=["model=7b"]), "method lora: overrides must choose the method"),
    (lambda d: d["tables"][4]["columns"][2].pop("versus"), "table deep-dive-summary row 1 column 3: versus is needed"),
])
def test_a_bad_tables_yaml_is_one_line_naming_the_table_and_key(tmp_path, edit, message):
    import yaml

    data = yaml.safe_load(source_tables.TABLES.read_text())
    edit(data)
    bad = tmp_path / "tables.yaml"
    bad.write_text(yaml.safe_dump(data))
    with pytest.raises(SourceTablesError) as err:
        load_tables(bad)
    assert str(err.value).startswith(f"tables.yaml: {message}") and "\n" not in str(err.value), str(err.value)


def test_a_bad_tables_yaml_fails_the_report_with_exit_2_and_writes_nothing(tmp_path, monkeypatch, capsys):
    def broken():
        raise SourceTablesError("tables.yaml: table efficient-vram row 1: published must list 7 value(s)")

    monkeypatch.setattr(sources, "load_tables", broken)
    with pytest.raises(ReportInputError):
        sources.build(records(H100), Stub())
    out = tmp_path / "report"
    assert main([str(_two_records(tmp_path, [LORA_7B.name])), "--out", str(out)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "bench.report: error: tables.yaml: table efficient-vram row 1: published must list 7 value(s)"]
    assert not out.exists()


def test_the_committed_tables_load():
    tables = load_tables()
    assert [t.key for t in tables.tables][:2] == ["efficient-vram", "efficient-ratios"]
    vram = tables.tables[0]
    assert [r[0] for r in vram.rows][0] == ["Full AMP", "32"] and vram.rows[0][1][4][0] == "2000GB"


def test_predictions_are_analytic_and_memoised_and_import_no_torch(monkeypatch):
    """bench.estimate's analytic path on the tiny model: a prediction, then this process's memo (no second
    compose); a cell only a meta build could predict is a footnote naming the command, never a torch import."""
    monkeypatch.setattr(sources, "_PREDICTED", {})
    key = (*load_tables().standin, "method=lora_all", "method.rank=16", "model=tiny")
    first = sources.predict_many([key])[key]
    assert 0 < first["trainable"] < first["total"] and first["peak_bytes"] > 0 and "error" not in first
    from bench.estimate import sweep

    def no_compose(*args, **kwargs):
        raise AssertionError("composed again")

    monkeypatch.setattr(sweep, "compose_many", no_compose)
    assert sources.predict_many([key])[key] == first  # memo
    monkeypatch.undo()
    monkeypatch.setattr(sources, "_PREDICTED", {})
    encoder = (*load_tables().standin, "method=lora", "model=minilm")  # a BERT encoder: meta build only
    got = sources.predict_many([encoder])[encoder]
    assert got["error"].startswith("not predicted in the report") and "python -m bench.estimate" in got["error"]
