"""The arithmetic behind every task metric, as pure functions of plain Python lists (no numpy, scipy or sklearn).

Conventions (sklearn's / scipy's where they define one, stated where they don't):
- A score whose denominator is zero is 0.0: Matthews correlation on constant predictions or labels, F1 with no
  positive prediction and no positive label, Pearson/Spearman when either side is constant (scipy gives nan).
- Spearman ranks ties by their average rank (scipy's rankdata "average"), then takes Pearson on the ranks.
- SQuAD scores follow the official evaluation scripts (v1.1 and v2.0) to the letter, in percent.
This file is also copied next to the evaluate modules that import it (`from .scores import ...`).
"""
from __future__ import annotations

import collections
import math
import re
import string
from typing import Any, Sequence

ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
PUNCTUATION = frozenset(string.punctuation)


def check_pairs(predictions: Sequence[Any], references: Sequence[Any], what: str) -> None:
    """Raise ValueError unless predictions and references are non-empty and of equal length."""
    if len(predictions) == 0 or len(references) == 0:
        raise ValueError(f"{what}: needs at least one prediction and reference (got "
                         f"{len(predictions)} predictions, {len(references)} references)")
    if len(predictions) != len(references):
        raise ValueError(f"{what}: {len(predictions)} predictions but {len(references)} references")


def accuracy(predictions: Sequence[int], references: Sequence[int]) -> float:
    check_pairs(predictions, references, "accuracy")
    return sum(int(p == r) for p, r in zip(predictions, references)) / len(references)


def binary_f1(predictions: Sequence[int], references: Sequence[int], positive: int = 1) -> float:
    """F1 of the positive class: 2tp / (2tp + fp + fn); 0.0 when there is no positive prediction or label."""
    check_pairs(predictions, references, "f1")
    unknown = {v for v in (*predictions, *references) if v not in (0, 1)}
    if unknown:
        raise ValueError(f"f1: binary labels must be 0 or 1 (got {sorted(unknown)[:5]})")
    tp = sum(1 for p, r in zip(predictions, references) if p == positive and r == positive)
    fp = sum(1 for p, r in zip(predictions, references) if p == positive and r != positive)
    fn = sum(1 for p, r in zip(predictions, references) if p != positive and r == positive)
    denominator = 2 * tp + fp + fn
    return 2 * tp / denominator if denominator else 0.0


def matthews_correlation(predictions: Sequence[int], references: Sequence[int]) -> float:
    """Matthews correlation (Gorodkin's multi-class form; the usual tp/tn/fp/fn formula for two classes).

    (c*s - sum_k p_k*t_k) / sqrt((s^2 - sum_k p_k^2) * (s^2 - sum_k t_k^2)), with c correct, s total,
    p_k / t_k how often class k is predicted / true. 0.0 when either side is constant, as sklearn.
    """
    check_pairs(predictions, references, "matthews_correlation")
    s = len(references)
    c = sum(int(p == r) for p, r in zip(predictions, references))
    predicted = collections.Counter(predictions)
    true = collections.Counter(references)
    covariance = c * s - sum(predicted[k] * true[k] for k in set(predicted) | set(true))
    variance = (s * s - sum(n * n for n in predicted.values())) * (s * s - sum(n * n for n in true.values()))
    return covariance / math.sqrt(variance) if variance else 0.0


def pearson(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Pearson's r; 0.0 when either side has zero variance (scipy returns nan there)."""
    check_pairs(xs, ys, "pearson")
    n = len(xs)
    mean_x, mean_y = math.fsum(xs) / n, math.fsum(ys) / n
    dx = [x - mean_x for x in xs]
    dy = [y - mean_y for y in ys]
    sxx, syy = math.fsum(d * d for d in dx), math.fsum(d * d for d in dy)
    if sxx == 0.0 or syy == 0.0:
        return 0.0
    r = math.fsum(a * b for a, b in zip(dx, dy)) / math.sqrt(sxx * syy)
    return max(-1.0, min(1.0, r))


def average_ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks; tied values share the mean of the ranks they span ([10, 20, 20, 30] -> [1, 2.5, 2.5, 4])."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for position in range(start, end + 1):
            ranks[order[position]] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def spearman(xs: Sequence[float], ys: Sequence[float]) -> float:
    check_pairs(xs, ys, "spearman")
    return pearson(average_ranks(xs), average_ranks(ys))


def normalize_answer(text: str) -> str:
    """Official SQuAD normalisation: lower-case, drop punctuation, drop articles a/an/the, collapse whitespace."""
    text = "".join(ch for ch in text.lower() if ch not in PUNCTUATION)
    return " ".join(ARTICLES.sub(" ", text).split())


def squad_exact(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def squad_f1(prediction: str, gold: str, version: str) -> float:
    """Token-overlap F1 after normalisation. v2 scores two empty answers 1.0 (an unanswerable question
    answered with ""); v1.1's script scores any empty side 0.0."""
    pred_tokens, gold_tokens = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if version == "v2" and (not pred_tokens or not gold_tokens):
        return float(pred_tokens == gold_tokens)
    same = sum((collections.Counter(pred_tokens) & collections.Counter(gold_tokens)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_tokens), same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def squad_scores(predictions: dict[str, str], golds: dict[str, list[str]], version: str) -> dict[str, float]:
    """Exact match and F1 in percent over the questions in `golds` (id -> gold answer texts; [] = unanswerable),
    each the max over the gold answers. v1: exact_match, f1, total. v2 (official names): exact, f1, total and,
    for the question kinds present, HasAns_exact/_f1/_total and NoAns_exact/_f1/_total."""
    if version not in ("v1", "v2"):
        raise ValueError(f"squad: version must be v1 or v2 (got {version!r})")
    if not golds:
        raise ValueError("squad: needs at least one prediction and reference (got none)")
    missing = sorted(set(golds) - set(predictions))
    extra = sorted(set(predictions) - set(golds))
    if missing or extra:
        raise ValueError(f"squad: prediction ids don't match reference ids (missing {missing[:5]}, "
                         f"unknown {extra[:5]})")
    exact, f1 = {}, {}
    for qid, answers in golds.items():
        if version == "v2":  # the v2 script drops golds that normalise to "" and scores a no-answer as [""]
            answers = [a for a in answers if normalize_answer(a)] or [""]
        elif not answers:
            raise ValueError(f"squad v1: question {qid!r} has no gold answer (unanswerable questions are v2)")
        exact[qid] = max(squad_exact(predictions[qid], a) for a in answers)
        f1[qid] = max(squad_f1(predictions[qid], a, version) for a in answers)

    def mean_percent(values: dict[str, float], ids: list[str]) -> float:
        return 100.0 * math.fsum(values[i] for i in ids) / len(ids)

    ids = list(golds)
    if version == "v1":
        return {"exact_match": mean_percent(exact, ids), "f1": mean_percent(f1, ids), "total": len(ids)}
    scores: dict[str, float] = {"exact": mean_percent(exact, ids), "f1": mean_percent(f1, ids), "total": len(ids)}
    for prefix, subset in (("HasAns", [i for i in ids if golds[i]]), ("NoAns", [i for i in ids if not golds[i]])):
        if subset:
            scores.update({f"{prefix}_exact": mean_percent(exact, subset), f"{prefix}_f1": mean_percent(f1, subset),
                           f"{prefix}_total": len(subset)})
    return scores
