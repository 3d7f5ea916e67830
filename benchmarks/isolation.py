"""Does how a cell starts bias its speed? The same cell exec'd by the sweep launcher (`cell_start=exec`),
forked from bench.launch.forkserver (`cell_start=fork`), and a bare PyTorch loop of the same shape (same
model, optimizer and batches, no bench code) in a fresh process of its own, interleaved round by round with
the order rotated each round, so a neighbour's load or the machine's drift hits every arm alike.

Each run's steps/s carries its batch-means 95% interval from its own step times (bench.stats.rate_interval);
an arm's figure is the mean over rounds with its t interval (bench.stats.mean_interval); "vs bare" is the
ratio of the arm's mean to the bare loop's with its interval (bench.stats.ratio: "n.s." when it includes
1), and "paired" the geometric mean of the per-round ratios (rounds share their load), t interval on the
log scale. Start-up is an isolated cell's wall time minus its training time. Goals on a 2-core CPU: every
start within noise of the bare loop (ratio interval containing 1, or >= 0.97x) and <= 5 s start-up per cell.

The default cell is issue 15's: LoRA on a 20M-parameter Llama (tiny's shape widened to 512 / 1376, 5 layers),
batch 8 x 128, 5 warm-up + 20 timed steps. CPU timings mean something only on a quiet machine.

    python benchmarks/isolation.py [--rounds 3] [--json out.json] [-- hydra overrides, e.g. method=full]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import stats  # noqa: E402

CELL = ["method=lora", "model.arch.hidden_size=512", "model.arch.intermediate_size=1376",
        "model.arch.num_hidden_layers=5", "train.batch_size=8", "train.seq_len=128", "train.steps=25",
        "train.warmup_steps=5", "experiment_name=isolation", "force=true"]
ARMS = ("exec", "fork", "bare")


def bare_loop(cfg) -> dict:
    """Plain PyTorch, nothing of bench's harness: the cell's model, optimizer and batches, each step timed
    (after a device sync on CUDA). Runs in a fresh process (`--bare`)."""
    import torch

    from bench import methods
    from bench.cell import models
    from bench.tasks import synthetic

    device = models.resolve_device(cfg.device)
    method = methods.get(cfg.method.name)
    torch.manual_seed(cfg.train.seed)
    model = method.wrap(models.build_model(cfg, device, torch.float32), cfg)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.method.lr)
    batches = synthetic.batches(model.config.vocab_size, cfg.train.batch_size, cfg.train.seq_len, device, 0)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    model.train()
    times = []
    for step in range(cfg.train.steps):
        sync()
        started = time.perf_counter()
        model(**next(batches)).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        sync()
        if step >= cfg.train.warmup_steps:
            times.append(time.perf_counter() - started)
    return {"step_times_s": times, "torch_threads": torch.get_num_threads()}


def run_bare(overrides: list[str]) -> dict:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, "--bare", "--", *overrides], cwd=ROOT, capture_output=True,
                          text=True)
    if proc.returncode != 0:
        sys.exit(f"the bare loop failed ({proc.returncode}): {proc.stderr.strip().splitlines()[-1:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["wall_s"] = time.perf_counter() - started
    return out


def run_cell(cfg) -> dict:
    from bench.launch.launcher import run_isolated

    started = time.perf_counter()
    record, _, _ = run_isolated(cfg)
    wall = time.perf_counter() - started
    if record["status"] != "success":
        sys.exit(f"the {cfg.cell_start} cell ended {record['status']}: {(record.get('error') or {}).get('message')}")
    timing = record["timing"]
    return {"step_times_s": timing["step_times_s"], "torch_threads": record["env"].get("torch_threads"),
            "cell_start": record["env"].get("cell_start"), "wall_s": wall,
            "startup_s": wall - timing["train_seconds_with_warmup"]}


def per_run(run: dict) -> dict:
    times = run["step_times_s"]
    rate = stats.rate_interval(times)
    ci = [rate.lo, rate.hi if math.isfinite(rate.hi) else None] if rate else None  # None: unbounded above
    return {**run, "steps_per_s": len(times) / sum(times), "steps_per_s_ci95": ci,
            "median_step_s": statistics.median(times), "outlier_steps": stats.outlier_steps(times)["count"]}


def arm_estimate(runs: list[dict]) -> stats.Estimate:
    """Mean over rounds with its t interval; one round: that run's own batch-means interval."""
    if len(runs) == 1:
        return stats.rate_interval(runs[0]["step_times_s"]) or stats.Estimate(runs[0]["steps_per_s"])
    return stats.mean_interval([r["steps_per_s"] for r in runs])


