"""Hardware fit: on which GPUs of the catalog (conf/gpu/) each measured (model, method) fits.

From a measured peak where the cell succeeded; from the preflight estimate stored in the record (marked
'est.') where it was skipped or failed; an OOM rules out every GPU with no more memory than the one it ran
out on. A GPU's memory is the catalog's decimal figure (80 GB -> 80e9 bytes), or the memory the record's
own GPU reported when that is larger. Only GPU records: CPU resident memory (fp32, the whole Python process)
says little about GPU memory.
"""
from __future__ import annotations

from bench.report.cells import Cell, Table, failure_cell, gb, model_header
from bench.report.groups import Group, workload, workload_title
from bench.report.load import Rec


def load_gpus() -> list:
    """The catalog sorted by memory (bench.estimate.gpus reads the YAML; it imports no torch)."""
    try:
        from bench.estimate.gpus import load_catalog

        return sorted(load_catalog().values(), key=lambda g: (g.memory_gb, g.name))
    except (OSError, ValueError, KeyError, TypeError, ImportError):
        return []


def _capacity(gpu, rec: Rec) -> float:
    own = rec["gpu_memory_bytes"] if gpu.matches(rec["gpu_name"] or "") else None
    return max(gpu.memory_gb * 1e9, own or 0)


def _estimate(rec: Rec) -> int | None:
    return rec["est_needs_device_bytes"] if rec["est_device"] == "cuda" else None


def fit_cell(rec: Rec, gpu) -> Cell:
    capacity = _capacity(gpu, rec)
    if rec.ok and rec["peak_bytes"] is not None:
        fits = rec["peak_bytes"] <= capacity
        return Cell("fits" if fits else "no", rec["id"], "fits" if fits else "nofit")
    if rec["status"] == "oom" and rec["gpu_memory_bytes"] and capacity <= rec["gpu_memory_bytes"]:
        return Cell("no (OOM)", rec["id"], "fail")
    est = _estimate(rec)
    if est is None or (rec["status"] == "oom" and est <= capacity):
        return Cell("?", rec["id"], "none")  # an OOM the estimate did not foresee: not known above it
    return Cell("fits (est.)" if est <= capacity else "no (est.)", rec["id"], "est")


def hardware_fit(group: Group, gpus: list | None = None) -> Table | None:
    if group.device != "cuda":
        return None
    gpus = load_gpus() if gpus is None else gpus
    if not gpus:
        return None
    workloads = {workload(r) for r in group.records}
    table = Table(f"fit-{group.slug}", "Hardware fit",
                  "Does the cell's peak fit in each GPU's memory? From the measured peak; 'est.' = from the "
                  "preflight estimate stored in a record that was not measured (skipped or failed); 'no (OOM)' = "
                  "ran out of memory on a GPU at least this large; ? = ran out of memory on a smaller GPU where the "
                  "estimate said it fits, unknown here. GPU memory as in conf/gpu/ (decimal GB).",
                  ["Model", "Method"] + (["Workload"] if len(workloads) > 1 else []) + ["Peak (GB)"]
                  + [f"{g.name} ({g.memory_gb:g} GB)" for g in gpus] + ["Record"],
                  cell_refs=False)
    for rec in group.records:
        if rec.ok and rec["peak_bytes"] is not None:
            peak = Cell(gb(rec["peak_bytes"]), rec["id"])
        else:
            peak = failure_cell(rec, with_estimate=True)
        where = [Cell(workload_title(workload(rec)))] if len(workloads) > 1 else []
        table.rows.append([Cell(model_header(group.records, rec["model"])), Cell(rec["label"]), *where, peak]
                          + [fit_cell(rec, g) for g in gpus] + [Cell(f"#{rec['id']}", rec["id"])])
    return table
