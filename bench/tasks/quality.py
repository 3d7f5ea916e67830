"""Text tasks (GLUE, SQuAD): tokenised training batches, and evaluation with the task's official metric.

Classification and regression (GLUE) use a sequence-classification head on any backbone (encoders: the
[CLS] pooler; decoders: the last non-pad token); SQuAD uses an extractive QA head (start/end logits over
the context). Tokenisation happens once, before anything is timed; batches are padded to their longest
example. Evaluation runs in its own tracked phase; its result keeps every split's metrics and one main
number (the mean of the splits' main metrics: MNLI averages matched and mismatched).
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import torch

from bench.config import ConfigError, RunConfig, TaskConfig
from bench.tasks import check_data  # noqa: F401  (cell planning imports it from here)


@dataclass
class TextTask:
    train_batches: Iterator[dict]
    evaluate: Callable[[torch.nn.Module], dict[str, Any]]
    main_metric: str
    n_train_examples: int
    n_train_features: int


def task_head(task: TaskConfig) -> dict[str, Any]:
    """build_model's head arguments for a task (no data is read)."""
    if task.kind == "glue":
        from bench.tasks.glue import glue_task

        spec = glue_task(task.name)
        return {"head": "sequence_classification", "num_labels": spec.num_labels, "regression": spec.regression}
    if task.kind == "squad":
        return {"head": "question_answering"}
    return {"head": "causal_lm"}


