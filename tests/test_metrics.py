"""Task metrics (CPU, offline): the arithmetic against values worked out by hand in the comments, and the local
evaluate modules loaded by path with HF_HUB_OFFLINE=1."""
import math
import subprocess
import sys

import pytest

from bench.tasks import metrics
from bench.tasks.metrics import scores


def approx(value: float):
    return pytest.approx(value, abs=1e-9)


# --- arithmetic --------------------------------------------------------------------------------------------

def test_matthews_binary_by_hand():
    # pred 1 1 1 0 0 1 / gold 1 0 1 0 1 1: tp=3 fp=1 fn=1 tn=1
    # (3*1 - 1*1) / sqrt((3+1)(3+1)(1+1)(1+1)) = 2 / 8
    assert scores.matthews_correlation([1, 1, 1, 0, 0, 1], [1, 0, 1, 0, 1, 1]) == approx(0.25)
    assert scores.matthews_correlation([0, 1, 0, 1], [1, 0, 1, 0]) == approx(-1.0)
    assert scores.matthews_correlation([0, 1, 0, 1], [0, 1, 0, 1]) == approx(1.0)


def test_matthews_multiclass_by_hand():
    # pred 0 1 2 0 / gold 0 1 1 2: s=4, c=2; predicted counts 2,1,1; true counts 1,2,1
    # (c*s - (2*1 + 1*2 + 1*1)) / sqrt((16 - 6)(16 - 6)) = 3 / 10
    assert scores.matthews_correlation([0, 1, 2, 0], [0, 1, 1, 2]) == approx(0.3)


def test_matthews_constant_predictions_is_zero():
    # the denominator is 0 when every prediction (or every label) is the same class: defined as 0.0, as sklearn
    assert scores.matthews_correlation([1, 1, 1, 1], [1, 0, 1, 0]) == 0.0
    assert scores.matthews_correlation([1, 0, 1, 0], [0, 0, 0, 0]) == 0.0


def test_f1_and_accuracy_by_hand():
    # pred 1 0 1 1 0 / gold 1 1 0 1 0: tp=2 fp=1 fn=1 -> F1 = 4 / 6; correct at 0, 3, 4 -> 3 / 5
    assert scores.binary_f1([1, 0, 1, 1, 0], [1, 1, 0, 1, 0]) == approx(2 / 3)
    assert scores.accuracy([1, 0, 1, 1, 0], [1, 1, 0, 1, 0]) == approx(0.6)


def test_f1_without_positive_predictions_is_zero():
    assert scores.binary_f1([0, 0, 0], [1, 0, 1]) == 0.0  # tp = 0 (recall 0, precision 0/0)
    assert scores.binary_f1([0, 0], [0, 0]) == 0.0  # no positive anywhere: 0/0, sklearn's zero_division=0
    with pytest.raises(ValueError, match="0 or 1"):
        scores.binary_f1([2, 0], [1, 0])


def test_pearson_by_hand():
    # x 1 2 3 4 (mean 2.5), y 2 4 5 9 (mean 5): sum dx*dy = 4.5 + 0.5 + 0 + 6 = 11, sxx = 5, syy = 26
    assert scores.pearson([1, 2, 3, 4], [2, 4, 5, 9]) == approx(11 / math.sqrt(130))
    assert scores.pearson([1, 2, 3], [6, 4, 2]) == approx(-1.0)


def test_average_ranks_share_ties():
    assert scores.average_ranks([10, 20, 20, 30]) == [1, 2.5, 2.5, 4]
    assert scores.average_ranks([3, 1, 3, 3]) == [3, 1, 3, 3]  # the three 3s span ranks 2, 3, 4


def test_pearson_and_spearman_with_ties_by_hand():
    xs, ys = [1, 2, 2, 3], [10, 20, 30, 30]
    # Pearson: dx -1 0 0 1, dy -12.5 -2.5 7.5 7.5: 20 / sqrt(2 * 275)
    assert scores.pearson(xs, ys) == approx(20 / math.sqrt(550))
    # Spearman: ranks 1 2.5 2.5 4 and 1 2 3.5 3.5 (mean 2.5 each): 3.75 / sqrt(4.5 * 4.5) = 5/6
    assert scores.spearman(xs, ys) == approx(5 / 6)
    assert scores.spearman([1, 2, 3], [1, 4, 9]) == approx(1.0)  # monotone, not linear


