"""Step clocks on a GPU: the same tiny cell timed bare, with `train.step_clock=sync` and with `events`.

`sync` synchronises the device and reads the host clock at every step boundary; `events` records one CUDA
event per boundary and synchronises once at the end of the segment (bench.trackers.timing.StepTimer). A
per-step sync drains the launch queue, so the host can't run ahead of the GPU: on a small, launch-bound
step that can cost real time; events cost two event records per step. Which clock to make the default is
this benchmark's question.

One process, one model and optimizer; the three variants interleaved round by round (bare, sync, events,
bare, ...) so drift hits all alike. Bare: per-step timing off (one sync and two clock reads around the
round). Printed: each variant's steps/s with a 95% interval (bare: the t interval over rounds; sync and
events: bench.stats.combine_runs over the rounds' step times), each clock's per-step overhead against bare
(mean over rounds, t interval), and for each clock the sum of its step times over the round's wall time
(1.0 is honest: no time lost between steps).

    python benchmarks/step_clock.py                                   # lora on tiny, batch 8 x 128
    python benchmarks/step_clock.py --rounds 7 --steps 100 -- method=full model=1b train.batch_size=4

Needs CUDA: on a machine without it, it exits 2 ("needs CUDA") before any work.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

VARIANTS = ("bare", "sync", "events")


def measure(overrides: list[str], rounds: int, steps: int) -> dict:
    import torch

    from bench import methods, stats
    from bench.cell import models
    from bench.cell.step_loop import train_steps
    from bench.tasks import synthetic
    from benchmarks.overhead import compose

    cfg = compose(["method=lora", "train.batch_size=8", "train.seq_len=128", "device=cuda", *overrides])
    method = methods.get(cfg.method.name)
    compute = models.train_dtype(cfg.train.precision, "cuda")
    torch.manual_seed(cfg.train.seed)
    model = method.wrap(models.build_model(cfg, "cuda", method.weights_dtype(cfg, compute)), cfg)
    optimizer = method.make_optimizer(model, cfg)
    t = cfg.train
    data = synthetic.batches(model.config.vocab_size, t.batch_size, t.seq_len, "cuda", t.seed)
    common = dict(steps=steps + t.warmup_steps, warmup_steps=t.warmup_steps, grad_accum=t.grad_accum,
                  device="cuda", autocast_dtype=method.autocast_dtype(cfg, compute))
    train_steps(model, optimizer, data, **common, per_step_timing=False)  # settle allocator and caches
    rates: dict[str, list[float]] = {v: [] for v in VARIANTS}
    step_times: dict[str, list[list[float]]] = {"sync": [], "events": []}
    coverage: dict[str, list[float]] = {"sync": [], "events": []}
    for _ in range(rounds):
        for variant in VARIANTS:
            clock = {"step_clock": variant} if variant != "bare" else {}
            result = train_steps(model, optimizer, data, **common, per_step_timing=variant != "bare", **clock)
            rates[variant].append(result.measured_steps / result.measured_seconds)
            if variant != "bare":
                step_times[variant].append(result.step_times)
                coverage[variant].append(sum(result.step_times) / result.measured_seconds)
    bare = stats.mean_interval(rates["bare"])
    row = {"model": cfg.model.name, "method": cfg.method.name, "batch": t.batch_size, "seq_len": t.seq_len,
           "rounds": rounds, "steps_per_round": steps, "gpu": torch.cuda.get_device_name(0),
           "bare": bare.to_json(), "rates": rates}
    for clock in ("sync", "events"):
        overhead = [1 / r - 1 / b for r, b in zip(rates[clock], rates["bare"])]  # seconds per step, paired
        row[clock] = {"steps_per_s": stats.combine_runs(step_times[clock]).to_json(),
                      "overhead_s_per_step": stats.mean_interval(overhead).to_json(),
                      "step_sum_over_wall": statistics.fmean(coverage[clock])}
    return row


def fmt(block: dict, scale: float = 1.0, digits: int = 2) -> str:
    lo, hi = block["ci95"] or (None, None)
    text = f"{block['value'] * scale:.{digits}f}"
    return text + (f" ({lo * scale:.{digits}f}-{hi * scale:.{digits}f})" if lo is not None and hi is not None else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=50, help="measured steps per round")
    parser.add_argument("--json", type=Path, help="also write the row here")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. model=1b train.batch_size=8")
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        print("step_clock.py: needs CUDA (it compares CUDA events with a per-step device sync)", file=sys.stderr)
        sys.exit(2)
    row = measure(args.overrides, args.rounds, args.steps)
    if args.json:
        args.json.write_text(json.dumps(row, indent=1))
    print(f"\n{row['method']} on {row['model']}, batch {row['batch']} x {row['seq_len']}, {row['gpu']}: "
          f"{row['rounds']} interleaved rounds of {row['steps_per_round']} measured steps (95% intervals)")
    print("| clock | steps/s | overhead per step vs bare (ms) | sum of step times / wall |")
    print("|---|---|---|---|")
    print(f"| bare (no per-step timing) | {fmt(row['bare'])} | - | - |")
    for clock in ("sync", "events"):
        r = row[clock]
        print(f"| {clock} | {fmt(r['steps_per_s'])} | {fmt(r['overhead_s_per_step'], 1000, 3)} | "
              f"{r['step_sum_over_wall']:.4f} |")


if __name__ == "__main__":
    main()
