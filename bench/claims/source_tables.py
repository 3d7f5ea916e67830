"""The published tables the report replicates: tables.yaml read and checked into `SourceTable`s, and which
records match a table's cell. A bad entry is one SourceTablesError line naming the table and the key. Pure
Python, no torch: a cell's settings are read off conf/ (the method's and model's YAML, their `defaults` chain
followed), never composed through Hydra, so matching records costs no estimator time.

A record matches a cell when its stored config agrees on every setting the cell's overrides fix: the method's
whole YAML (its learning rate and weight decay aside: they change neither memory nor speed) with the cell's
method.* overrides on top, the model's name, and the stand-in's task and train.* values. A method setting the
record lacks (added to bench after it was made) is taken as its default; a setting the cell names is required."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from bench.conf_dir import conf_dir

TABLES = Path(__file__).with_name("tables.yaml")
METRICS = {"peak_gb": "GB", "steps_per_s": "steps/s", "tokens_per_s": "tokens/s", "trainable_pct": "%",
           "gb_per_model_gb": "GB per GB of model", "speed_vs": "relative steps/s"}
CELL_KEYS = ("method", "model", "metric", "versus")
TABLE_KEYS = {"key", "source", "caption", "setup", "stand_ins", "label_columns", "cell", "columns", "rows"}
IGNORED = {"lr", "weight_decay"}  # method settings that change neither memory nor speed


class SourceTablesError(ValueError):
    """A bad tables.yaml entry: one line naming the table and the key."""


@dataclass(frozen=True)
class Method:
    key: str
    overrides: tuple[str, ...]
    text: str
    missing: str | None = None  # why bench can't run it (its conf/method/ option is absent)


@dataclass(frozen=True)
class Spec:
    """One cell of bench's: what stands in for one published figure."""
    method: Method
    model: str  # a conf/model/ option
    metric: str
    versus: Method | None = None

    @property
    def overrides(self) -> tuple[str, ...]:
        return (*self.method.overrides, f"model={self.model}")


@dataclass
class SourceTable:
    key: str
    source: str
    caption: str
    setup: str
    stand_ins: str
    label_columns: list[str]
    columns: list[str]
    rows: list[tuple[list[str], list[tuple[str | None, Spec]]]] = field(default_factory=list)  # labels, cells


@dataclass
class Tables:
    standin_text: str
    standin: tuple[str, ...]
    methods: dict[str, Method]
    tables: list[SourceTable]


