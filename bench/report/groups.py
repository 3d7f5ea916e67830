"""Hardware groups and cell labels.

Records are grouped by the hardware that made them (GPU name and memory; or CPU model, cores and memory)
and nothing is ever compared or combined across groups. Within a group, differing package versions are
flagged as a mixed environment. Each record gets a short id (#n, in the records appendix) and a label that
tells its cell apart from the others in its group: method (and base bits), then rank / optimizer where a
method has several, then whatever else in the config differs between records of the same cell. Methods are
ordered by family (full weights, adapters, quantised base: bench.methods.family), then in the registry's order.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable

from bench import methods
from bench.record import HASH_EXCLUDED
from bench.report.load import PACKAGES, Rec

# the registry's order (full, lora, qlora, galore, then any other method in bench/methods/ by name);
# bench.methods imports no torch, so the report stays torch-free
METHOD_ORDER = methods.METHODS
GB = 1e9


@dataclass
class Group:
    key: tuple
    title: str
    device: str  # cuda | cpu
    records: list[Rec] = field(default_factory=list)
    _index: dict[str, dict[Any, list[Rec]]] = field(default_factory=dict, repr=False, compare=False)

    def by(self, name: str, key: Callable[[Rec], Any]) -> dict[Any, list[Rec]]:
        """The records grouped by key(rec), built once per name after the group is complete, so a table looks
        its cells up in one pass over the records instead of one pass per cell."""
        if name not in self._index:
            out: dict[Any, list[Rec]] = defaultdict(list)
            for rec in self.records:
                out[key(rec)].append(rec)
            self._index[name] = dict(out)
        return self._index[name]

    @property
    def slug(self) -> str:
        keep = "".join(c if c.isalnum() else "-" for c in self.title.lower())
        return "-".join(filter(None, keep.split("-")))[:60] or "group"

    def environments(self) -> dict[str, dict[str, int]]:
        """Per package (and python, driver, CUDA): version -> number of records."""
        seen: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for rec in self.records:
            for name in (*(f"pkg_{p.replace('-', '_')}" for p in PACKAGES), "python", "gpu_driver", "gpu_cuda"):
                seen[name][str(rec[name])] += 1
        return {k: dict(v) for k, v in seen.items()}

    def mixed(self) -> dict[str, dict[str, int]]:
        """Only the versions that differ between records of this group."""
        return {k: v for k, v in self.environments().items() if len(v) > 1}


def hardware_key(rec: Rec) -> tuple:
    if rec["device"] == "cuda":
        gb = round((rec["gpu_memory_bytes"] or 0) / 2**30)
        return ("cuda", rec["gpu_name"] or "unknown GPU", gb)
    host = round((rec["host_memory_bytes"] or 0) / GB)
    return ("cpu", rec["cpu_model"] or "unknown CPU", rec["cpu_cores"], host)


def hardware_title(key: tuple) -> str:
    if key[0] == "cuda":  # names like "NVIDIA H100 80GB HBM3" say their memory already
        return f"{key[1]} ({key[2]} GiB)" if key[2] and "GB" not in str(key[1]).upper() else str(key[1])
    cores = f", {key[2]} cores" if key[2] else ""
    memory = f", {key[3]} GB RAM" if key[3] else ""
    return f"CPU {key[1]}{cores}{memory}"


def method_base(rec: Rec) -> str:
    bits = rec["bits"]
    return f"{rec['method']} {bits}-bit" if bits is not None and bits < 16 else str(rec["method"])


def method_family(rec: Rec) -> str:
    """The record's method family (bench.methods.FAMILIES: full weights, adapters, quantised base)."""
    return methods.family(str(rec["method"])) or "other"


def method_sort_key(rec: Rec) -> tuple:
    """Family first (bench.methods.FAMILIES), then the registry's order within it."""
    method, family = rec["method"], method_family(rec)
    rank = methods.FAMILIES.index(family) if family in methods.FAMILIES else len(methods.FAMILIES)
    order = METHOD_ORDER.index(method) if method in METHOD_ORDER else len(METHOD_ORDER)
    return (rank, order, method, -(rec["bits"] or 16), rec["rank"] or 0, str(rec["optimizer"]))


_MODELS: list[tuple[list[Rec], int, dict[str, tuple[float, str | None]]]] = []  # the last few record lists


