"""bench/stats.py against hand-computed figures and synthetic series whose truth is known."""
import math
import random
import statistics

import pytest

from bench import stats
from bench.stats import Estimate


def naive_interval(xs):
    """The iid t interval of the mean (what batch means replaces)."""
    n = len(xs)
    half = stats.t95(n - 1) * statistics.stdev(xs) / math.sqrt(n)
    return statistics.fmean(xs) - half, statistics.fmean(xs) + half


def ar1(n, phi, rng, mean=1.0, sd=0.05):
    """An autocorrelated step-time series (AR(1), stationary start) around a known mean."""
    x, out = rng.gauss(0, sd / math.sqrt(1 - phi * phi)), []
    for _ in range(n):
        x = phi * x + rng.gauss(0, sd)
        out.append(mean + x)
    return out


def test_t95_table_and_normal_tail():
    assert stats.t95(1) == 12.706 and stats.t95(2) == 4.303 and stats.t95(30) == 2.042
    assert stats.t95(31) == 1.96 and stats.t95(0) == 1.96


def test_batch_means_by_hand():
    # 9 steps: k = 3 batches of 3: means 2, 5, 8; stdev 3; t(2 df) = 4.303; half = 4.303 * 3 / sqrt(3)
    times = [1, 2, 3, 4, 5, 6, 7, 8, 9]
    got = stats.step_time_interval(times)
    assert got.value == 5.0 and got.n == 9
    assert (got.lo, got.hi) == pytest.approx((5 - 4.303 * math.sqrt(3), 5 + 4.303 * math.sqrt(3)))
    assert "3 contiguous batches of 3" in got.method and "2 df" in got.method


def test_batch_means_drops_the_earliest_remainder_from_the_batches_only():
    # 10 steps: k = 3 batches of 3 over steps 1..9; the mean still covers all 10 steps
    times = [100.0] + [1, 1, 1, 2, 2, 2, 3, 3, 3]
    got = stats.step_time_interval(times)
    assert got.value == pytest.approx(sum(times) / 10)
    half = stats.t95(2) * 1.0 / math.sqrt(3)  # batch means 1, 2, 3
    assert got.hi - got.lo == pytest.approx(2 * half)


def test_fewer_than_four_steps_have_no_interval():
    assert stats.step_time_interval([1.0, 1.1, 0.9]) is None
    assert stats.rate_interval([1.0, 1.1, 0.9]) is None
    assert stats.combine_runs([]) is None


def test_rate_interval_is_the_step_time_interval_inverted():
    times = [0.5, 0.52, 0.49, 0.51, 0.5, 0.53, 0.48, 0.5, 0.5]
    st, rate = stats.step_time_interval(times), stats.rate_interval(times, units_per_step=8)
    assert rate.value == pytest.approx(8 / st.value)
    assert (rate.lo, rate.hi) == pytest.approx((8 / st.hi, 8 / st.lo))
    assert rate.lo < rate.value < rate.hi
    scaled = stats.rate_interval(times).scaled(8)  # tokens/s = steps/s x tokens per step, interval too
    assert (scaled.value, scaled.lo, scaled.hi) == pytest.approx((rate.value, rate.lo, rate.hi))


def test_rate_interval_upper_bound_is_infinite_when_the_step_time_interval_reaches_zero():
    times = [0.01, 1.0, 0.01, 1.0, 0.01, 1.0, 0.01, 1.0, 5.0]
    st = stats.step_time_interval(times)
    assert st.lo <= 0
    assert stats.rate_interval(times).hi == math.inf


def test_identical_steps_give_a_zero_width_interval():
    got = stats.rate_interval([0.25] * 16)
    assert got.value == 4.0 and got.lo == got.hi == 4.0 and got.rel_half_width == 0.0


def test_batch_means_is_wider_than_the_naive_interval_on_autocorrelated_steps_and_covers_more():
    rng = random.Random(1)
    naive_hits = bm_hits = wider = 0
    reps = 300
    for _ in range(reps):
        xs = ar1(100, 0.8, rng)
        lo, hi = naive_interval(xs)
        bm = stats.step_time_interval(xs)
        naive_hits += lo <= 1.0 <= hi
        bm_hits += bm.lo <= 1.0 <= bm.hi
        wider += (bm.hi - bm.lo) > (hi - lo)
    assert wider / reps > 0.9  # correlated steps: batch means widens the interval almost always
    assert naive_hits / reps < 0.7  # the iid interval is far too narrow here ...
    assert bm_hits / reps > 0.8  # ... batch means comes near its nominal 95%
    assert bm_hits - naive_hits > 0.2 * reps


def test_batch_means_on_independent_steps_covers_about_95_percent():
    rng = random.Random(2)
    hits = 0
    for _ in range(400):
        st = stats.step_time_interval([rng.gauss(1.0, 0.1) for _ in range(64)])
        hits += st.lo <= 1.0 <= st.hi
    assert 0.90 <= hits / 400 <= 0.99


def test_mean_interval_by_hand():
    got = stats.mean_interval([1.0, 2.0, 3.0])
    assert got.value == 2.0 and got.n == 3
    assert (got.lo, got.hi) == pytest.approx((2 - 4.303 / math.sqrt(3), 2 + 4.303 / math.sqrt(3)))
    one = stats.mean_interval([5.0])
    assert one.value == 5.0 and not one.has_interval and one.rel_half_width is None


