"""Does isolation cost speed? One cell through the sweep launcher (a fresh process, exec'd or forked from
bench.launch.forkserver), the same cell in-process, and a bare PyTorch loop of the same shape (same model, optimizer and batches, no bench code),
interleaved round by round. Prints steps/s ratios against the bare loop and the start-up each isolated
cell costs (its wall time minus its training time). Goal on a 2-core CPU: >= 0.97x the bare loop's steps/s
and <= 5 s of start-up per cell.

    python benchmarks/isolation.py [--rounds 3] [-- hydra overrides, e.g. method=full]
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def bare_loop(cfg) -> float:
    """Plain PyTorch: the same model and batches as the cell, timed around the post-warm-up steps."""
    import torch

    from bench import methods

    from bench.cell import models
    from bench.tasks import synthetic

    method = methods.get(cfg.method.name)
    torch.manual_seed(cfg.train.seed)
    model = method.wrap(models.build_model(cfg, "cpu", torch.float32), cfg)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.method.lr)
    batches = synthetic.batches(model.config.vocab_size, cfg.train.batch_size, cfg.train.seq_len, "cpu", 0)
    model.train()
    for step in range(cfg.train.steps):
        if step == cfg.train.warmup_steps:
            started = time.perf_counter()
        batch = next(batches)
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return (cfg.train.steps - cfg.train.warmup_steps) / (time.perf_counter() - started)


def main() -> None:
    from benchmarks.overhead import compose
    from bench.cell.runner import run_cell
    from bench.launch.launcher import run_isolated, shared_fork_server

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    results = tempfile.mkdtemp(prefix="bench-isolation-")
    cfg = compose(["train.steps=40", "train.warmup_steps=5", "experiment_name=isolation", f"results_dir={results}",
                   "force=true", *args.overrides])
    rates: dict[str, list[float]] = {"launcher": [], "launcher, fork": [], "inline": [], "bare": []}
    startup: dict[str, list[float]] = {"launcher": [], "launcher, fork": []}
    forked_cfg = dataclasses.replace(cfg, cell_start="fork")
    server_started = time.perf_counter()
    if shared_fork_server() is None:
        sys.exit("the fork server could not start")
    server_seconds = time.perf_counter() - server_started
    for _ in range(args.rounds):
        for name, variant in (("launcher", cfg), ("launcher, fork", forked_cfg)):
            started = time.perf_counter()
            record, _, _ = run_isolated(variant)
            elapsed = time.perf_counter() - started
            rates[name].append(record["timing"]["steps_per_s"])
            startup[name].append(elapsed - record["timing"]["train_seconds_with_warmup"])
        record, _ = run_cell(cfg)
        rates["inline"].append(record["timing"]["steps_per_s"])
        rates["bare"].append(bare_loop(cfg))
    bare = statistics.median(rates["bare"])
    print(f"\ncell: {cfg.method.name} on {cfg.model.name}, batch {cfg.train.batch_size} x {cfg.train.seq_len}, "
          f"{cfg.train.steps - cfg.train.warmup_steps} measured steps, {args.rounds} interleaved rounds\n")
    print("| variant | steps/s (median) | every round | vs bare loop |")
    print("|---|---|---|---|")
    for name, values in rates.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.3f} | {', '.join(f'{v:.2f}' for v in values)} | {median / bare:.3f}x |")
    print("\nstart-up per isolated cell (wall minus training; goals: >= 0.97x the bare loop, <= 5 s start-up):")
    for name, values in startup.items():
        print(f"- {name}: median {statistics.median(values):.1f} s ({', '.join(f'{s:.1f}' for s in values)})")
    print(f"- the fork server's own start (once per sweep): {server_seconds:.1f} s")


if __name__ == "__main__":
    main()
