"""Reports that scale (issue 20): figures aggregate per (method label, model), so what they draw does not grow
with the number of records; a 1,000-record report stays a small, self-contained HTML. No timing here: the
times are benchmarks/scale.py's."""
from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

import pytest

from bench.report import blocks, figures, figures_quality
from bench.report.build import build
from bench.report.figure_cells import cell_point, median_interval, shown_labels
from bench.report.groups import build_groups, method_base
from bench.report.load import load_records
from bench.stats import Estimate

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks.scale import synthesize  # noqa: E402

DRAWERS = (figures.memory_vs_size, figures.speed_bars, figures.breakdown_bars)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """Record sets of 42 (each committed H100 record twice) and 1,000 records."""
    root = tmp_path_factory.mktemp("scale")
    return {n: synthesize(n, root / f"set-{n}") and root / f"set-{n}" for n in (42, 1000)}


def artists(fig) -> int:
    """What a figure draws: lines, bars and other patches, collections (error bars), texts, legend entries."""
    count = 0
    for ax in fig.axes:
        count += len(ax.lines) + len(ax.patches) + len(ax.collections) + len(ax.texts)
        legend = ax.get_legend()
        count += len(legend.get_texts()) if legend else 0
    return count


def drawn(folder: Path, tmp_path: Path, monkeypatch) -> dict[str, int]:
    """Each figure of the folder's one hardware group, by name: its artist count (nothing saved)."""
    captured: dict[str, int] = {}

    def fake_save(fig, out_dir, stem):
        captured[stem] = artists(fig)  # <hardware slug>-<figure name>: the same slug in both sets
        return tmp_path / f"{stem}.png"

    monkeypatch.setattr(figures, "save", fake_save)
    (group,) = build_groups(load_records([folder], warn=lambda m: None))
    for draw in DRAWERS:
        draw(group, tmp_path)
    return captured


def test_median_interval_is_the_order_statistic_interval():
    assert median_interval([3.0]) == (3.0, 3.0, 3.0)
    assert median_interval([4.0, 1.0, 3.0, 2.0]) == (2.5, 1.0, 4.0)  # below 6 values: the range
    assert median_interval([float(i) for i in range(1, 21)]) == (10.5, 6.0, 15.0)  # the textbook x(6)..x(15)
    assert median_interval([float(i) for i in range(1, 101)]) == (50.5, 40.0, 61.0)


def test_cell_point_keeps_a_lone_record_interval_and_drops_infinite_bounds():
    own = Estimate(2.0, 1.8, 2.2, 1, "batch means")
    assert cell_point([own]) is own
    assert not cell_point([Estimate(2.0, 1.0, float("inf"))]).has_interval
    point = cell_point([Estimate(v) for v in (1.0, 2.0, 3.0, 10.0, 4.0, 5.0)])
    assert (point.value, point.lo, point.hi, point.n) == (3.5, 1.0, 10.0, 6)


def test_labels_past_the_limit_keep_every_method_then_those_with_most_records(synthetic):
    recs = build_groups(load_records([synthetic[1000]], warn=lambda m: None))[0].records
    bases = {method_base(r) for r in recs}
    counts = Counter(r["label"] for r in recs)
    one_each = shown_labels(recs, limit=len(bases))
    assert {method_base(next(r for r in recs if r["label"] == lab)) for lab in one_each} == bases
    for lab in one_each:  # each method's best-represented label
        base = method_base(next(r for r in recs if r["label"] == lab))
        assert counts[lab] == max(c for other, c in counts.items()
                                  if method_base(next(r for r in recs if r["label"] == other)) == base)
    eight = shown_labels(recs)
    assert len(eight) == 8 < len(counts) and set(one_each) <= set(eight)
    extra = [lab for lab in eight if lab not in one_each]
    assert min(counts[lab] for lab in extra) >= max(c for lab, c in counts.items() if lab not in eight)
    few = shown_labels(recs, max_cells=10)
    assert 1 <= len({(r["label"], r["model"]) for r in recs if r["label"] in few}) <= 10


def test_figures_draw_no_more_at_1000_records_than_at_42(synthetic, tmp_path, monkeypatch):
    small = drawn(synthetic[42], tmp_path, monkeypatch)
    large = drawn(synthetic[1000], tmp_path, monkeypatch)
    assert set(small) == set(large) and len(large) == 3
    for name, count in large.items():
        # bounded by labels x models (8 x 6 cells at most, a few artists each), never by records
        assert count <= 8 * 6 * 6, (name, count)
        assert count <= 3 * small[name], (name, count, small[name])


def test_each_figure_is_drawn_once_in_the_one_format_shown(tmp_path, monkeypatch):
    """One Figure.draw per PNG: no second pass for a tight bounding box, no SVG beside it."""
    from matplotlib.figure import Figure

    draws: list[int] = []
    real = Figure.draw

    def counting(fig, renderer):
        draws.append(id(fig))
        return real(fig, renderer)

    monkeypatch.setattr(Figure, "draw", counting)
    monkeypatch.setattr(blocks, "build_blocks", lambda records: [])  # report-wide tables, no figures
    out = build([ROOT / "results" / "gpu-h100"], tmp_path / "report", warn=lambda m: None)
    shown = sorted(p.name for p in (out / "figures").iterdir())
    assert len(shown) >= 4 and all(name.endswith(".png") for name in shown)
    assert len(draws) == len(set(draws)) == len(shown)
    assert (out / "report.html").read_text().count("data:image/png;base64,") == len(shown)


def test_a_1000_record_report_is_one_small_self_contained_html(synthetic, tmp_path):
    out = build([synthetic[1000]], tmp_path / "report", warn=lambda m: None)
    html = (out / "report.html").read_text()
    assert (out / "report.html").stat().st_size < 2_000_000
    assert html.count("<details") >= 10  # long tables collapse by model and page, readable without a script
    assert html.count('<tr id="rec-') == 1000  # every record's row is still in the file
    # nothing fetched or run: no script, no stylesheet link, no remote image or link (a cited URL as text is fine)
    assert not re.search(r"<script|<link|(src|href)=\"https?://|url\(", html, re.I)
    assert html.count("data:image/png;base64,") == len(list((out / "figures").glob("*.png")))
    assert all(f.stat().st_size < 400_000 for f in (out / "figures").iterdir())
    assert figures_quality  # the quality figures draw from the same palette and draw()