def models_of(records: list[Rec]) -> dict[str, tuple[float, str | None]]:
    """Per model: its smallest parameter total and its first nominal size, in one pass over `records`,
    kept for the last few lists asked about (every table asks about each row's model: a pass per row would
    make a report quadratic in its records)."""
    for seen, length, index in _MODELS:
        if seen is records and length == len(records):
            return index
    index: dict[str, tuple[float, str | None]] = {}
    for r in records:
        size, nominal = index.get(r["model"], (float("inf"), None))
        index[r["model"]] = (min(size, r["params_total"] or float("inf")), nominal or r["model_nominal_size"])
    _MODELS.insert(0, (records, len(records), index))  # holding the list keeps its id from being reused
    del _MODELS[8:]
    return index


def model_params(records: list[Rec], model: str) -> float:
    """A model's size for ordering: the smallest total over its records (adapters add a little)."""
    return models_of(records).get(model, (float("inf"), None))[0]


def workload(rec: Rec) -> tuple:
    return (rec["task"], rec["batch_size"], rec["seq_len"], rec["grad_accum"])


def workload_title(key: tuple) -> str:
    task, batch, seq, accum = key
    if not (batch and seq):
        shape = "shape unknown"
    else:  # text examples are padded per batch, to at most max_length
        shape = f"batch {batch} x {seq} tokens" if task in (None, "synthetic") else f"batch {batch}, up to {seq} tokens"
    return f"{task}, {shape}" + (f", grad accum {accum}" if accum and accum > 1 else "")


def _config_leaves(config: Any, prefix: str = "") -> dict[str, str]:
    if not isinstance(config, dict):
        return {prefix: str(config)} if prefix else {}
    out: dict[str, str] = {}
    for key, value in config.items():
        if not prefix and key in (*HASH_EXCLUDED, "fault", "repeats"):
            continue
        out.update(_config_leaves(value, f"{prefix}{key}." if isinstance(value, dict) else f"{prefix}{key}"))
    return out


def assign_labels(records: list[Rec]) -> None:
    """Fill flat['label'] for the records of one group (see the module docstring)."""
    by_base: dict[str, list[Rec]] = defaultdict(list)
    for rec in records:
        by_base[method_base(rec)].append(rec)
    for base, recs in by_base.items():
        ranks = {r["rank"] for r in recs}
        optimizers = {r["optimizer"] for r in recs}
        for rec in recs:
            label = base
            if len(ranks) > 1 and rec["rank"] is not None:
                label += f" r{rec['rank']}"
            if len(optimizers) > 1:
                label += f" {rec['optimizer']}"
            rec.flat["label"] = label
    clashes: dict[tuple, list[Rec]] = defaultdict(list)
    for rec in records:
        clashes[(rec["label"], rec["model"], workload(rec))].append(rec)
    # The config keys that tell apart records sharing a label on one model, applied to every record with that
    # label, so one variant reads the same in every column (full (precision=mixed) at 1B and at 7B alike).
    telling: dict[str, list[str]] = defaultdict(list)
    for (label, _, _), recs in clashes.items():
        if len(recs) < 2:
            continue
        leaves = [_config_leaves(r.raw.get("config")) for r in recs]
        for key in sorted(k for k in set().union(*leaves) if len({lv.get(k) for lv in leaves}) > 1):
            if key not in telling[label]:
                telling[label].append(key)
    for rec in records:
        keys = telling.get(rec["label"], [])[:3]
        if keys:
            lv = _config_leaves(rec.raw.get("config"))
            rec.flat["label"] += " (" + ", ".join(f"{k.split('.')[-1]}={lv.get(k)}" for k in keys) + ")"


def build_groups(records: list[Rec]) -> list[Group]:
    """Groups in a stable order (GPUs first, by name), each record with its id, group and label."""
    groups: dict[tuple, Group] = {}
    for rec in records:
        key = hardware_key(rec)
        if key not in groups:
            groups[key] = Group(key, hardware_title(key), "cuda" if key[0] == "cuda" else "cpu")
        groups[key].records.append(rec)
    ordered = sorted(groups.values(), key=lambda g: (g.device != "cuda", g.title))
    next_id = 1
    for group in ordered:
        assign_labels(group.records)
        sizes = {r["model"]: model_params(group.records, r["model"]) for r in group.records}
        group.records.sort(key=lambda r: (sizes[r["model"]], str(r["model"]), method_sort_key(r), str(r["label"]),
                                          str(r["task"]), r["file"]))
        for rec in group.records:
            rec.flat["id"], rec.flat["group"] = next_id, group.title
            next_id += 1
    return ordered
