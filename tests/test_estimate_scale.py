"""bench.estimate at scale (issue 20): the inventory written down from the config (bench.estimate.analytic) against
the one read off the meta-built model, row for row; predictions from either path equal; the facts made once per
model x method x precision; no torch imported where the analytic path suffices; the blog grid composed per
method and per model equal to composing every cell. Timings are benchmarks/scale.py's, never asserted here."""
from __future__ import annotations

import os
import subprocess
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402

from bench.config import ConfigError, build_run_config  # noqa: E402
from bench.estimate import analytic  # noqa: E402
from bench.estimate import predict as p  # noqa: E402
from bench.estimate.states import optimizer_bytes, weight_bytes  # noqa: E402
from conftest import ROOT, compose_raw  # noqa: E402

pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning"),
              pytest.mark.filterwarnings("ignore:The following (rank|alpha)_pattern keys:RuntimeWarning")]
SMALL = ["model.arch.hidden_size=64", "model.arch.intermediate_size=160", "model.arch.num_hidden_layers=2",
         "model.arch.num_attention_heads=4", "model.arch.num_key_value_heads=2", "model.arch.vocab_size=256"]
# every method with estimator terms, on each architecture family the analytic path knows (reduced sizes)
SMALL_CASES = [(model, method) for model in ("tiny", "1b", "mistral-7b", "110b") for method in (
    ["method=full"], ["method=full", "method.precision=pure"], ["method=lora"],
    ["method=lora", "method.target_modules=[k_proj,down_proj]"],
    ["method=dora", "method.target_modules=all-linear"], ["method=qlora"], ["method=qlora", "method.base_bits=8"],
    ["method=galore", "method.rank=4"], ["method=galore", "method.rank=4", "method.target_modules=[attn,lm_head]"],
    ["method=rslora"], ["method=pissa", "method.rank=16"], ["method=olora"], ["method=loftq", "method.rank=16"],
    ["method=loraplus"])] + [("8x7b", m) for m in (
    ["method=full"], ["method=lora", "method.rank=4"], ["method=lora", "method.rank=4", "method.dropout=0",
                                                         "method.target_modules=all-linear"],
    ["method=dora", "method.rank=4"], ["method=galore", "method.rank=4"])]
# the real sizes (exact counts of 1B ... 8x7B); a few methods each, the meta build of these takes seconds
FULL_SIZE = [("tiny", ["method=qlora"]), ("1b", ["method=full"]), ("1b", ["method=qlora"]), ("7b", ["method=lora"]),
             ("7b", ["method=dora", "method.target_modules=all-linear"]),
             ("8x7b", ["method=lora", "method.dropout=0", "method.target_modules=all-linear"])]


def cfg_of(*overrides: str):
    return build_run_config(compose_raw(*overrides))


def both(cfg):
    """(analytic (arch, inventory) or None, meta-built (arch, inventory)); a ConfigError in place of either."""
    from bench.estimate.arch import arch_from_config
    from bench.estimate.inventory import build_inventory

    compute = p.compute_dtype_name(cfg, "cuda")
    try:
        written = analytic.build(cfg, compute)
    except ConfigError as exc:
        written = str(exc)
    try:
        net = p.build_meta_model(cfg, compute)
        built = (arch_from_config(net.config), build_inventory(cfg, net))
    except ConfigError as exc:
        built = str(exc)
    return written, built


def assert_same(written, built) -> None:
    assert written is not None, "the analytic path fell back to the meta build"
    if isinstance(built, str) or isinstance(written, str):
        assert written == built  # the same refusal, word for word
        return
    (arch, inv), (meta_arch, meta_inv) = written, built
    assert arch == meta_arch
    assert inv.rows == meta_inv.rows  # names, shapes, storage, trainable, kind, projected, materialised, in order
    assert inv.notes == meta_inv.notes and inv.terms == meta_inv.terms
    assert inv.summary() == meta_inv.summary()  # exact counts, by dtype
    for double_quant in (False, True):  # bytes exact, quantisation constants included
        assert weight_bytes(inv, double_quant) == weight_bytes(meta_inv, double_quant)


@pytest.mark.parametrize("model,method", SMALL_CASES, ids=lambda v: v if isinstance(v, str) else ",".join(v))
def test_analytic_inventory_equals_the_meta_build_on_reduced_architectures(model, method):
    assert_same(*both(cfg_of(f"model={model}", *method, *SMALL)))


@pytest.mark.parametrize("model,method", FULL_SIZE, ids=lambda v: v if isinstance(v, str) else ",".join(v))
def test_analytic_inventory_equals_the_meta_build_at_full_size(model, method):
    written, built = both(cfg_of(f"model={model}", *method))
    assert_same(written, built)
    if model == "1b" and method == ["method=full"]:
        assert written[1].total() == 1_235_814_400  # Llama 3.2 1B, tied embeddings (the H100 records' count)


