"""GLUE tasks: where each one's data lives, how its files are laid out, and a loader that gives plain examples.

`load_glue(task, split)` returns [{"text_a": str, "text_b": str | None, "label": int | float}, ...] from a local
glue_data folder (the layout of GLUE's download_glue_data.py: CoLA/, SST-2/, MRPC/, QQP/, STS-B/, MNLI/, QNLI/,
RTE/, WNLI/, each with train.tsv and dev.tsv; MNLI with dev_matched.tsv and dev_mismatched.tsv) or, without one,
from the hub dataset nyu-mll/glue. Label ids follow the hub dataset's ClassLabel order, so both sources agree.
Splits are train and dev (MNLI: train, dev_matched, dev_mismatched, scored separately); the test files have
no labels and are not loaded.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from bench.config import ConfigError

HUB_DATASET = "nyu-mll/glue"
TRUE_VALUES = {"1", "ON", "YES", "TRUE"}


@dataclass(frozen=True)
class TsvLayout:
    """Columns of a task's train/dev TSV: names from its header row, or 0-based indices when it has none."""
    header: bool
    text_a: str | int
    text_b: str | int | None
    label: str | int
    skip_short_rows: bool = False  # QQP: rows with missing fields are dropped, as transformers' QqpProcessor does


@dataclass(frozen=True)
class GlueTask:
    name: str  # bench's name, also the hub config and the metric name
    folder: str  # folder inside glue_data
    layout: TsvLayout
    labels: tuple[str, ...]  # label names in id order (hub ClassLabel order); () for regression
    file_labels: tuple[str, ...]  # how each label id is written in the TSV, same order; () for regression
    hub_fields: tuple[str, str | None]  # text columns of the hub dataset
    splits: dict[str, tuple[str, str]]  # bench split -> (TSV file name, hub split)
    metrics: dict[str, str]  # evaluation split -> bench.tasks.metrics name

    @property
    def regression(self) -> bool:
        return not self.labels

    @property
    def num_labels(self) -> int:
        return len(self.labels) or 1

    @property
    def eval_splits(self) -> tuple[str, ...]:
        return tuple(self.metrics)


def _task(name: str, folder: str, layout: TsvLayout, labels: tuple[str, ...], file_labels: tuple[str, ...],
          hub_fields: tuple[str, str | None]) -> GlueTask:
    return GlueTask(name, folder, layout, labels, file_labels, hub_fields,
                    splits={"train": ("train.tsv", "train"), "dev": ("dev.tsv", "validation")},
                    metrics={"dev": name})


BINARY = ("0", "1")
NLI2 = ("entailment", "not_entailment")
TASKS: dict[str, GlueTask] = {
    # CoLA: no header; columns source, label, original annotation ("*" or empty), sentence.
    "cola": _task("cola", "CoLA", TsvLayout(False, 3, None, 1), ("unacceptable", "acceptable"), BINARY,
                  ("sentence", None)),
    "sst2": _task("sst2", "SST-2", TsvLayout(True, "sentence", None, "label"), ("negative", "positive"), BINARY,
                  ("sentence", None)),
    # MRPC: header "Quality  #1 ID  #2 ID  #1 String  #2 String", behind a UTF-8 byte-order mark.
    "mrpc": _task("mrpc", "MRPC", TsvLayout(True, "#1 String", "#2 String", "Quality"),
                  ("not_equivalent", "equivalent"), BINARY, ("sentence1", "sentence2")),
    "qqp": _task("qqp", "QQP", TsvLayout(True, "question1", "question2", "is_duplicate", skip_short_rows=True),
                 ("not_duplicate", "duplicate"), BINARY, ("question1", "question2")),
    # STS-B: index genre filename year old_index source1 source2 sentence1 sentence2 score (0.000-5.000).
    "stsb": _task("stsb", "STS-B", TsvLayout(True, "sentence1", "sentence2", "score"), (), (),
                  ("sentence1", "sentence2")),
    "mnli": GlueTask("mnli", "MNLI", TsvLayout(True, "sentence1", "sentence2", "gold_label"),
                     ("entailment", "neutral", "contradiction"), ("entailment", "neutral", "contradiction"),
                     ("premise", "hypothesis"),
                     splits={"train": ("train.tsv", "train"),
                             "dev_matched": ("dev_matched.tsv", "validation_matched"),
                             "dev_mismatched": ("dev_mismatched.tsv", "validation_mismatched")},
                     metrics={"dev_matched": "mnli_matched", "dev_mismatched": "mnli_mismatched"}),
    "qnli": _task("qnli", "QNLI", TsvLayout(True, "question", "sentence", "label"), NLI2, NLI2,
                  ("question", "sentence")),
    "rte": _task("rte", "RTE", TsvLayout(True, "sentence1", "sentence2", "label"), NLI2, NLI2,
                 ("sentence1", "sentence2")),
    # WNLI's TSV writes 0/1, and 1 is entailment (the hub's order: not_entailment, entailment).
    "wnli": _task("wnli", "WNLI", TsvLayout(True, "sentence1", "sentence2", "label"),
                  ("not_entailment", "entailment"), BINARY, ("sentence1", "sentence2")),
}


