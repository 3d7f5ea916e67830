"""SQuAD v1.1 / v2.0 metrics as a local evaluate module: `evaluate.load(<this file>, config_name="v1" | "v2")`.

Inputs have the hub `squad` metric's shape, for both versions: predictions [{"id", "prediction_text"}],
references [{"id", "answers": {"text": [...], "answer_start": [...]}}]. For v2 a prediction of "" means "no
answer", right iff the question has no gold answer (the hub `squad_v2` metric also wants a no-answer
probability to search a threshold; this one scores the predictions as given). The arithmetic is in scores.py.
"""
from __future__ import annotations

import datasets
import evaluate

from .scores import squad_scores
from .specs import SpecBacked

_DESCRIPTION = """Exact match and token F1 (in percent) of extractive QA answers after the official SQuAD
normalisation (lower-case; drop punctuation, the articles a/an/the, extra whitespace), each the maximum over a
question's gold answers. v1: exact_match, f1. v2: exact, f1, with HasAns_* and NoAns_* for the answerable and
unanswerable questions, and the question counts (total, HasAns_total, NoAns_total)."""

_CITATION = """@inproceedings{rajpurkar2016squad,
  title={{SQuAD}: 100,000+ Questions for Machine Comprehension of Text},
  author={Rajpurkar, Pranav and Zhang, Jian and Lopyrev, Konstantin and Liang, Percy},
  booktitle={Proceedings of EMNLP}, year={2016}
}
@inproceedings{rajpurkar2018know,
  title={Know What You Don't Know: Unanswerable Questions for {SQuAD}},
  author={Rajpurkar, Pranav and Jia, Robin and Liang, Percy},
  booktitle={Proceedings of ACL}, year={2018}
}"""

_INPUTS = """
Args:
    predictions: list of {"id": str, "prediction_text": str} ("" = no answer, for v2).
    references: list of {"id": str, "answers": {"text": [str, ...], "answer_start": [int, ...]}}; v2: an
        unanswerable question has empty lists. Each id appears once on each side.
Returns: v1 {"exact_match", "f1", "total"}; v2 {"exact", "f1", "total", "HasAns_*", "NoAns_*"}. Percent.
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _INPUTS)
class SquadMetric(SpecBacked, evaluate.Metric):
    MODULE = "squad_metric.py"

    def _info(self) -> evaluate.MetricInfo:
        self.spec  # unknown config_name -> ValueError at load time
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_INPUTS,
            features=datasets.Features({
                "predictions": {"id": datasets.Value("string"), "prediction_text": datasets.Value("string")},
                "references": {
                    "id": datasets.Value("string"),
                    "answers": datasets.Sequence({"text": datasets.Value("string"),
                                                  "answer_start": datasets.Value("int32")}),
                },
            }),
            homepage="https://rajpurkar.github.io/SQuAD-explorer/",
        )

    def _compute(self, predictions, references) -> dict[str, float]:
        version = self.spec.config_name
        if len(predictions) != len(references):
            raise ValueError(f"squad {version}: {len(predictions)} predictions but {len(references)} references")
        answers = {}
        for reference in references:
            if reference["id"] in answers:
                raise ValueError(f"squad {version}: reference id {reference['id']!r} appears twice")
            answers[reference["id"]] = list(reference["answers"]["text"])
        texts = {p["id"]: p["prediction_text"] for p in predictions}
        if len(texts) != len(predictions):
            raise ValueError(f"squad {version}: a prediction id appears twice")
        return squad_scores(texts, answers, version)