def test_mixtral_refusals_are_the_same_without_a_meta_build():
    """QLoRA over fused experts and dropout on them are refused alike, by the analytic path without a build."""
    for overrides in (["method=qlora"], ["method=lora", "method.target_modules=all-linear"]):
        written, built = both(cfg_of("model=8x7b", *overrides, *SMALL))
        assert isinstance(built, str) and written == built


@pytest.mark.parametrize("overrides", [
    ["model.arch.model_type=gemma"],  # a family not written down here
    ["+model.arch.mlp_bias=true"],  # a key that changes the structure
    ["method=pissa"],  # rank 128 above a 64-wide projection: peft lowers it, the meta build knows by how much
    ["task=sst2"],  # a classification head
])
def test_architectures_and_methods_not_written_down_fall_back_to_the_meta_build(overrides, monkeypatch):
    cfg = cfg_of("model=tiny", "method=lora", *SMALL, *overrides)
    assert analytic.build(cfg, "float32") is None
    builds = []
    real = p.build_meta_model
    monkeypatch.setattr(p, "build_meta_model", lambda c, compute: builds.append(c) or real(c, compute))
    monkeypatch.setattr(p, "_FACTS", {})
    if "model.arch.model_type=gemma" in overrides:
        return  # transformers' gemma takes other keys: only the refusal to write it down is checked
    assert p.predict_cell(cfg, "cpu").inventory.total() > 0 and len(builds) == 1


def test_predictions_from_either_path_are_equal(monkeypatch):
    cells = [cfg_of("model=1b", "method=qlora", "train.batch_size=2", "train.seq_len=256"),
             cfg_of("model=7b", "method=full", "nproc=2", "parallel=fsdp"),
             cfg_of("model=tiny", "method=galore", "method.rank=16", "device=cpu")]
    for cfg in cells:
        device = "cpu" if cfg.device == "cpu" else "cuda"
        monkeypatch.setattr(p, "_FACTS", {})
        monkeypatch.setattr(p, "USE_ANALYTIC", True)
        fast = p.predict_cell(cfg, device)
        monkeypatch.setattr(p, "_FACTS", {})
        monkeypatch.setattr(p, "USE_ANALYTIC", False)
        slow = p.predict_cell(cfg, device)
        assert fast.components == slow.components and fast.peak_bytes == slow.peak_bytes
        assert fast.flops == slow.flops and fast.weights == slow.weights and fast.notes == slow.notes


def test_many_shapes_of_one_architecture_make_its_facts_once_and_memos_change_nothing(monkeypatch):
    """A sweep's shapes reuse one inventory; its memoised sums equal a fresh inventory's."""
    calls = []
    real = analytic.build
    monkeypatch.setattr(analytic, "build", lambda cfg, compute: calls.append(cfg) or real(cfg, compute))
    monkeypatch.setattr(p, "_FACTS", {})
    monkeypatch.setattr(p, "build_meta_model", lambda *a: pytest.fail("no meta build for a known architecture"))
    preds = [p.predict_cell(cfg_of("model=1b", "method=qlora", f"train.batch_size={b}", f"train.seq_len={s}"))
             for b in (1, 4) for s in (128, 1024)]
    assert len(calls) == 1 and len({pred.peak_bytes for pred in preds}) == 4
    inv = preds[0].inventory
    fresh = real(calls[0], "bfloat16")[1]
    for _ in range(2):  # a second call reads the memo: equal, and a copy the caller may change
        got = optimizer_bytes(inv, "paged_adamw", "cuda", None)
        got.states = -1
    assert optimizer_bytes(inv, "paged_adamw", "cuda", None) == optimizer_bytes(fresh, "paged_adamw", "cuda", None)
    assert weight_bytes(inv, True) == weight_bytes(fresh, True)


def test_predicting_a_known_architecture_imports_no_torch():
    code = ("import sys; from bench.estimate.__main__ import run_cells; "
            "rows = run_cells(['model=7b', 'method=lora', 'train.batch_size=1,2'], []); "
            "assert len(rows) == 2 and 'error' not in rows[0], rows; "
            "print(sorted(m for m in ('torch', 'transformers', 'peft') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_the_blog_grid_composed_per_method_and_per_model_equals_composing_every_cell():
    from bench.estimate import sweep
    from bench.launch.cli import CONF_DIR
    from bench.launch.grid import compose_all

    combos = [[f"method={m}", f"model={n}", "train.seq_len=256", "method.rank=8"] if m != "full"
              else [f"method={m}", f"model={n}", "train.seq_len=256"]
              for m in ("full", "lora", "qlora") for n in ("tiny", "7b", "8x7b")]
    spliced = sweep._spliced(str(CONF_DIR), combos)
    assert spliced is not None and spliced == compose_all(str(CONF_DIR), combos)
    assert sweep._spliced(str(CONF_DIR), [c + ["+experiment=first_run"] for c in combos]) is None  # not plain
