"""bench's native training loop vs the transformers Trainer on the same model, adapters, optimizer and data.

One variant per process (so each has its own memory peak); run them alternately and compare:

    for v in native trainer native trainer; do
        python benchmarks/trainer_vs_native.py --loop $v --json out/$v-$i.json -- method=lora_all model=7b \\
            method.rank=16 train.batch_size=4 train.seq_len=512 train.gradient_checkpointing=true
    done
    python benchmarks/trainer_vs_native.py --table out/*.json

Both loops get the model built by bench (random init, the method's wrap, so checkpointing is set the same
way) and the optimizer bench makes. The Trainer keeps its own defaults otherwise (gradient clipping at 1.0,
its dataloader, loss bookkeeping): that is the comparison a user makes. Steps/s is taken from the steps
after the warm-up, with the device synchronised before each clock read; peak memory is the same tracker
bench uses (NVML sampled every 10 ms and torch's allocator peaks).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def synthetic_dataset(vocab: int, n: int, seq_len: int, seed: int):
    import torch

    class Synthetic(torch.utils.data.Dataset):
        def __init__(self) -> None:
            g = torch.Generator().manual_seed(seed)
            self.ids = torch.randint(0, vocab, (n, seq_len), generator=g)

        def __len__(self) -> int:
            return n

        def __getitem__(self, i: int) -> dict:
            return {"input_ids": self.ids[i], "labels": self.ids[i]}

    return Synthetic()


def run_trainer(model, optimizer, cfg, device: str, autocast) -> list[float]:
    import torch
    from transformers import Trainer, TrainerCallback, TrainingArguments

    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    stamps: list[float] = []

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            sync()
            stamps.append(time.perf_counter())

    t = cfg.train
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out, max_steps=t.steps, per_device_train_batch_size=t.batch_size,
            gradient_accumulation_steps=t.grad_accum, learning_rate=cfg.method.lr, lr_scheduler_type="constant",
            bf16=autocast == torch.bfloat16, fp16=autocast == torch.float16, logging_strategy="no",
            save_strategy="no", report_to=[], dataloader_num_workers=0, remove_unused_columns=False,
            use_cpu=device == "cpu", seed=t.seed, disable_tqdm=True)
        data = synthetic_dataset(model.config.vocab_size, t.steps * t.batch_size * t.grad_accum, t.seq_len, t.seed)
        trainer = Trainer(model=model, args=args, train_dataset=data, optimizers=(optimizer, None),
                          callbacks=[Clock()])
        trainer.train()
    return stamps


def run_native(model, optimizer, cfg, device: str, autocast) -> list[float]:
    from bench.tasks import synthetic
    from bench.cell.step_loop import StepLoop

    t = cfg.train
    data = synthetic.batches(model.config.vocab_size, t.batch_size, t.seq_len, device, t.seed)
    loop = StepLoop(model, optimizer, data, warmup_steps=0, grad_accum=t.grad_accum, device=device,
                    autocast_dtype=autocast, per_step_timing=False)
    stamps = []
    for _ in range(t.steps):
        loop.run(1)  # synchronises at the end of each call
        stamps.append(time.perf_counter())
    return stamps


def measure(loop: str, overrides: list[str]) -> dict:
    import torch

    from bench import methods

    from bench.cell import models
    from bench.trackers.memory import MemoryTracker
    from overhead import compose

    cfg = compose(overrides)
    device = models.resolve_device(cfg.device)
    method = methods.get(cfg.method.name)
    compute = models.train_dtype(cfg.train.precision, device)
    autocast = method.autocast_dtype(cfg, compute)
    memory = MemoryTracker(device, cfg.sample_interval_ms, rss_interval_ms=cfg.rss_sample_interval_ms)
    memory.start()
    torch.manual_seed(cfg.train.seed)
    with memory.phase("load"):
        model = method.wrap(models.build_model(cfg, device, method.weights_dtype(cfg, compute)), cfg)
        optimizer = method.make_optimizer(model, cfg)
    with memory.phase("train"):
        stamps = (run_trainer if loop == "trainer" else run_native)(model, optimizer, cfg, device, autocast)
    memory.stop()
    t = cfg.train
    measured = len(stamps) - 1 - t.warmup_steps
    seconds = stamps[-1] - stamps[t.warmup_steps]
    summary = memory.summary()
    train = summary["phases"].get("train", {})
    return {"loop": loop, "method": cfg.method.name, "model": cfg.model.name, "device": device,
            "gpu": torch.cuda.get_device_name() if device == "cuda" else None,
            "batch": t.batch_size, "seq_len": t.seq_len, "rank": getattr(cfg.method, "rank", None),
            "gradient_checkpointing": t.gradient_checkpointing, "steps": len(stamps),
            "measured_steps": measured, "steps_per_s": measured / seconds,
            "tokens_per_s": measured * t.batch_size * t.seq_len * t.grad_accum / seconds,
            "peak_bytes": summary["peak_bytes"], "peak_source": summary["peak_source"],
            "torch_max_reserved": train.get("torch_max_reserved"),
            "torch_max_allocated": train.get("torch_max_allocated"), "overrides": overrides}


def table(paths: list[Path]) -> None:
    rows = [json.loads(p.read_text()) for p in paths]
    print("| loop | model | method | batch x seq | steps/s | tokens/s | peak (GB) | torch reserved (GB) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in sorted(rows, key=lambda r: r["loop"]):
        gb = lambda v: f"{v / 1e9:.2f}" if v else "n/a"  # noqa: E731
        print(f"| {r['loop']} | {r['model']} | {r['method']} r{r['rank']} | {r['batch']} x {r['seq_len']} | "
              f"{r['steps_per_s']:.3f} | {r['tokens_per_s']:,.0f} | {gb(r['peak_bytes'])} | "
              f"{gb(r['torch_max_reserved'])} |")
    by = {loop: [r["steps_per_s"] for r in rows if r["loop"] == loop] for loop in ("native", "trainer")}
    if by["native"] and by["trainer"]:
        ratio = (sum(by["trainer"]) / len(by["trainer"])) / (sum(by["native"]) / len(by["native"]))
        print(f"Trainer / native steps/s (mean of {len(by['trainer'])} and {len(by['native'])} runs): {ratio:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loop", choices=("native", "trainer"))
    parser.add_argument("--json", type=Path, help="write the row here")
    parser.add_argument("--table", nargs="+", type=Path, help="print the table of these rows and stop")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. method=lora model=7b")
    args = parser.parse_args()
    if args.table:
        return table(args.table)
    if not args.loop:
        parser.error("--loop native|trainer (or --table FILES)")
    row = measure(args.loop, args.overrides)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(row, indent=1))
    print(json.dumps({k: v for k, v in row.items() if k != "overrides"}))


if __name__ == "__main__":
    main()