def test_correlation_of_a_constant_is_zero():
    assert scores.pearson([2.0, 2.0, 2.0], [1.0, 2.0, 3.0]) == 0.0
    assert scores.spearman([1.0, 2.0, 3.0], [4.0, 4.0, 4.0]) == 0.0


@pytest.mark.parametrize("fn", [scores.accuracy, scores.binary_f1, scores.matthews_correlation,
                                scores.pearson, scores.spearman])
def test_empty_or_unequal_inputs_are_errors(fn):
    with pytest.raises(ValueError, match="at least one"):
        fn([], [])
    with pytest.raises(ValueError, match="2 predictions but 3 references"):
        fn([1, 0], [1, 0, 1])


def test_squad_normalisation():
    assert scores.normalize_answer("  The  Cat's hat, a (red) one! ") == "cats hat red one"
    assert scores.normalize_answer("An apple\tand\nthe  pear.") == "apple and pear"
    assert scores.normalize_answer("Theory of an Anatomy") == "theory of anatomy"  # whole words only
    assert scores.normalize_answer("the-end") == "theend"  # punctuation goes before articles are looked for


def test_squad_token_f1_by_hand():
    # "eiffel tower in paris" vs "eiffel tower": 2 shared; precision 2/4, recall 1 -> 2 * 0.5 / 1.5
    assert scores.squad_f1("the Eiffel Tower in Paris", "Eiffel Tower", "v1") == approx(2 / 3)
    assert scores.squad_exact("the Eiffel Tower!", "Eiffel tower") == 1.0
    assert scores.squad_f1("", "Paris", "v1") == 0.0
    assert scores.squad_f1("", "", "v2") == 1.0  # v2: no answer given to an unanswerable question
    assert scores.squad_f1("Paris", "", "v2") == 0.0


def test_squad_v2_gold_normalising_to_empty_counts_as_no_answer_like_the_official_script():
    # the v2 script drops gold texts that normalise to "" and then scores against [""]; the question still
    # counts as HasAns (it has an answer entry)
    result = scores.squad_scores({"q": ""}, {"q": ["The"]}, "v2")
    assert result["exact"] == 100.0 and result["HasAns_total"] == 1 and "NoAns_total" not in result


# --- the evaluate modules ------------------------------------------------------------------------------------

def test_glue_modules_by_hand():
    mrpc = metrics.load("mrpc")
    got = mrpc.compute(predictions=[1, 0, 1, 1, 0], references=[1, 1, 0, 1, 0])
    assert got == {"f1": approx(2 / 3), "accuracy": approx(0.6), "combined_score": approx((2 / 3 + 0.6) / 2)}
    assert metrics.load("cola").compute(predictions=[1, 1, 1, 0, 0, 1], references=[1, 0, 1, 0, 1, 1]) == {
        "matthews_correlation": approx(0.25)}
    assert metrics.load("cola").compute(predictions=[1, 1, 1], references=[1, 0, 1]) == {"matthews_correlation": 0.0}
    stsb = metrics.load("stsb").compute(predictions=[1.0, 2.0, 2.0, 3.0], references=[10.0, 20.0, 30.0, 30.0])
    assert stsb["pearson"] == approx(20 / math.sqrt(550))
    assert stsb["spearmanr"] == approx(5 / 6)
    assert stsb["combined_score"] == approx((20 / math.sqrt(550) + 5 / 6) / 2)
    assert metrics.load("mnli_mismatched").compute(predictions=[0, 1, 2, 2], references=[0, 1, 1, 2]) == {
        "accuracy": 0.75}


def test_squad_v1_module_by_hand():
    predictions = [{"id": "a", "prediction_text": "The Eiffel Tower!"},
                   {"id": "b", "prediction_text": "in Paris, France"},
                   {"id": "c", "prediction_text": "1889"}]
    references = [{"id": "a", "answers": {"text": ["Eiffel Tower", "the tower"], "answer_start": [0, 0]}},
                  {"id": "b", "answers": {"text": ["Paris"], "answer_start": [0]}},
                  {"id": "c", "answers": {"text": ["in 1889", "1887"], "answer_start": [0, 3]}}]
    got = metrics.load("squad").compute(predictions=predictions, references=references)
    # a: exact after normalisation (EM 1, F1 1); b: "in paris france" vs "paris" -> p 1/3, r 1, F1 1/2, EM 0;
    # c: max over golds: vs "in 1889" p 1, r 1/2 -> F1 2/3 (vs "1887": 0), EM 0
    assert got == {"exact_match": approx(100 / 3), "f1": approx(100 * (1 + 1 / 2 + 2 / 3) / 3), "total": 3}