def test_outliers_are_counted_and_listed():
    times = [1.0, 1.01, 0.99, 1.0, 1.02, 0.98, 1.0, 3.0, 1.01, 0.2]
    got = stats.outlier_steps(times)
    assert got["count"] == 2 and got["indices"] == [7, 9]
    assert "3 scaled MADs" in got["rule"] and "not dropped" in got["rule"]
    assert stats.outlier_steps([1.0, 1.0, 1.0, 1.5])["indices"] == [3]  # MAD 0: anything off the median
    assert stats.outlier_steps([1.0, 9.0])["count"] == 0  # too few steps to say
    assert stats.outlier_steps(times, mads=1000)["count"] == 0


def test_combine_runs_uses_the_between_run_spread_when_it_dominates():
    quiet = [[0.5] * 8, [0.6] * 8, [0.7] * 8]  # no within-run noise; run means 0.5, 0.6, 0.7
    got = stats.combine_runs(quiet, units_per_step=2.0)
    half = stats.t95(2) * 0.1 / math.sqrt(3)
    assert got.value == pytest.approx(2 / 0.6)
    assert (got.lo, got.hi) == pytest.approx((2 / (0.6 + half), 2 / (0.6 - half)))
    assert got.n == 3 and "between-run" in got.method


def test_combine_runs_falls_back_to_the_within_run_noise_when_runs_agree_by_chance():
    rng = random.Random(3)
    runs = [[rng.gauss(1.0, 0.2) for _ in range(16)] for _ in range(2)]
    shift = statistics.fmean(runs[0]) - statistics.fmean(runs[1])
    runs[1] = [t + shift for t in runs[1]]  # identical run means: between-run spread 0
    got = stats.combine_runs(runs)
    assert "pooled within-run" in got.method
    assert got.lo < got.value < got.hi
    widths = [(e.hi - e.lo) for e in map(stats.rate_interval, runs)]
    assert got.hi - got.lo < max(widths)  # two runs know more than the noisier one alone


def test_combine_runs_of_one_run_is_that_runs_interval():
    times = [0.3, 0.31, 0.29, 0.3, 0.32, 0.3]
    assert stats.combine_runs([times], 4.0) == stats.rate_interval(times, 4.0)


def test_ratio_established_and_not():
    fast, slow = Estimate(2.0, 1.95, 2.05), Estimate(1.0, 0.97, 1.03)
    r = stats.ratio(slow, fast)
    assert r.value == 0.5 and r.established and r.lo < 0.5 < r.hi
    assert r.text() == "-50% ±2%"
    hb, ha = math.log(1 / 0.97), math.log(2.0 / 1.95)  # the wider side of each log interval
    assert (r.lo, r.hi) == pytest.approx((0.5 * math.exp(-math.hypot(hb, ha)), 0.5 * math.exp(math.hypot(hb, ha))),
                                         rel=1e-9)
    tie = stats.ratio(Estimate(1.03, 0.95, 1.11), Estimate(1.0, 0.95, 1.05))
    assert tie.status == "n.s." and not tie.established and tie.text().endswith(", n.s.")
    bare = stats.ratio(Estimate(1.0), Estimate(2.0, 1.9, 2.1))
    assert bare.status == "no interval" and bare.text() == "-50% (no interval)"


def test_delta_equivalent_ns_and_established():
    eq = stats.delta(Estimate(80.2, 79.9, 80.5), Estimate(80.0, 79.8, 80.2))
    assert eq.status == "equivalent" and eq.text() == "+0.2 ±0.4 pts, equivalent"
    ns = stats.delta(Estimate(82.6, 79.0, 86.2), Estimate(76.1, 70.0, 82.2))  # one seed each would say "best"
    assert ns.status == "n.s."
    est = stats.delta(Estimate(90.0, 89.5, 90.5), Estimate(80.0, 79.5, 80.5))
    assert est.established and est.lo > 0
    assert stats.delta(Estimate(1.0), Estimate(2.0, 1.0, 3.0)).status == "no interval"
    wide = stats.delta(Estimate(80.0, 78.0, 82.0), Estimate(80.0, 78.0, 82.0))
    assert wide.status == "n.s."  # no difference seen, but not shown equivalent either


def test_best_names_a_leader_only_when_established():
    clear = {"lora": Estimate(2.0, 1.9, 2.1), "qlora": Estimate(1.2, 1.1, 1.3), "full": Estimate(1.5, 1.4, 1.6)}
    assert stats.best(clear, higher_is_better=True) == ("lora", ["lora"])
    assert stats.best(clear, higher_is_better=False) == ("qlora", ["qlora"])
    close = {**clear, "dora": Estimate(1.95, 1.8, 2.1)}
    assert stats.best(close, higher_is_better=True) == (None, ["lora", "dora"])
    quality = {"full": Estimate(82.6, 78.0, 87.2), "lora": Estimate(76.1, 71.0, 81.2)}
    assert stats.best(quality, True, kind="delta") == (None, ["full", "lora"])
    assert stats.best({"lora": Estimate(2.0, 1.9, 2.1)}, True) == (None, ["lora"])


def test_estimate_json_round_trip():
    e = Estimate(2.5, 2.4, 2.6, 20, "batch means")
    assert stats.from_json(e.to_json()) == e
    assert stats.from_json(None) is None and stats.from_json({"value": None}) is None
    assert Estimate(3.0).to_json()["ci95"] is None
    assert Estimate(2.0, 1.0, 3.0).scaled(-1.0) == Estimate(-2.0, -3.0, -1.0)
