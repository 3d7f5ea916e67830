"""Harness overhead: steps/s of the training loop with every tracker on vs the same loop with trackers off.

Both variants run in one process on one model and optimizer, interleaved round by round (on, off, on,
off, ...) so drift in the machine hits both alike; each round's rate comes from the same clock reads
around the measured steps. "On" means the memory sampler thread (NVML on GPU, RSS on CPU, every
sample_interval_ms), per-step device synchronisation and timing, and the NVML energy counter on GPU.
Goal: ratio on/off >= 0.99.

    python benchmarks/overhead.py                       # lora and full on `tiny`, CPU
    python benchmarks/overhead.py --methods lora --rounds 7 -- model=1b train.batch_size=8   # overrides
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import OmegaConf

    from bench.launch.cli import CONF_DIR
    from bench.config import build_run_config

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        raw = hydra_compose(config_name="config", overrides=overrides)
    return build_run_config(OmegaConf.to_container(raw, resolve=True))


def measure(method_name: str, overrides: list[str], rounds: int, steps: int) -> dict:
    import torch

    from bench import methods

    from bench.cell import models
    from bench.tasks import synthetic
    from bench.cell.step_loop import train_steps
    from bench.trackers.energy import EnergyMeter
    from bench.trackers.memory import MemoryTracker

    cfg = compose([f"method={method_name}", *overrides])
    device = models.resolve_device(cfg.device)
    method = methods.get(cfg.method.name)  # a method option (lora_all) names its module (lora)
    compute = models.train_dtype(cfg.train.precision, device)
    torch.manual_seed(cfg.train.seed)
    model = method.wrap(models.build_model(cfg, device, method.weights_dtype(cfg, compute)), cfg)
    optimizer = method.make_optimizer(model, cfg)
    t = cfg.train
    data = synthetic.batches(model.config.vocab_size, t.batch_size, t.seq_len, device, t.seed)
    common = dict(steps=steps + t.warmup_steps, warmup_steps=t.warmup_steps, grad_accum=t.grad_accum,
                  device=device, autocast_dtype=method.autocast_dtype(cfg, compute))
    train_steps(model, optimizer, data, **common, per_step_timing=False)  # settle allocator and caches
    rates: dict[str, list[float]] = {"on": [], "off": []}
    for _ in range(rounds):
        for variant in ("on", "off"):
            if variant == "on":
                memory = MemoryTracker(device, cfg.sample_interval_ms, rss_interval_ms=cfg.rss_sample_interval_ms)
                energy = EnergyMeter(memory.handle) if device == "cuda" else None
                memory.start()
                with memory.phase("train"):
                    result = train_steps(model, optimizer, data, **common, per_step_timing=True,
                                         on_measure_start=energy.resume if energy else None,
                                         on_measure_end=energy.pause if energy else None)
                memory.stop()
            else:
                result = train_steps(model, optimizer, data, **common, per_step_timing=False)
            rates[variant].append(result.measured_steps / result.measured_seconds)
    on, off = statistics.median(rates["on"]), statistics.median(rates["off"])
    paired = statistics.median(a / b for a, b in zip(rates["on"], rates["off"]))
    return {"paired_ratio": paired, "method": method_name, "model": cfg.model.name, "device": device, "batch": t.batch_size,
            "seq_len": t.seq_len, "steps_per_round": steps, "rounds": rounds, "on_steps_per_s": on,
            "off_steps_per_s": off, "ratio": on / off, "rates": rates}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="lora,full")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--steps", type=int, default=10, help="measured steps per round")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. model=1b train.batch_size=8")
    args = parser.parse_args()
    rows = [measure(m, args.overrides, args.rounds, args.steps) for m in args.methods.split(",")]
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    print("\n| method | model | device | batch x seq | trackers on (steps/s) | off (steps/s) | on/off "
          "| median per-round on/off |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['method']} | {r['model']} | {r['device']} | {r['batch']} x {r['seq_len']} | "
              f"{r['on_steps_per_s']:.3f} | {r['off_steps_per_s']:.3f} | {r['ratio']:.3f} | {r['paired_ratio']:.3f} |")
    print(f"(medians of {args.rounds} interleaved rounds of {args.steps} measured steps each; "
          f"goal on/off >= 0.99)")


if __name__ == "__main__":
    main()
