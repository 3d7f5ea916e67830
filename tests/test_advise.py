"""bench.advise (CPU, meta device): the shared wrapped-model facts give predict_cell's own numbers, the shapes
reach the target tokens, speeds are measured / estimated / absent as documented (hand-made records), the
ranking and the 'nothing fits' verdict, and bad input is one line, exit 2, nothing written."""
import json
from pathlib import Path

import pytest

from bench import advise as cli
from bench import advise_rank as rank
from bench.advise_rank import Candidate, Row
from bench.advise_show import document, verdict
from bench.advise_speed import Ask, Measured, Speed, expected_speed, load_measured
from bench.config import ConfigError
from bench.estimate.gpus import load_catalog
from bench.stats import Estimate

ROOT = Path(__file__).resolve().parent.parent
CATALOG = load_catalog()


def test_shared_facts_equal_predict_cell_for_every_variant_kind():
    """Optimizer, checkpointing and layer-wise variants reuse one meta model: same peak and FLOPs as a fresh
    predict_cell (which builds its own)."""
    from bench.estimate import sweep
    from bench.estimate.predict import predict_cell

    gpu = CATALOG["rtx4090"]
    cands = [Candidate("lora", 8, "adamw", True), Candidate("lora", 8, "paged_adamw8bit", False),
             Candidate("galore", None, "adamw8bit", False, ("method.layerwise=true",)),
             Candidate("galore", None, "adamw", True, ("method.layerwise=false",)),
             Candidate("full", None, "adamw8bit", False, ("method.precision=pure",))]
    cfgs = sweep.compose_many([c.overrides("tiny", 64) for c in cands])
    for cand, cfg in zip(cands, cfgs):
        cfg = rank.with_shape(cfg, 2, 1)
        shared, fresh = rank._predict(cfg, gpu), predict_cell(cfg, "cuda", gpu)
        assert shared.peak_bytes == fresh.peak_bytes, cand
        assert shared.flops["hardware_flops"] == fresh.flops["hardware_flops"], cand
    peaks = {c: rank._predict(rank.with_shape(cfg, 2, 1), gpu).peak_bytes for c, cfg in zip(cands, cfgs)}
    assert peaks[cands[0]] != peaks[cands[1]]  # the variants do differ: the cache is not returning one answer


