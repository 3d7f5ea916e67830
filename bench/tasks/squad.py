"""SQuAD v1.1 / v2.0: plain examples from the official JSON files or the hub.

`load_squad(version, split)` returns one dict per question: {"id", "title", "context", "question",
"answers": {"text": [...], "answer_start": [...]}, "is_impossible"}, in file order; the hub datasets
(rajpurkar/squad, rajpurkar/squad_v2) have the same fields, is_impossible aside (no answers there = impossible).
v2's plausible_answers (wrong answers to unanswerable questions) are not kept: nothing trains or scores on them.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from bench.config import ConfigError
from bench.tasks.glue import hub_offline

VERSIONS = ("v1", "v2")
TASK_VERSIONS = {"squad": "v1", "squad_v2": "v2"}  # task name (and metric name) -> version
SPLITS = {"train": "train", "dev": "validation"}  # bench split -> hub split
HUB_DATASETS = {"v1": "rajpurkar/squad", "v2": "rajpurkar/squad_v2"}
FILE_VERSIONS = {"v1": "v1.1", "v2": "v2.0"}


def squad_file(version: str, split: str) -> str:
    """Official file name: train-v1.1.json, dev-v1.1.json, train-v2.0.json, dev-v2.0.json."""
    return f"{split}-{FILE_VERSIONS[version]}.json"


def read_squad_json(path: Path, limit: int | None = None) -> list[dict]:
    """Questions of an official SQuAD JSON file (articles -> paragraphs -> qas), flattened."""
    data = json.loads(path.read_text(encoding="utf-8"))
    examples: list[dict] = []
    for article in data["data"]:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                if limit is not None and len(examples) >= limit:
                    return examples
                answers = qa.get("answers", [])
                examples.append({
                    "id": qa["id"],
                    "title": article.get("title", ""),
                    "context": paragraph["context"],
                    "question": qa["question"],
                    "answers": {"text": [a["text"] for a in answers],
                                "answer_start": [int(a["answer_start"]) for a in answers]},
                    "is_impossible": bool(qa.get("is_impossible", False)),
                })
    return examples


def _load_hub(version: str, split: str, limit: int | None) -> list[dict]:
    import datasets

    hub_split = SPLITS[split] + (f"[:{limit}]" if limit is not None else "")
    try:
        rows = datasets.load_dataset(HUB_DATASETS[version], split=hub_split)
    except Exception as exc:  # offline: a copy in the datasets cache is used if present, else this error
        if not hub_offline():
            raise
        raise ConfigError(f"task.data_dir: no local SQuAD {version} data and the hub is offline (HF_HUB_OFFLINE=1); "
                          f"set task.data_dir=<folder with {squad_file(version, split)}> or go online") from exc
    return [{"id": row["id"], "title": row["title"], "context": row["context"], "question": row["question"],
             "answers": {"text": list(row["answers"]["text"]),
                         "answer_start": [int(s) for s in row["answers"]["answer_start"]]},
             "is_impossible": not row["answers"]["text"]} for row in rows]


def load_squad(version: str, split: str, data_dir: str | os.PathLike | None = None,
               limit: int | None = None) -> list[dict]:
    """Questions of SQuAD `version` ("v1" = v1.1, "v2" = v2.0) and `split` ("train", "dev"), the first `limit`
    if given: from the official JSON file in `data_dir` when given, else from the hub (its datasets cache when
    HF_HUB_OFFLINE=1)."""
    if version not in VERSIONS:
        raise ValueError(f"load_squad: version must be v1 or v2 (got {version!r}); see TASK_VERSIONS")
    if split not in SPLITS:
        raise ConfigError(f"split: SQuAD has splits {', '.join(SPLITS)} (got {split!r})")
    if limit is not None and limit <= 0:
        raise ValueError(f"load_squad: limit must be > 0 or None (got {limit})")
    if data_dir is None:
        return _load_hub(version, split, limit)
    path = Path(data_dir).expanduser() / squad_file(version, split)
    if not path.is_file():
        raise ConfigError(f"task.data_dir: {path} not found (SQuAD {version} {split}; expected the official JSON)")
    return read_squad_json(path, limit)