def _cycle(features: list[dict], batch_size: int, collate: Callable, device: str, seed: int) -> Iterator[dict]:
    from bench.tasks.features import iterate_batches

    epoch = 0
    while True:
        for batch in iterate_batches(features, batch_size, collate, shuffle=True, seed=seed + epoch):
            yield {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        epoch += 1


def split_training(examples: list[dict], task: TaskConfig, seed: int,
                   group: Callable[[dict], Any] | None = None) -> tuple[list[dict], list[dict]]:
    """(training examples, held-out examples). `task.holdout` examples of the training file are set aside
    first, never trained on: a seeded sample of their own (a different stream from train_limit's), whole
    groups at a time when `group` names one (SQuAD: a paragraph's questions stay together, so no context
    is both trained on and scored). train_limit's seeded sample is then drawn from the rest."""
    held: list[dict] = []
    if task.holdout:
        groups: dict[Any, list[dict]] = {}
        for index, example in enumerate(examples):
            groups.setdefault(group(example) if group else index, []).append(example)
        order = list(groups)
        random.Random(f"holdout:{seed}").shuffle(order)
        taken = set()
        for key in order:
            if len(held) >= task.holdout:
                break
            held += groups[key]
            taken.add(key)
        if len(taken) == len(groups):
            raise ConfigError(f"task.holdout: {task.holdout} held-out examples leave none of the "
                              f"{len(examples)} in {task.name} {task.train_split} to train on")
        examples = [e for key, members in groups.items() if key not in taken for e in members]
    return _limited(examples, task.train_limit, seed), held


def _limited(examples: list[dict], limit: int | None, seed: int) -> list[dict]:
    if limit is None or limit >= len(examples):
        return examples
    chosen = list(examples)
    random.Random(seed).shuffle(chosen)  # a seeded sample keeps the label balance of the whole set
    return chosen[:limit]


def _forward_batches(model: torch.nn.Module, features: list[dict], batch_size: int, collate: Callable,
                     device: str, autocast: torch.dtype | None) -> Iterator[tuple[dict, Any]]:
    from bench.tasks.features import iterate_batches

    model.eval()
    for module in model.modules():
        # bitsandbytes' CPU backend repacks a Linear4bit's weight for inference in eval mode and never packs it
        # back, so training after an evaluation fails ("a view of a leaf Variable ... in-place operation").
        # The layer has no train/eval behaviour of its own: keep it in training mode.
        if type(module).__name__ == "Linear4bit":
            module.train()
    amp = torch.autocast(device_type=device, dtype=autocast) if autocast else torch.autocast(device, enabled=False)
    with torch.no_grad(), amp:
        for batch in iterate_batches(features, batch_size, collate):
            batch = {k: v.to(device) for k, v in batch.items()}
            yield batch, model(**batch)


def prepare(cfg: RunConfig, tokenizer: Any, device: str, autocast: torch.dtype | None) -> TextTask:
    task = cfg.task
    if task.kind == "glue":
        return _prepare_glue(cfg, tokenizer, device, autocast)
    return _prepare_squad(cfg, tokenizer, device, autocast)


def _prepare_glue(cfg: RunConfig, tokenizer: Any, device: str, autocast: torch.dtype | None) -> TextTask:
    from bench.tasks import metrics
    from bench.tasks.features import make_collate, tokenize_pairs
    from bench.tasks.glue import glue_task, load_glue

    task, seed = cfg.task, cfg.train.seed
    spec = glue_task(task.name)
    collate = make_collate(tokenizer)
    train, held = split_training(load_glue(task.name, task.train_split, task.data_dir), task, seed)
    train_features = tokenize_pairs(tokenizer, train, task.max_length)
    if task.eval_split == "holdout":  # scored with the first dev split's metric (MNLI: matched)
        metric_names, dev = {"holdout": spec.metrics[spec.eval_splits[0]]}, {"holdout": held}
    else:
        metric_names = spec.metrics
        dev = {split: load_glue(task.name, split, task.data_dir, limit=task.eval_limit) for split in spec.eval_splits}
    dev_features = {split: tokenize_pairs(tokenizer, rows, task.max_length) for split, rows in dev.items()}
    scorers = {split: metrics.load(name) for split, name in metric_names.items()}

    def evaluate(model: torch.nn.Module) -> dict[str, Any]:
        splits = {}
        for split, features in dev_features.items():
            predictions, losses = [], []
            for batch, out in _forward_batches(model, features, task.eval_batch_size, collate, device, autocast):
                logits = out.logits.float()
                predictions += (logits.squeeze(-1) if spec.regression else logits.argmax(-1)).cpu().tolist()
                losses.append(float(out.loss) * len(batch["labels"]))
            scores = scorers[split].compute(predictions=predictions, references=[f["labels"] for f in features])
            splits[split] = {**scores, "eval_loss": sum(losses) / len(features), "n": len(features)}
        return _with_main(splits, {s: metrics.main_key(metric_names[s]) for s in splits})

    return TextTask(_cycle(train_features, cfg.train.batch_size, collate, device, seed + cfg.repeat), evaluate,
                    metrics.main_key(spec.metrics[spec.eval_splits[0]]), len(train), len(train_features))


def _prepare_squad(cfg: RunConfig, tokenizer: Any, device: str, autocast: torch.dtype | None) -> TextTask:
    from bench.tasks import metrics
    from bench.tasks.features import make_collate, postprocess_qa, qa_eval_features, qa_train_features
    from bench.tasks.squad import TASK_VERSIONS, load_squad

    task, seed = cfg.task, cfg.train.seed
    version = TASK_VERSIONS[task.name]
    collate = make_collate(tokenizer)
    train, held = split_training(load_squad(version, task.train_split, task.data_dir), task, seed,
                                 group=lambda e: e["context"])
    train_features = qa_train_features(tokenizer, train, task.max_length, task.doc_stride)
    split = task.eval_split
    dev = held if split == "holdout" else load_squad(version, "dev", task.data_dir, limit=task.eval_limit)
    dev_features = qa_eval_features(tokenizer, dev, task.max_length, task.doc_stride)
    scorer = metrics.load(task.name)

    def evaluate(model: torch.nn.Module) -> dict[str, Any]:
        starts, ends = [], []
        for _, out in _forward_batches(model, dev_features, task.eval_batch_size, collate, device, autocast):
            starts += list(out.start_logits.float().cpu())
            ends += list(out.end_logits.float().cpu())
        predictions = postprocess_qa(dev, dev_features, starts, ends, version=version)
        scores = scorer.compute(predictions=predictions,
                                references=[{"id": e["id"], "answers": e["answers"]} for e in dev])
        return _with_main({split: {**scores, "n": len(dev)}}, {split: metrics.main_key(task.name)})

    return TextTask(_cycle(train_features, cfg.train.batch_size, collate, device, seed + cfg.repeat), evaluate,
                    metrics.main_key(task.name), len(train), len(train_features))


def _with_main(splits: dict[str, dict], main_keys: dict[str, str]) -> dict[str, Any]:
    mains = [splits[s][main_keys[s]] for s in splits]
    return {"splits": splits, "main": sum(mains) / len(mains)}


class QualityLog:
    """Evaluations at intervals: metric vs step and vs training seconds, and time-to-quality."""

    def __init__(self, task: TaskConfig, main_metric: str) -> None:
        self.task, self.main_metric = task, main_metric
        self.curve: list[dict[str, Any]] = []

    def evaluate(self, text_task: TextTask, model: torch.nn.Module, step: int, train_seconds: float) -> None:
        started = time.perf_counter()
        result = text_task.evaluate(model)
        self.curve.append({"step": step, "train_seconds": train_seconds, "main": result["main"],
                           "splits": result["splits"], "eval_seconds": time.perf_counter() - started})

    def summary(self) -> dict[str, Any]:
        reached = next((p for p in self.curve if self.task.target is not None and p["main"] >= self.task.target),
                       None)
        final = self.curve[-1] if self.curve else None
        return {"task": self.task.name, "main_metric": self.main_metric, "higher_is_better": True,
                "eval_split": self.task.eval_split,  # dev | holdout (held out of the training file)
                "main": final["main"] if final else None, "final": final["splits"] if final else None,
                "curve": self.curve, "target": self.task.target,
                "steps_to_target": reached["step"] if reached else None,
                "seconds_to_target": reached["train_seconds"] if reached else None}