def test_speed_keeps_the_largest_micro_batch_with_room_not_a_tight_one():
    from bench.estimate import sweep
    from bench.estimate.gpus import Gpu

    cand = Candidate("lora", 8, "adamw", False)
    cfg = sweep.compose_many([cand.overrides("1b", 2048)])[0]
    peak = {b: rank._predict(rank.with_shape(cfg, b, 8 // b), None).peak_bytes for b in (4, 2, 1)}
    assert peak[2] * 1.05 < peak[4] * 1.02  # micro-batch 2 has room where 4 is tight

    def on(memory: float) -> Row:
        return rank.evaluate(cand, cfg, "1b", Gpu("x", "x", memory / 1e9, None, None, "test"), 8 * 2048, [])

    tight = on(peak[4] * 1.02)
    assert (tight.batch_size, tight.grad_accum, tight.tight) == (2, 4, False)
    roomy = on(peak[4] * 1.10)
    assert (roomy.batch_size, roomy.grad_accum, roomy.tight) == (4, 2, False)
    only_tight = on(peak[1] * 1.02)  # nothing has room: the largest that fits, marked tight
    assert only_tight.fits and only_tight.tight and only_tight.batch_size == 1


def test_shapes_reach_the_target_tokens_and_layerwise_does_not_accumulate():
    assert rank.shapes(2048, 16384, False) == [(8, 1), (4, 2), (2, 4), (1, 8)]
    assert rank.shapes(2048, 16384, True) == [(8, 1), (4, 1), (2, 1), (1, 1)]
    assert rank.shapes(4096, 2048, False) == [(1, 1)]  # one sequence is the least a step can take
    assert rank.shapes(512, 3000, False)[0] == (4, 2)  # 4 x 512 x 2 = 4096 >= 3000


def test_generic_gpu_and_bad_gpu():
    g = rank.gpu_from_key("48gb")
    assert g.memory_bytes == 48_000_000_000 and g.peak_tflops(2) is None
    assert rank.gpu_from_key("rtx3060").memory_gb == 12
    with pytest.raises(ConfigError, match="gpu"):
        rank.gpu_from_key("rtx9999")


def _measured(gpu="H100 SXM 80GB", peak=989.0, **kw) -> Measured:
    base = dict(file="r.json", gpu_name=gpu, peak_tflops=peak, method="lora", bits=16, model="llama2-7b",
                params_total=6_750_000_000, rank=16, optimizer="adamw", checkpointing=True, batch_size=4,
                seq_len=512, hardware_flops=8.0e13, steps=Estimate(2.0, 1.8, 2.2, 1, "batch means"),
                tokens=Estimate(4096.0, 3686.4, 4505.6, 1, "batch means"), settings=(None, None, "all-linear"))
    base.update(kw)
    return Measured(**base)


def _ask(**kw) -> Ask:
    base = dict(method="lora", bits=16, model="llama2-7b", params_total=6_750_000_000, rank=16, optimizer="adamw",
                checkpointing=True, batch_size=4, seq_len=512, hardware_flops=8.0e13, tokens_per_step=2048,
                settings=(None, None, "all-linear"))
    base.update(kw)
    return Ask(**base)


def test_speed_measured_on_the_same_gpu_and_cell():
    rtx = _measured(gpu="RTX 4090", peak=165.2, file="rtx.json")
    speed = expected_speed(_ask(), CATALOG["rtx4090"], [_measured(), rtx])
    assert speed.measured and speed.label == "measured (rtx.json)" and speed.tokens_per_s.value == 4096.0


def test_speed_estimated_from_the_nearest_gpu_keeps_the_interval():
    h100 = _measured()
    a100 = _measured(gpu="A100 80GB", peak=312.0, file="a100.json",
                     steps=Estimate(1.0, 0.9, 1.1, 1, "batch means"))
    ask = _ask(batch_size=8, hardware_flops=1.6e14, tokens_per_step=4096)  # another cell: no measurement
    speed = expected_speed(ask, CATALOG["rtx4090"], [h100, a100])
    util = 1.0 * 8.0e13 / 312e12  # A100's peak is nearer the 4090's (165 TFLOP/s) than H100's
    want = util * 165.2e12 / 1.6e14 * 4096
    assert not speed.measured and speed.label == "est. from A100 80GB HFU 0.26 (llama2-7b, 4 x 512)"
    assert speed.tokens_per_s.value == pytest.approx(want)
    assert speed.tokens_per_s.lo == pytest.approx(want * 0.9) and speed.tokens_per_s.hi == pytest.approx(want * 1.1)


def test_speed_absent_without_a_record_of_the_method_or_a_peak():
    assert expected_speed(_ask(method="dora"), CATALOG["rtx4090"], [_measured()]).tokens_per_s is None
    generic = expected_speed(_ask(), rank.gpu_from_key("24gb"), [_measured()])
    assert generic.tokens_per_s is None and "no 16-bit peak" in generic.label


def test_load_measured_reads_the_h100_records():
    folder = ROOT / "results" / "gpu-h100"
    if not any(folder.glob("*.json")):
        pytest.skip("no H100 records in this checkout")
    got = load_measured([folder, ROOT / "no-such-folder"])
    assert got and all(m.peak_tflops == CATALOG["h100"].bf16_tflops and m.hardware_flops for m in got)
    assert {m.method for m in got} >= {"lora", "qlora", "full", "galore"}


def _row(method, peak, tps, fits=True) -> Row:
    speed = Speed(Estimate(tps, tps * 0.9, tps * 1.1) if tps else None, "est.")
    return Row(cand=Candidate(method, 8, "adamw", True), model_name="m", params_total=1, fits=fits,
               peak_bytes=int(peak * 1e9), headroom_bytes=int((24 - peak) * 1e9), batch_size=1, grad_accum=1,
               tokens_per_step=512, trainable_pct=1.0, base="16-bit", gives_up="", speed=speed, command=method)


def test_ranking_for_each_goal_and_nothing_fits():
    rows = [_row("a", 10, 100), _row("b", 5, None), _row("c", 20, 300), _row("d", 1, 900, fits=False)]
    assert [r.cand.method for r in rank.rank_rows(rows, "memory")] == ["b", "a", "c"]
    assert [r.cand.method for r in rank.rank_rows(rows, "speed")] == ["c", "a", "b"]
    gpu = CATALOG["rtx4090"]
    assert verdict(gpu, [rows[3]], [], "speed").startswith("Nothing fits RTX 4090 (24 GB)")
    doc = document({"model": "m", "seq_len": 512, "tokens": 512, "goal": "speed"}, gpu, rows,
                   rank.rank_rows(rows, "speed"), [], 0.0)
    assert [r["vs_top"] for r in doc["ranked"]] == ["#1", "-67% ±5%", None]  # log half-widths 0.095 each
    tied = [_row("c", 20, 300), _row("e", 8, 290)]
    tie = document({"model": "m", "seq_len": 512, "tokens": 512, "goal": "speed"}, gpu, tied, tied, [], 0.0)
    assert tie["ranked"][1]["vs_top"].endswith("n.s.")  # within noise: a tie, not a second place
    assert len(doc["not_fitting"]) == 1 and doc["not_fitting"][0]["rank"] is None


@pytest.mark.parametrize("argv, key", [
    (["model=tiny"], "gpu"), (["model=nope", "gpu=t4"], "model"), (["model=tiny", "gpu=t4", "goal=fast"], "goal"),
    (["model=tiny", "gpu=t4", "method=bogus"], "method"), (["model=tiny", "gpu=t4", "tokens=0"], "tokens"),
    (["model=tiny", "gpu=t4", "--wat"], "--wat"), (["model=tiny", "gpu=nope"], "gpu"),
    (["model=tiny", "gpu=t4", "--results", "/no/such"], "--results")])
def test_bad_input_is_one_line_exit_2(argv, key, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1 and key in err[0]


def test_json_refuses_a_foreign_file_and_writes_nothing(tmp_path, capsys):
    foreign = tmp_path / "notes.json"
    foreign.write_text('{"mine": 1}\n')
    with pytest.raises(SystemExit) as exc:
        cli.main(["model=tiny", "gpu=t4", "--json", str(foreign)])
    assert exc.value.code == 2 and foreign.read_text() == '{"mine": 1}\n'
    assert "--json" in capsys.readouterr().err


def test_only_unmodelled_methods_asked_predicts_nothing(tmp_path, capsys):
    cli.main(["model=tiny", "gpu=t4", "method=apollo", "--results", str(tmp_path)])
    text = capsys.readouterr().out
    assert "Nothing to predict for T4 (16 GB)." in text
    assert "Not modelled by bench.estimate" in text and "apollo" in text


def test_cli_nothing_fits_then_fits(tmp_path, capsys):
    out = tmp_path / "advice.json"
    cli.main(["model=tiny", "gpu=0.01gb", "method=lora,apollo", "ranks=8", "train.seq_len=64", "tokens=256",
              "--results", str(tmp_path), "--json", str(out)])
    text = capsys.readouterr().out
    doc = json.loads(out.read_text())
    assert "Nothing fits 0.01 GB GPU" in text and doc["fit"] == 0 and doc["predicted"] == 8
    assert doc["not_modelled"] == ["apollo"] and "apollo" in text
    cli.main(["model=tiny", "gpu=rtx3060", "method=lora", "ranks=8", "goal=memory", "train.seq_len=64",
              "tokens=256", "--results", str(tmp_path), "--json", str(out)])  # its own earlier output: replaced
    doc = json.loads(out.read_text())
    peaks = [r["peak_bytes"] for r in doc["ranked"]]
    assert doc["fit"] == 8 and peaks == sorted(peaks) and {r["batch_size"] for r in doc["ranked"]} == {1}
    assert {r["grad_accum"] for r in doc["ranked"]} == {4}  # micro-batch 1 accumulating to 256 tokens of 64
    assert all(r["command"].startswith("python -m bench.run method=lora model=tiny") for r in doc["ranked"])
    assert all(r["tokens_per_s"] is None and r["speed_from"].startswith("n/a") for r in doc["ranked"])
    cli.main(["model=tiny", "gpu=rtx3060", "method=lora", "ranks=8", "train.seq_len=64", "tokens=256",
              "--results", str(tmp_path), "--json", str(out)])  # speed: the largest micro-batch that fits
    assert {r["batch_size"] for r in json.loads(out.read_text())["ranked"]} == {4}
