"""Tasks: where the batches come from and how a model is scored."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.config import TaskConfig


def check_data(task: TaskConfig) -> None:
    """Read one example of the training split and of each split the task is scored on (none beyond training
    with task.eval_split=holdout: the held-out examples come from the training file), so missing data is
    bad input (exit 2) before any model loads. No torch: a sweep checks every cell's data before launching."""
    if task.kind == "glue":
        from bench.tasks.glue import glue_task, load_glue

        scored = glue_task(task.name).eval_splits if task.eval_split == "dev" else ()
        for split in dict.fromkeys((task.train_split, *scored)):
            load_glue(task.name, split, task.data_dir, limit=1)
    elif task.kind == "squad":
        from bench.tasks.squad import TASK_VERSIONS, load_squad

        for split in dict.fromkeys((task.train_split, *(("dev",) if task.eval_split == "dev" else ()))):
            load_squad(TASK_VERSIONS[task.name], split, task.data_dir, limit=1)
