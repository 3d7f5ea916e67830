"""The report says whether a difference is established: every rate of a row from one statistic, a ± on every
rate, "n.s." where a difference's 95% interval includes no change, and a leader ("fastest", "lowest peak
memory", "best quality") named only when its lead is established; a tie otherwise. Synthetic records built
from the report fixtures; one committed H100 record for the statistics a row once mixed."""
import copy
import json
from pathlib import Path

import pytest

from bench.report import tables
from bench.report.groups import build_groups
from bench.report.load import load_records
from bench.report.sections import findings

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "report" / "gpu-lab" / "lora-llama2-7b-synthetic-r16.json"
LORA = json.loads(FIXTURE.read_text())
H100_LORA_7B = ROOT / "results" / "gpu-h100" / "lora-llama2-7b-synthetic-r16-86e16895b5.json"
UP = "\u2191"


def cell(method: str, steps_per_s: float, ci: tuple[float, float] | None = None, step_times: list | None = None,
         peak: int = 18_200_000_000, device: str = "cuda", quality: float | None = None,
         seeds: list[float] | None = None) -> dict:
    """A LoRA-7B fixture record turned into `method` at `steps_per_s`: its within-run interval from
    timing.steps_per_s_ci95 (`ci`, as new records hold it) or from `step_times` (as older records need)."""
    rec = copy.deepcopy(LORA)
    rec["cell"].update(method=method, bits=4 if method == "qlora" else 16)
    rec["config"]["method"]["name"] = method
    times = step_times or [1 / steps_per_s] * 10
    rec["timing"].update(steps_per_s=steps_per_s, samples_per_s=4 * steps_per_s, tokens_per_s=2048 * steps_per_s,
                         step_times_s=times, measured_steps=len(times))
    if ci is not None:
        rec["timing"].update(steps_per_s_ci95=list(ci), tokens_per_s_ci95=[2048 * c for c in ci],
                             samples_per_s_ci95=[4 * c for c in ci], rate_ci_method="batch means (test)")
    rec["memory"].update(peak_bytes=peak, device=device)
    rec["setup"]["device"] = device
    if device == "cpu":
        rec["env"]["gpu"] = None
        rec["memory"]["peak_source"] = "rss_kernel_hwm"
    if quality is not None or seeds:
        rec["cell"]["task"] = rec["config"]["task"]["name"] = "sst2"
        rec["quality"] = {"task": "sst2", "main_metric": "accuracy", "main": quality if quality is not None
                          else seeds[len(seeds) // 2]}
    if seeds:
        from bench.stats import mean_interval

        est = mean_interval(seeds)
        rec["repeats"] = {"n": len(seeds), "succeeded": len(seeds), "stats": {"quality_main": {
            "n": len(seeds), "mean": est.value, "stdev": 0.0, "ci95": [est.lo, est.hi]}}}
    return rec


def group_of(tmp_path: Path, *records: dict):
    for i, rec in enumerate(records):
        (tmp_path / f"{i}-{rec['cell']['method']}.json").write_text(json.dumps(rec))
    (group,) = build_groups(load_records([tmp_path], warn=lambda m: None))
    return group


def row(table, label: str) -> dict:
    for r in table.rows:
        if r[0].text == label:
            return dict(zip(table.columns, (c.text for c in r)))
    raise AssertionError(f"no row {label}")


def glance(group) -> str:
    ((_, items),) = findings(group)
    return "; ".join(text for text, _ in items)


def noisy(rate: float, rel: float, n: int = 25) -> list[float]:
    """Step times whose batch-means interval of steps/s is about +-rel: five blocks of five, block means
    alternating around 1/rate (batch means sees the blocks, as it should for autocorrelated steps)."""
    step = 1 / rate
    offsets = [+1, -1, +1, -1, 0]
    return [step * (1 + rel * 1.6 * o) for o in offsets for _ in range(n // 5)]


def test_a_two_percent_difference_with_five_percent_intervals_is_not_significant_and_no_fastest_is_named(tmp_path):
    group = group_of(tmp_path, cell("lora", 2.0, ci=(1.90, 2.10)), cell("qlora", 2.04, ci=(1.94, 2.14)))
    speed_vs_lora = row(tables.per_method(group), "qlora 4-bit")[f"Speed vs LoRA {UP}"]
    assert speed_vs_lora.startswith("+2% \u00b1") and speed_vs_lora.endswith(", n.s.")
    assert "n.s." in row(tables.speed_matrix(group), "llama2-7b")["qlora 4-bit"]
    text = glance(group)
    assert "fastest: tie (within noise): qlora 4-bit 2.04 \u00b10.10 steps/s, lora 2.00 \u00b10.10 steps/s" in text
    assert "fastest: qlora" not in text and "fastest: lora," not in text


def test_older_records_get_their_interval_from_their_step_times(tmp_path):
    times_a, times_b = noisy(2.0, 0.05), noisy(2.04, 0.05)
    group = group_of(tmp_path, cell("lora", 25 / sum(times_a), step_times=times_a),
                     cell("qlora", 25 / sum(times_b), step_times=times_b))
    lora = next(r for r in group.records if r["method"] == "lora")
    est = lora.est["steps"]
    assert est.method.startswith("one run: batch means") and 0.03 < est.rel_half_width < 0.2
    assert row(tables.per_method(group), "lora")[f"Steps/s {UP}"].startswith("2.00 \u00b1")
    assert row(tables.per_method(group), "qlora 4-bit")[f"Speed vs LoRA {UP}"].endswith(", n.s.")
    assert "fastest: tie (within noise)" in glance(group)


def test_a_forty_percent_difference_with_tight_intervals_is_established_and_named(tmp_path):
    group = group_of(tmp_path, cell("lora", 2.0, ci=(1.98, 2.02)), cell("qlora", 1.2, ci=(1.19, 1.21)))
    speed_vs_lora = row(tables.per_method(group), "qlora 4-bit")[f"Speed vs LoRA {UP}"]
    assert speed_vs_lora == "\u221240% \u00b10.8%"
    assert "fastest: lora, 2.00 \u00b10.020 steps/s" in glance(group)


def test_every_rate_of_a_row_comes_from_the_repeats_mean(tmp_path):
    """LoRA-7B on the H100: 3 repeats; the record's timing block is the median repeat (2.422 steps/s,
    4,960 tokens/s), the repeats' mean 2.452 steps/s. Steps/s, tokens/s and MFU all from the mean."""
    if not H100_LORA_7B.exists():
        pytest.skip("no committed H100 records in this checkout")
    raw = json.loads(H100_LORA_7B.read_text())
    assert raw["timing"]["tokens_per_s"] == pytest.approx(4960.4, abs=0.1)  # the median repeat, not shown
    (tmp_path / "lora.json").write_text(json.dumps(raw))
    (group,) = build_groups(load_records([tmp_path], warn=lambda m: None))
    rec = group.records[0]
    steps, tokens = rec.est["steps"], rec.est["tokens"]
    assert steps.value == pytest.approx(2.452, abs=1e-3) and tokens.value == pytest.approx(2.452 * 2048, rel=1e-3)
    assert tokens.lo / steps.lo == pytest.approx(2048) and tokens.hi / steps.hi == pytest.approx(2048)
    shown = row(tables.per_method(group), "lora")
    assert shown["Rates from"] == "mean of 3"
    assert shown[f"Steps/s {UP}"].startswith("2.45 \u00b1") and shown[f"Tokens/s {UP}"].startswith("5,022 \u00b1")
    flops = raw["preflight"]["flops"]["model_flops"]
    assert shown[f"MFU (%) {UP}"].startswith(f"{100 * flops * steps.value / 989e12:.1f} \u00b1")
    # the same rule without tokens in the stats: steps/s's estimate times the run's tokens per step
    del raw["repeats"]["stats"]["tokens_per_s"]
    (tmp_path / "lora.json").write_text(json.dumps(raw))
    (group,) = build_groups(load_records([tmp_path], warn=lambda m: None))
    assert group.records[0].est["tokens"].value == pytest.approx(steps.value * 2048, rel=1e-6)


def test_one_cpu_peak_has_no_interval_and_names_no_lowest_memory(tmp_path):
    group = group_of(tmp_path, cell("full", 2.0, ci=(1.98, 2.02), peak=600_000_000, device="cpu"),
                     cell("lora", 2.0, ci=(1.98, 2.02), peak=500_000_000, device="cpu"))
    assert row(tables.per_method(group), "lora")[f"Memory reduction vs full FT {UP}"] == "+17% (1 run, no interval)"
    text = glance(group)
    assert "lowest peak memory: none named (1 run each, no interval)" in text
    assert "lowest peak memory: lora," not in text


def test_one_cuda_peak_is_exact_and_its_lowest_is_named(tmp_path):
    group = group_of(tmp_path, cell("full", 2.0, ci=(1.98, 2.02), peak=60_000_000_000),
                     cell("lora", 2.0, ci=(1.98, 2.02), peak=18_000_000_000))
    assert row(tables.per_method(group), "lora")[f"Memory reduction vs full FT {UP}"] == "+70%"
    assert "lowest peak memory: lora, 18.0 GB" in glance(group)


def test_quality_from_one_seed_names_no_best_but_established_seeds_do(tmp_path):
    one = group_of(tmp_path, cell("full", 2.0, quality=0.826), cell("lora", 2.0, quality=0.761))
    assert "best quality: none named (1 seed each, no interval): full 82.6 acc, lora 76.1 acc" in glance(one)
    assert row(tables.per_method(one), "full")[f"Quality (0-100) {UP}"] == "82.6 acc (1 seed)"
    seeded = tmp_path / "seeded"
    seeded.mkdir()
    apart = group_of(seeded, cell("full", 2.0, seeds=[0.83, 0.84, 0.82]), cell("lora", 2.0, seeds=[0.76, 0.77, 0.75]))
    assert "best quality: full, 83.0 \u00b12.5 acc" in glance(apart)
    assert row(tables.per_method(apart), "full")[f"Quality (0-100) {UP}"] == "83.0 \u00b12.5 acc (3 seeds)"
    close = tmp_path / "close"
    close.mkdir()
    tied = group_of(close, cell("full", 2.0, seeds=[0.83, 0.80, 0.77]), cell("lora", 2.0, seeds=[0.79, 0.80, 0.78]))
    assert "best quality: none named (differences n.s., not established): full 80.0 \u00b17.5 acc, lora" in glance(tied)


def test_markdown_and_html_show_the_intervals_and_the_tie(tmp_path):
    from bench.report.build import build

    records = tmp_path / "records"
    records.mkdir()
    group_of(records, cell("lora", 2.0, ci=(1.90, 2.10)), cell("qlora", 2.04, ci=(1.94, 2.14)))
    out = build([records], tmp_path / "report", warn=lambda m: None)
    md, html = (out / "report.md").read_text(), (out / "report.html").read_text()
    for text in (md, html):
        assert "fastest: tie (within noise)" in text and "2.04 \u00b10.10" in text and ", n.s." in text
        assert "Rates from" in text and "mean of N" in text


def test_a_wide_lopsided_interval_reads_as_its_range(tmp_path):
    group = group_of(tmp_path, cell("lora", 2.0, ci=(1.6, 2.6)), cell("qlora", 3.6, ci=(3.0, 4.6)))
    text = row(tables.per_method(group), "qlora 4-bit")[f"Speed vs LoRA {UP}"]
    low, high = text.removeprefix("+80% (").removesuffix(")").split("..")
    assert low.startswith("+") and high.startswith("+") and int(low[1:-1]) < 80 < int(high[1:-1])