def _yaml(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise SourceTablesError(f"{path.name}: not a mapping")
    return data


@lru_cache(maxsize=256)
def group_values(group: str, option: str) -> dict[str, Any] | None:
    """conf/<group>/<option>.yaml with its `defaults` chain merged (later wins); None when the option is absent.
    Cached: callers must not change what it returns."""
    path = conf_dir() / group / f"{option}.yaml"
    if not path.is_file():
        return None
    data = _yaml(path)
    merged: dict[str, Any] = {}
    for entry in data.pop("defaults", None) or []:
        if entry == "_self_":
            continue
        parent = group_values(group, str(entry)) if isinstance(entry, str) else None
        if parent is None:
            raise SourceTablesError(f"conf/{group}/{option}.yaml: defaults entry {entry!r} is not a {group} option")
        merged.update(parent)
    merged.update(data)
    return merged


@lru_cache(maxsize=1024)
def expected(spec: Spec, standin: tuple[str, ...]) -> dict[str, tuple[Any, bool]]:
    """config path -> (value a record must hold to be this cell, whether the record must hold the key at all).
    A setting only the method's YAML gives may be absent from a record made before it existed (it ran at the
    default then); one the cell's overrides name, and each group's name, must be there. Cached: don't change it."""
    out: dict[str, tuple[Any, bool]] = {}
    for override in (*standin, *spec.overrides):
        key, value = override.split("=", 1)
        if "." not in key:  # a group option: its YAML
            values = group_values(key, value) or {}
            if key == "method":
                out.update({f"method.{k}": (v, k == "name") for k, v in values.items() if k not in IGNORED})
            else:
                out[f"{key}.name"] = (values.get("name", value), True)
        else:
            out[key] = (yaml.safe_load(value), True)
    return out


_ABSENT = object()


def model_name(option: str) -> str:
    """The model a conf/model/ option names (a size alias resolved: 7b -> llama2-7b)."""
    return str((group_values("model", option) or {}).get("name", option))


def matches(raw: dict[str, Any], want: dict[str, tuple[Any, bool]]) -> bool:
    config = raw.get("config")
    for path, (value, required) in want.items():
        node: Any = config
        for part in path.split("."):
            node = node.get(part, _ABSENT) if isinstance(node, dict) else _ABSENT
        if node is _ABSENT and not required:
            continue
        if node != value:
            return False
    return True


def _fail(where: str, key: str, why: str) -> SourceTablesError:
    return SourceTablesError(f"{where}: {key} {why}")


def _text(where: str, key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _fail(where, key, f"must be a non-empty string (got {value!r})")
    return value


def _methods(raw: Any) -> dict[str, Method]:
    if not isinstance(raw, dict) or not raw:
        raise _fail("methods", "methods", "must map method keys to {overrides, text}")
    out = {}
    for key, entry in raw.items():
        where = f"method {key}"
        if not isinstance(entry, dict) or set(entry) - {"overrides", "text"}:
            raise _fail(where, "entry", "must hold only overrides and text")
        overrides = entry.get("overrides")
        if not isinstance(overrides, list) or not overrides or not all(isinstance(o, str) and "=" in o
                                                                        for o in overrides):
            raise _fail(where, "overrides", "must be a list of key=value strings")
        option = next((o.split("=", 1)[1] for o in overrides if o.startswith("method=")), None)
        if option is None:
            raise _fail(where, "overrides", "must choose the method (method=NAME)")
        missing = None if (conf_dir() / "method" / f"{option}.yaml").is_file() else \
            f"not modelled: bench has no method {option!r} (conf/method/{option}.yaml)"
        out[key] = Method(key, tuple(overrides), _text(where, "text", entry.get("text")), missing)
    return out


def _spec(where: str, parts: list[tuple[str, dict[str, Any]]], methods: dict[str, Method]) -> Spec:
    merged: dict[str, Any] = {}
    setters: dict[str, str] = {}
    for name, part in parts:
        for key in CELL_KEYS:
            if key in part:
                if setters.get(key) in ("column", "row") and name in ("column", "row"):
                    raise _fail(where, key, "is set by both its column and its row")
                merged[key], setters[key] = part[key], name
    for key in ("method", "model", "metric"):
        if key not in merged:
            raise _fail(where, key, "is missing (set it on the table's cell, the column or the row)")
    if merged["metric"] not in METRICS:
        raise _fail(where, "metric", f"must be one of {', '.join(METRICS)} (got {merged['metric']!r})")
    for key in ("method", "versus"):
        if key in merged and merged[key] not in methods:
            raise _fail(where, key, f"must be a key of methods (got {merged[key]!r})")
    if (merged["metric"] == "speed_vs") != ("versus" in merged):
        raise _fail(where, "versus", "is needed by metric speed_vs, and only by it")
    if not (conf_dir() / "model" / f"{merged['model']}.yaml").is_file():
        raise _fail(where, "model", f"must be a conf/model/ option (got {merged['model']!r})")
    return Spec(methods[merged["method"]], str(merged["model"]), merged["metric"],
                methods[merged["versus"]] if "versus" in merged else None)


def _table(raw: Any, index: int, methods: dict[str, Method]) -> SourceTable:
    if not isinstance(raw, dict):
        raise _fail(f"table {index + 1}", "entry", "must be a mapping")
    where = f"table {raw.get('key', index + 1)}"
    if unknown := set(raw) - TABLE_KEYS:
        raise _fail(where, sorted(unknown)[0], "is not a table key")
    labels = raw.get("label_columns")
    columns, rows, cell = raw.get("columns"), raw.get("rows"), raw.get("cell") or {}
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
        raise _fail(where, "label_columns", "must be a list of column names")
    for key, value in (("columns", columns), ("rows", rows)):
        if not isinstance(value, list) or not value or not all(isinstance(x, dict) for x in value):
            raise _fail(where, key, "must be a non-empty list of mappings")
    table = SourceTable(_text(where, "key", raw.get("key")), *(_text(where, k, raw.get(k)) for k in
                        ("source", "caption", "setup", "stand_ins")), labels,
                        [_text(f"{where} column {i + 1}", "label", c.get("label")) for i, c in enumerate(columns)])
    for i, row in enumerate(rows):
        row_where = f"{where} row {i + 1}"
        names, published = row.get("labels"), row.get("published")
        if not isinstance(names, list) or len(names) != len(labels):
            raise _fail(row_where, "labels", f"must list {len(labels)} value(s), one per label column")
        if not isinstance(published, list) or len(published) != len(columns):
            raise _fail(row_where, "published", f"must list {len(columns)} value(s), one per column (null: none)")
        cells = [(None if p is None else str(p),
                  _spec(f"{row_where} column {j + 1}", [("table", cell), ("column", c), ("row", row)], methods))
                 for j, (p, c) in enumerate(zip(published, columns))]
        table.rows.append(([str(n) for n in names], cells))
    return table


def _load(path: Path) -> Tables:
    try:
        data = _yaml(path)
    except (OSError, yaml.YAMLError) as exc:
        raise SourceTablesError(f"unreadable ({(str(exc).splitlines() or ['?'])[0]})") from None
    standin = data.get("standin")
    if not isinstance(standin, dict) or not isinstance(standin.get("overrides"), list):
        raise _fail("standin", "overrides", "must be a list of key=value strings")
    methods = _methods(data.get("methods"))
    tables = data.get("tables")
    if not isinstance(tables, list) or not tables:
        raise _fail("tables", "tables", "must be a non-empty list")
    out = [_table(t, i, methods) for i, t in enumerate(tables)]
    if len({t.key for t in out}) != len(out):
        raise _fail("tables", "key", "must be unique")
    return Tables(_text("standin", "text", standin.get("text")), tuple(map(str, standin["overrides"])), methods, out)


@lru_cache(maxsize=4)
def load_tables(path: Path = TABLES) -> Tables:
    """tables.yaml read and checked (SourceTablesError: one line naming the file, the table and the key)."""
    try:
        return _load(path)
    except SourceTablesError as exc:
        raise SourceTablesError(f"{path.name}: {exc}") from None