def paired_ratio(runs: list[dict], bare: list[dict]) -> stats.Estimate:
    """Geometric mean of the per-round ratios arm / bare, t interval on the log scale."""
    logs = stats.mean_interval([math.log(a["steps_per_s"] / b["steps_per_s"]) for a, b in zip(runs, bare)])
    if not logs.has_interval:
        return stats.Estimate(math.exp(logs.value), n=logs.n)
    return stats.Estimate(math.exp(logs.value), math.exp(logs.lo), math.exp(logs.hi), logs.n, logs.method)


def interval_text(ci: list | None) -> str:
    if not ci:
        return "no interval"
    return f"{ci[0]:.2f}-" + ("unbounded" if ci[1] is None else f"{ci[1]:.2f}")


def ci_text(e: stats.Estimate, digits: int = 3) -> str:
    return f"{e.value:.{digits}f}" + (f" ({e.lo:.{digits}f}-{e.hi:.{digits}f})" if e.has_interval else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, help="write every run and the summary here")
    parser.add_argument("--bare", action="store_true", help=argparse.SUPPRESS)  # the bare loop's own process
    parser.add_argument("overrides", nargs="*", help="Hydra overrides after the default cell's")
    args = parser.parse_args()
    from benchmarks.overhead import compose

    if args.bare:
        print(json.dumps(bare_loop(compose(args.overrides))))
        return
    if args.rounds < 1:
        sys.exit("--rounds must be >= 1")
    overrides = [*CELL, f"results_dir={tempfile.mkdtemp(prefix='bench-isolation-')}", *args.overrides]
    cfg = compose(overrides)
    from bench.launch.launcher import shared_fork_server

    server_started = time.perf_counter()
    if shared_fork_server() is None:
        sys.exit("the fork server could not start")
    server_s = time.perf_counter() - server_started
    start = {"exec": dataclasses.replace(cfg, cell_start="exec"), "fork": dataclasses.replace(cfg, cell_start="fork")}
    runs: dict[str, list[dict]] = {arm: [] for arm in ARMS}
    for r in range(args.rounds):
        for arm in ARMS[r % 3:] + ARMS[:r % 3]:  # rotated: no arm always first or always after another
            run = run_bare(overrides) if arm == "bare" else run_cell(start[arm])
            runs[arm].append(per_run({**run, "round": r}))
            print(f"round {r + 1} {arm}: {runs[arm][-1]['steps_per_s']:.3f} steps/s", file=sys.stderr, flush=True)
    summary = {arm: arm_estimate(runs[arm]) for arm in ARMS}
    t = cfg.train
    print(f"\ncell: {cfg.method.name} on {cfg.model.name} (hidden {cfg.model.arch.get('hidden_size')}, "
          f"{cfg.model.arch.get('num_hidden_layers')} layers), batch {t.batch_size} x {t.seq_len}, "
          f"{t.steps - t.warmup_steps} timed steps, {args.rounds} interleaved round(s), order rotated\n")
    print("| start | steps/s, mean of rounds (95% CI) | each round: steps/s (batch-means 95% CI), median step "
          "| vs bare (95% CI) | paired vs bare (95% CI) | start-up s |")
    print("|---|---|---|---|---|---|")
    out = {"cell": CELL, "overrides": args.overrides, "rounds": args.rounds,
           "fork_server_start_s": server_s, "arms": {}}
    for arm in ARMS:
        rounds = "; ".join(f"{x['steps_per_s']:.2f} ({interval_text(x['steps_per_s_ci95'])}), {x['median_step_s']:.3f} s"
                           for x in runs[arm])
        vs = stats.ratio(summary[arm], summary["bare"]) if arm != "bare" else None
        paired = paired_ratio(runs[arm], runs["bare"]) if arm != "bare" else None
        startup = [x["startup_s"] for x in runs[arm] if "startup_s" in x]
        ratio_text = "1" if vs is None else (f"{vs.value:.3f}x" + (f" ({vs.lo:.3f}-{vs.hi:.3f})" if vs.lo else "")
                                              + ("" if vs.established else f", {vs.status}"))
        paired_text = "1" if paired is None else ci_text(paired) + "x"
        startup_text = f"{statistics.median(startup):.1f}" if startup else "-"
        print(f"| {arm} | {ci_text(summary[arm])} | {rounds} | {ratio_text} | {paired_text} | {startup_text} |")
        out["arms"][arm] = {"runs": runs[arm], "steps_per_s": summary[arm].to_json(),
                            "vs_bare": None if vs is None else dataclasses.asdict(vs),
                            "paired_vs_bare": None if paired is None else paired.to_json(),
                            "startup_s_median": statistics.median(startup) if startup else None}
    print(f"\nthe fork server's own start (once per sweep): {server_s:.1f} s; torch threads per run: "
          + ", ".join(f"{arm} {sorted({x['torch_threads'] for x in runs[arm]})}" for arm in ARMS))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