def glue_task(name: str) -> GlueTask:
    if name not in TASKS:
        raise ConfigError(f"task.name: unknown GLUE task {name!r} (choose from {', '.join(TASKS)})")
    return TASKS[name]


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").upper() in TRUE_VALUES


def _field(fields: list[str], column_index: dict[str, int] | None, column: str | int) -> str:
    return fields[column_index[column] if column_index is not None else column]  # type: ignore[index]


def _label(task: GlueTask, raw: str, where: str) -> int | float:
    if task.regression:
        try:
            return float(raw)
        except ValueError:
            raise ValueError(f"{where}: score {raw!r} is not a number") from None
    if raw not in task.file_labels:
        raise ValueError(f"{where}: label {raw!r} is not one of {', '.join(task.file_labels)}")
    return task.file_labels.index(raw)


def read_tsv(task: GlueTask, path: Path, limit: int | None = None) -> list[dict]:
    """Examples of one TSV, quotes taken literally (GLUE files are not CSV-quoted)."""
    lines = path.read_text(encoding="utf-8-sig").split("\n")
    column_index = None  # column name -> position, from the header row
    if task.layout.header:
        column_index = {name: i for i, name in enumerate(lines[0].rstrip("\r").split("\t"))}
        wanted = [c for c in (task.layout.text_a, task.layout.text_b, task.layout.label) if c is not None]
        missing = [c for c in wanted if c not in column_index]
        if missing:
            raise ValueError(f"{path}: header has no column {missing[0]!r} (columns: {', '.join(column_index)})")
        lines = lines[1:]
    examples: list[dict] = []
    for number, line in enumerate(lines, start=2 if task.layout.header else 1):
        if limit is not None and len(examples) >= limit:
            break
        if not line.strip():
            continue
        fields = line.rstrip("\r").split("\t")
        try:
            raw_label = _field(fields, column_index, task.layout.label).strip()
            text_a = _field(fields, column_index, task.layout.text_a)
            text_b = None if task.layout.text_b is None else _field(fields, column_index, task.layout.text_b)
        except IndexError:
            if task.layout.skip_short_rows:
                continue
            raise ValueError(f"{path}:{number}: {len(fields)} tab-separated fields, fewer than the layout needs") \
                from None
        examples.append({"text_a": text_a, "text_b": text_b, "label": _label(task, raw_label, f"{path}:{number}")})
    return examples


def _load_hub(task: GlueTask, split: str, limit: int | None) -> list[dict]:
    import datasets

    hub_split = task.splits[split][1] + (f"[:{limit}]" if limit is not None else "")
    try:
        rows = datasets.load_dataset(HUB_DATASET, task.name, split=hub_split)
    except Exception as exc:  # offline: a copy in the datasets cache is used if present, else this error
        if not hub_offline():
            raise
        raise ConfigError(f"task.data_dir: no local GLUE data for {task.name!r} and the hub is offline "
                          f"(HF_HUB_OFFLINE=1); set task.data_dir=<glue_data folder> or go online") from exc
    field_a, field_b = task.hub_fields
    return [{"text_a": row[field_a], "text_b": row[field_b] if field_b else None,
             "label": float(row["label"]) if task.regression else int(row["label"])} for row in rows]


def load_glue(task: str, split: str, data_dir: str | os.PathLike | None = None,
              limit: int | None = None) -> list[dict]:
    """Examples of GLUE `task` ("cola" ... "wnli") and `split` ("train", "dev"; MNLI "dev_matched" /
    "dev_mismatched"), the first `limit` of them in file order if given: from `data_dir` (a glue_data folder)
    when given, else from the hub (its datasets cache when HF_HUB_OFFLINE=1)."""
    spec = glue_task(task)
    if split not in spec.splits:
        raise ConfigError(f"split: GLUE {task} has splits {', '.join(spec.splits)} (got {split!r})")
    if limit is not None and limit <= 0:
        raise ValueError(f"load_glue: limit must be > 0 or None (got {limit})")
    if data_dir is None:
        return _load_hub(spec, split, limit)
    path = Path(data_dir).expanduser() / spec.folder / spec.splits[split][0]
    if not path.is_file():
        raise ConfigError(f"task.data_dir: {path} not found (GLUE {task} {split}; expected the glue_data layout)")
    return read_tsv(spec, path, limit)
