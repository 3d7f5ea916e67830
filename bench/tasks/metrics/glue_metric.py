"""GLUE metrics as a local evaluate module: `evaluate.load(<this file>, config_name=<task>)`.

One module for the whole benchmark, like the hub's `glue` metric, with the task as config_name (cola, sst2,
mrpc, qqp, stsb, mnli, mnli_matched, mnli_mismatched, qnli, rte, wnli); the arithmetic is in scores.py, the
keys and main key per task in specs.py. Use bench.tasks.metrics.load(task) rather than this file directly.
"""
from __future__ import annotations

import datasets
import evaluate

from .scores import accuracy, binary_f1, check_pairs, matthews_correlation, pearson, spearman
from .specs import SpecBacked

_DESCRIPTION = """GLUE (Wang et al. 2019) task metrics, computed without scipy/sklearn: Matthews correlation for
CoLA; F1 of the positive class and accuracy for MRPC and QQP; Pearson and Spearman correlation for STS-B;
accuracy for SST-2, MNLI (matched / mismatched), QNLI, RTE and WNLI. Where a task has two metrics,
`combined_score` is their mean (the task's score on the GLUE leaderboard)."""

_CITATION = """@inproceedings{wang2019glue,
  title={{GLUE}: A Multi-Task Benchmark and Analysis Platform for Natural Language Understanding},
  author={Wang, Alex and Singh, Amanpreet and Michael, Julian and Hill, Felix and Levy, Omer and Bowman, Samuel R.},
  booktitle={International Conference on Learning Representations},
  year={2019}
}"""

_INPUTS = """
Args:
    predictions: predicted label ids (int), or predicted scores (float) for stsb.
    references: gold label ids (int), or gold similarity scores (float, 0-5) for stsb.
Returns: a dict; see bench/tasks/metrics/specs.py for the keys of each task. Fractions, not percent.
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _INPUTS)
class GlueMetric(SpecBacked, evaluate.Metric):
    MODULE = "glue_metric.py"

    def _info(self) -> evaluate.MetricInfo:
        dtype = "float64" if self.spec.config_name == "stsb" else "int64"
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_INPUTS,
            features=datasets.Features({"predictions": datasets.Value(dtype), "references": datasets.Value(dtype)}),
            homepage="https://gluebenchmark.com/",
            format="numpy",
        )

    def _compute(self, predictions, references) -> dict[str, float]:
        predictions, references = list(predictions.tolist()), list(references.tolist())
        task = self.spec.config_name
        check_pairs(predictions, references, f"glue {task}")
        if task == "cola":
            return {"matthews_correlation": matthews_correlation(predictions, references)}
        if task == "stsb":
            scores = {"pearson": pearson(predictions, references), "spearmanr": spearman(predictions, references)}
        elif task in ("mrpc", "qqp"):
            scores = {"f1": binary_f1(predictions, references), "accuracy": accuracy(predictions, references)}
        else:
            return {"accuracy": accuracy(predictions, references)}
        return {**scores, "combined_score": sum(scores.values()) / 2}