def test_squad_v2_module_with_unanswerable_questions_by_hand():
    predictions = [{"id": i, "prediction_text": t} for i, t in
                   [("a", "Ada Voss"), ("b", ""), ("c", ""), ("d", "1931"), ("e", "oil")]]
    golds = {"a": ["Ada Voss"], "b": ["34 metres", "34 metres above the rocks"], "c": [], "d": [],
             "e": ["whale oil"]}
    references = [{"id": i, "answers": {"text": t, "answer_start": [0] * len(t)}} for i, t in golds.items()]
    got = metrics.load("squad_v2").compute(predictions=predictions, references=references)
    # a right (1, 1); b "" for an answerable one (0, 0); c "" for an unanswerable one (1, 1);
    # d an answer to an unanswerable one (0, 0); e "oil" vs "whale oil": p 1, r 1/2 -> F1 2/3, EM 0
    assert got == {"exact": approx(40.0), "f1": approx(100 * (2 + 2 / 3) / 5), "total": 5,
                   "HasAns_exact": approx(100 / 3), "HasAns_f1": approx(100 * (1 + 2 / 3) / 3), "HasAns_total": 3,
                   "NoAns_exact": approx(50.0), "NoAns_f1": approx(50.0), "NoAns_total": 2}


def test_modules_reject_empty_and_mismatched_inputs():
    with pytest.raises(ValueError, match="glue cola: needs at least one prediction"):
        metrics.load("cola").compute(predictions=[], references=[])
    with pytest.raises(ValueError, match="at least one prediction"):
        metrics.load("squad").compute(predictions=[], references=[])
    with pytest.raises(ValueError, match="missing \\['b'\\]"):
        metrics.load("squad").compute(
            predictions=[{"id": "a", "prediction_text": "x"}, {"id": "c", "prediction_text": "x"}],
            references=[{"id": "a", "answers": {"text": ["x"], "answer_start": [0]}},
                        {"id": "b", "answers": {"text": ["x"], "answer_start": [0]}}])
    with pytest.raises(ValueError, match="unknown metric 'glue'"):
        metrics.load("glue")


EXPECTED_MAIN = {"cola": "matthews_correlation", "sst2": "accuracy", "mrpc": "combined_score",
                 "qqp": "combined_score", "stsb": "combined_score", "mnli": "accuracy", "mnli_matched": "accuracy",
                 "mnli_mismatched": "accuracy", "qnli": "accuracy", "rte": "accuracy", "wnli": "accuracy",
                 "squad": "f1", "squad_v2": "f1"}


def test_every_metric_reports_its_keys_main_and_direction():
    assert set(metrics.METRICS) == set(EXPECTED_MAIN)
    squad_refs = [{"id": "p", "answers": {"text": ["x"], "answer_start": [0]}},
                  {"id": "n", "answers": {"text": [], "answer_start": []}}]
    for name, main in EXPECTED_MAIN.items():
        module = metrics.load(name)
        assert module.main == metrics.main_key(name) == main
        assert module.higher_is_better == metrics.higher_is_better(name)
        assert all(module.higher_is_better.values()) and main in module.higher_is_better
        if name.startswith("squad"):
            refs = squad_refs if name == "squad_v2" else squad_refs[:1]
            got = module.compute(predictions=[{"id": r["id"], "prediction_text": "x"} for r in refs], references=refs)
        else:
            values = [1.0, 2.0, 3.0] if name == "stsb" else [0, 1, 1]
            got = module.compute(predictions=values, references=values)
        assert set(module.higher_is_better) <= set(got)


def test_importing_the_task_modules_pulls_in_no_heavy_library():
    code = ("import sys, bench.tasks.metrics, bench.tasks.glue, bench.tasks.squad, bench.tasks.features; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'evaluate', 'datasets', 'transformers'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
