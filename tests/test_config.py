"""Config composition and validation (CPU, no model built)."""

import pytest

from bench.launch.cli import group_options
from bench.config import ConfigError, build_run_config
from conftest import compose_raw


def test_every_group_option_composes_and_binds_with_every_method():
    """Every method with every model, and every method with every task and train option (the full product
    of all four groups is thousands of Hydra compositions: minutes, for no extra coverage of the binding)."""
    methods, models, tasks, trains = (group_options(g) for g in ("method", "model", "task", "train"))
    combos = [(m, model, "synthetic", "default") for m in methods for model in models]
    combos += [(m, "tiny", task, train) for m in methods for task in tasks for train in trains]
    assert len(combos) >= 4 * 10
    for method, model, task, train in combos:
        cfg = build_run_config(compose_raw(f"method={method}", f"model={model}", f"task={task}",
                                           f"train={train}"))
        assert cfg.method.name == {"qlora8": "qlora", "lora_all": "lora", "hqq3": "hqq"}.get(method, method)
        bits = {"qlora8": 8, "qlora": 4, "hqq": 2, "hqq3": 3, "torchao_int8": 8}
        assert cfg.method.base_bits == bits.get(method, 16)
        assert cfg.model.name and (cfg.model.pretrained or cfg.model.arch.get("model_type"))
        assert cfg.task.name == task


@pytest.mark.parametrize("alias,target", [("7b", "llama2-7b"), ("13b", "llama2-13b"), ("70b", "llama2-70b"),
                                          ("33b", "llama-33b"), ("65b", "llama-65b"), ("8b", "llama3-8b"),
                                          ("8x7b", "mixtral-8x7b")])
def test_size_alias_is_the_named_architecture(alias, target):
    assert compose_raw(f"model={alias}")["model"] == compose_raw(f"model={target}")["model"]


def test_method_defaults_follow_the_papers():
    qlora = build_run_config(compose_raw("method=qlora")).method
    assert (qlora.rank, qlora.alpha, qlora.quant_type, qlora.double_quant, qlora.base_bits) == (64, 16, "nf4", True, 4)
    assert qlora.target_module_list() == ["all-linear"]
    lora = build_run_config(compose_raw("method=lora")).method
    assert lora.target_module_list() == ["q_proj", "v_proj"]
    galore = build_run_config(compose_raw("method=galore")).method
    assert (galore.rank, galore.update_proj_gap, galore.scale, galore.proj_type) == (128, 200, 0.25, "std")


@pytest.mark.parametrize("overrides,key", [
    (["method.rank=0"], "method.rank"),
    (["method=galore", "method.rank=-4"], "method.rank"),
    (["train.steps=3", "train.warmup_steps=3"], "train.steps"),
    (["method=galore", "method.base_bits=4"], "method.base_bits"),
    (["method=full", "method.base_bits=4"], "method.base_bits"),
    (["method=qlora", "method.base_bits=2"], "method.base_bits"),
    (["method=qlora", "method.quant_type=int3"], "method.quant_type"),
    (["method=full", "method.optimizer=sgd"], "method.optimizer"),
    (["train.precision=fp8"], "train.precision"),
    (["train.batch_size=0"], "train.batch_size"),
    (["train.steps=ten"], "train.steps"),
    (["+method.rnk=8"], "method.rnk"),
    (["+colour=red"], "colour"),
    (["device=tpu"], "device"),
])
def test_bad_values_name_the_key(overrides, key):
    with pytest.raises(ConfigError) as err:
        build_run_config(compose_raw(*overrides))
    assert str(err.value).startswith(key), str(err.value)
    assert "\n" not in str(err.value)


def test_lora_target_presets():
    cfg = build_run_config(compose_raw("method.target_modules=attention"))
    assert cfg.method.target_module_list() == ["q_proj", "k_proj", "v_proj", "o_proj"]
    cfg = build_run_config(compose_raw("method.target_modules=[q_proj,down_proj]"))
    assert cfg.method.target_module_list() == ["q_proj", "down_proj"]
    cfg = build_run_config(compose_raw("method.target_modules='q_proj,down_proj'"))
    assert cfg.method.target_module_list() == ["q_proj", "down_proj"]
    with pytest.raises(ConfigError, match="method.target_modules must be"):
        build_run_config(compose_raw("method.target_modules=[1,2]"))


def test_lr_by_method_sets_the_listed_methods_lr_only():
    from bench.record import config_hash
    from bench.config import to_dict

    table = "+lr_by_method={lora: 1.0e-3, full: 1.0e-4}"
    assert build_run_config(compose_raw("method=lora", table)).method.lr == 1e-3
    assert build_run_config(compose_raw("method=full", table)).method.lr == 1e-4
    assert build_run_config(compose_raw("method=galore", table)).method.lr == 1e-5  # not listed: its default
    # the hash follows the learning rate the cell trains with, not how it was set
    via_table = build_run_config(compose_raw("method=lora", table))
    direct = build_run_config(compose_raw("method=lora", "method.lr=1.0e-3"))
    assert config_hash(to_dict(via_table)) == config_hash(to_dict(direct))


@pytest.mark.parametrize("table, key", [("{lorra: 1.0e-3}", "lr_by_method.lorra"),
                                        ("{lora: -1}", "lr_by_method.lora")])
def test_lr_by_method_bad_entries_name_the_key(table, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        build_run_config(compose_raw("method=lora", f"+lr_by_method={table}"))
