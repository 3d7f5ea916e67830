"""bench.advise's answer as a document (the --json output) and as the text it prints: the verdict line, the
ranked table (peak, headroom, expected tokens/s with its 95% interval and where it comes from, what each
configuration gives up), the bench.run command per row, and the methods the estimator does not model."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bench import stats

if TYPE_CHECKING:
    from bench.advise_rank import Row
    from bench.estimate.gpus import Gpu

GB = 1e9


def _row_doc(row: Row, place: int | None, vs_top: str | None) -> dict[str, Any]:
    c, tps = row.cand, row.speed.tokens_per_s
    return {"rank": place, "label": row.label, "method": c.method, "adapter_rank": c.rank, "optimizer": c.optimizer,
            "gradient_checkpointing": c.checkpointing, "extra_overrides": list(c.extra), "fits": row.fits,
            "tight": row.tight, "batch_size": row.batch_size, "grad_accum": row.grad_accum,
            "tokens_per_step": row.tokens_per_step, "peak_bytes": row.peak_bytes,
            "headroom_bytes": row.headroom_bytes, "trainable_pct": row.trainable_pct, "base": row.base,
            "gives_up": row.gives_up, "tokens_per_s": tps.to_json() if tps else None, "speed_from": row.speed.label,
            "speed_measured": row.speed.measured, "vs_top": vs_top, "command": row.command, "notes": row.notes}


def _vs_top(ranked: list[Row], goal: str) -> list[str | None]:
    """Speed goal: each row's tokens/s relative to #1 ('-12% ±8%', or n.s. when the interval includes no
    change: a tie, never a winner)."""
    top = ranked[0].speed.tokens_per_s if ranked else None
    if goal != "speed" or top is None:
        return [None] * len(ranked)
    out: list[str | None] = []
    for row in ranked:
        tps = row.speed.tokens_per_s
        out.append(None if tps is None else "#1" if row is ranked[0] else stats.ratio(tps, top).text())
    return out


def verdict(gpu: Gpu, rows: list[Row], ranked: list[Row], goal: str) -> str:
    where = f"{gpu.name} ({gpu.memory_gb:g} GB)"
    if not rows:
        return f"Nothing to predict for {where}."
    if not ranked:
        low = min(rows, key=lambda r: r.peak_bytes)
        return (f"Nothing fits {where}: the smallest predicted peak is {low.peak_bytes / GB:.1f} GB ({low.label}, "
                f"micro-batch {low.batch_size}); shard it (nproc=N parallel=fsdp) or choose a larger GPU.")
    top = ranked[0]
    tight = " (tight: headroom under the estimator's 5 % calibration error)" if top.tight else ""
    return (f"{len(ranked)} of {len(rows)} configurations fit {where}; best for {goal}: {top.label}, micro-batch "
            f"{top.batch_size} x {top.grad_accum}, peak {top.peak_bytes / GB:.1f} GB, headroom "
            f"{top.headroom_bytes / GB:.1f} GB{tight}.")


def document(opts: dict[str, Any], gpu: Gpu, rows: list[Row], ranked: list[Row], refused: list[str],
             seconds: float) -> dict[str, Any]:
    vs = _vs_top(ranked, opts["goal"])
    ranked_ids = {id(r) for r in ranked}
    first = rows[0] if rows else None
    return {"tool": "bench.advise", "model": opts["model"], "model_name": first.model_name if first else None,
            "params_total": first.params_total if first else None,
            "gpu": {"key": gpu.key, "name": gpu.name, "memory_gb": gpu.memory_gb}, "seq_len": opts["seq_len"],
            "target_tokens_per_step": opts["tokens"], "goal": opts["goal"], "seconds": round(seconds, 2),
            "verdict": verdict(gpu, rows, ranked, opts["goal"]), "not_modelled": refused,
            "predicted": len(rows), "fit": len(ranked),
            "ranked": [_row_doc(r, i + 1, v) for i, (r, v) in enumerate(zip(ranked, vs))],
            "not_fitting": [_row_doc(r, None, None) for r in rows if id(r) not in ranked_ids]}


def _tps(doc_row: dict[str, Any]) -> str:
    t = doc_row["tokens_per_s"]
    if not t:
        return "n/a"
    ci = t["ci95"]
    if not ci:
        return f"{t['value']:,.0f} (no interval)"
    return f"{t['value']:,.0f} ±{max(ci[1] - t['value'], t['value'] - ci[0]):,.0f}"


def text_report(doc: dict[str, Any], top: int) -> str:
    lines = [f"bench.advise: {doc['model_name']} (model={doc['model']}, {doc['params_total'] / 1e9:.2f}B parameters) "
             f"on {doc['gpu']['name']} ({doc['gpu']['memory_gb']:g} GB), seq_len {doc['seq_len']}, target "
             f"{doc['target_tokens_per_step']:,} tokens per step, goal {doc['goal']}; {doc['predicted']} "
             f"configurations predicted in {doc['seconds']:.1f} s" if doc["model_name"] else "bench.advise:",
             "", doc["verdict"]]
    shown = doc["ranked"] if top == 0 else doc["ranked"][:top]
    if shown:
        lines += ["", "| # | configuration | batch x accum | peak GB | headroom GB | tokens/s (95% CI) | vs #1 "
                  "| speed from | trainable % | gives up |", "|---|---|---|---|---|---|---|---|---|---|"]
        for r in shown:
            room = f"{r['headroom_bytes'] / GB:.1f}" + (" tight" if r["tight"] else "")
            lines.append(f"| {r['rank']} | {r['label']} | {r['batch_size']} x {r['grad_accum']} | "
                         f"{r['peak_bytes'] / GB:.1f} | {room} | {_tps(r)} | {r['vs_top'] or '—'} | "
                         f"{r['speed_from']} | "
                         f"{r['trainable_pct']:.3g} | {r['gives_up']} |")
        lines += ["", "Commands (measure a row):"] + [f"{r['rank']:>3}. {r['command']}" for r in shown]
        if len(shown) < len(doc["ranked"]):
            lines.append(f"... {len(doc['ranked']) - len(shown)} more fit (top=0 prints all; --json has every row)")
    if doc["not_modelled"]:
        lines += ["", f"Not modelled by bench.estimate (not ranked, no fit verdict): {', '.join(doc['not_modelled'])}"]
    lines += ["", "Peaks: bench.estimate's CUDA model, within ±5 % on its 16 H100 records (bench/estimate/README.md); "
              "'tight' = headroom under 5 % of the peak. Speeds: 'measured' = a record of this cell on this GPU; "
              "'est.' = FLOP floor / the hardware-FLOP utilisation (HFU) of the named record, its interval kept."]
    return "\n".join(lines)
