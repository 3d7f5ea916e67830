"""Which evaluate module scores each task, the keys it reports, and the one number a report shows (`main`).

Main keys follow the GLUE leaderboard (Wang et al. 2019): a task with two metrics scores as their unweighted
mean, reported here as `combined_score` (MRPC and QQP: F1 and accuracy; STS-B: Pearson and Spearman); CoLA is
Matthews correlation, every other GLUE task accuracy (MNLI matched and mismatched are separate entries).
SQuAD's main key is F1, as on its leaderboard. GLUE scores are fractions in [0, 1] (-1..1 for correlations);
SQuAD scores are percentages, as the official scripts print them. Every score is higher-is-better; counts
(`total`, `*_total`) are not scores and carry no direction.
This file is also copied next to the evaluate modules that import it (`from .specs import ...`).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MetricSpec:
    module: str  # file in bench/tasks/metrics/ that evaluate.load reads
    config_name: str  # what that module computes for this entry
    scores: tuple[str, ...]  # every score key compute() returns (counts excluded)
    main: str  # the single number a report shows

    @property
    def higher_is_better(self) -> dict[str, bool]:
        return {key: True for key in self.scores}


def _glue(config_name: str, scores: tuple[str, ...], main: str) -> MetricSpec:
    return MetricSpec("glue_metric.py", config_name, scores, main)


ACCURACY = ("accuracy",)
F1_ACCURACY = ("f1", "accuracy", "combined_score")
CORRELATIONS = ("pearson", "spearmanr", "combined_score")
SQUAD_V2_SCORES = ("exact", "f1", "HasAns_exact", "HasAns_f1", "NoAns_exact", "NoAns_f1")

METRICS: dict[str, MetricSpec] = {
    "cola": _glue("cola", ("matthews_correlation",), "matthews_correlation"),
    "sst2": _glue("sst2", ACCURACY, "accuracy"),
    "mrpc": _glue("mrpc", F1_ACCURACY, "combined_score"),
    "qqp": _glue("qqp", F1_ACCURACY, "combined_score"),
    "stsb": _glue("stsb", CORRELATIONS, "combined_score"),
    "mnli": _glue("mnli", ACCURACY, "accuracy"),
    "mnli_matched": _glue("mnli_matched", ACCURACY, "accuracy"),
    "mnli_mismatched": _glue("mnli_mismatched", ACCURACY, "accuracy"),
    "qnli": _glue("qnli", ACCURACY, "accuracy"),
    "rte": _glue("rte", ACCURACY, "accuracy"),
    "wnli": _glue("wnli", ACCURACY, "accuracy"),
    "squad": MetricSpec("squad_metric.py", "v1", ("exact_match", "f1"), "f1"),
    "squad_v2": MetricSpec("squad_metric.py", "v2", SQUAD_V2_SCORES, "f1"),
}


def spec_for(module: str, config_name: str) -> MetricSpec:
    """The entry a module instance computes, or ValueError listing the configs that module knows."""
    for spec in METRICS.values():
        if spec.module == module and spec.config_name == config_name:
            return spec
    known = sorted(s.config_name for s in METRICS.values() if s.module == module)
    raise ValueError(f"{module}: unknown config_name {config_name!r} (choose from {', '.join(known)})")


class SpecBacked:
    """The spec entry, main key and directions a metric module exposes (the class sets MODULE; evaluate
    gives the instance its config_name)."""

    MODULE = ""
    config_name: str

    @property
    def spec(self) -> MetricSpec:
        return spec_for(self.MODULE, self.config_name)

    @property
    def main(self) -> str:
        return self.spec.main

    @property
    def higher_is_better(self) -> dict[str, bool]:
        return self.spec.higher_is_better
