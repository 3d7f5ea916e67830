"""Tokenisation for GLUE-style classification/regression and SQuAD-style extractive QA, and QA post-processing.

Tokenise once (`tokenize_pairs`, `qa_train_features`, `qa_eval_features`: lists of unpadded features), then
`iterate_batches(features, batch_size, make_collate(tokenizer), shuffle=..., seed=...)` pads each batch to its
longest feature, so tokenising stays out of the timed step. `encode_pairs` does both for one batch.
QA features put the question first and the context second (truncation="only_second"), overlapping windows of
`max_length` tokens sharing `stride` tokens over long contexts. A QA training feature whose answer is not
wholly inside its window, or whose question has no answer (SQuAD v2), points start and end at its CLS token.
"""
from __future__ import annotations

import collections
import random
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase

MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
TARGETS = ("labels", "start_positions", "end_positions")


def tokenize_pairs(tokenizer: "PreTrainedTokenizerBase", examples: Sequence[dict], max_length: int) -> list[dict]:
    """GLUE examples ({text_a, text_b or None, label}) -> unpadded features with input_ids, attention_mask,
    token_type_ids (when the tokenizer makes them) and labels (int: classification, float: regression)."""
    if not examples:
        raise ValueError("tokenize_pairs: no examples")
    labels = [e["label"] for e in examples]
    if not (all(type(v) is int for v in labels) or all(type(v) is float for v in labels)):
        raise ValueError("tokenize_pairs: labels must be all int (classification) or all float (regression)")
    texts_b = [e["text_b"] for e in examples]
    if any(t is None for t in texts_b) and not all(t is None for t in texts_b):
        raise ValueError("tokenize_pairs: examples mix single sentences and sentence pairs")
    pairs = None if texts_b[0] is None else texts_b
    encoded = tokenizer([e["text_a"] for e in examples], pairs, truncation=True, max_length=max_length)
    keys = [k for k in MODEL_INPUTS if k in encoded]
    return [{**{k: encoded[k][i] for k in keys}, "labels": labels[i]} for i in range(len(examples))]


def pad_batch(features: Sequence[dict], pad_token_id: int, padding_side: str = "right") -> dict[str, "torch.Tensor"]:
    """Stack features padded to the longest: model inputs (pad id / 0), targets as int64 or float32 (regression)."""
    import torch

    longest = max(len(f["input_ids"]) for f in features)
    batch: dict[str, torch.Tensor] = {}
    for key in MODEL_INPUTS:
        if key in features[0]:
            fill = pad_token_id if key == "input_ids" else 0
            rows = [[fill] * (longest - len(f[key])) for f in features]
            rows = [pad + list(f[key]) if padding_side == "left" else list(f[key]) + pad
                    for pad, f in zip(rows, features)]
            batch[key] = torch.tensor(rows, dtype=torch.long)
    for key in TARGETS:
        if key in features[0]:
            values = [f[key] for f in features]
            dtype = torch.float32 if isinstance(values[0], float) else torch.long
            batch[key] = torch.tensor(values, dtype=dtype)
    return batch


def make_collate(tokenizer: "PreTrainedTokenizerBase",
                 padding_side: str = "right") -> Callable[[Sequence[dict]], dict[str, "torch.Tensor"]]:
    """Collate function (also for torch's DataLoader) padding with the tokenizer's pad token; tokenizers without
    one (Llama) pad with EOS, which the attention mask hides. Padding goes on the right whatever the tokenizer's
    own padding_side (left is for generation): QA start/end positions and offsets index from the left."""
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    side = padding_side

    def collate(features: Sequence[dict]) -> dict[str, "torch.Tensor"]:
        return pad_batch(features, pad_id if pad_id is not None else 0, side)

    return collate


def encode_pairs(tokenizer: "PreTrainedTokenizerBase", examples: Sequence[dict],
                 max_length: int) -> dict[str, "torch.Tensor"]:
    """One batch of GLUE examples -> tensors padded to its longest example."""
    return make_collate(tokenizer)(tokenize_pairs(tokenizer, examples, max_length))


def iterate_batches(features: Sequence[dict], batch_size: int, collate: Callable[[Sequence[dict]], Any],
                    shuffle: bool = False, seed: int = 0, drop_last: bool = False) -> Iterator[Any]:
    """One pass over `features` in batches: file order, or a permutation fixed by `seed` (use seed + epoch)."""
    if batch_size <= 0:
        raise ValueError(f"iterate_batches: batch_size must be > 0 (got {batch_size})")
    order = list(range(len(features)))
    if shuffle:
        random.Random(seed).shuffle(order)
    stop = len(order) - len(order) % batch_size if drop_last else len(order)
    for start in range(0, stop, batch_size):
        yield collate([features[i] for i in order[start:start + batch_size]])


def _qa_windows(tokenizer: "PreTrainedTokenizerBase", examples: Sequence[dict], max_length: int, stride: int):
    if not examples:
        raise ValueError("qa features: no examples")
    questions = [e["question"].lstrip() for e in examples]
    longest = max(len(ids) for ids in tokenizer(questions, add_special_tokens=False)["input_ids"])
    room = max_length - tokenizer.num_special_tokens_to_add(pair=True) - longest
    if room <= stride:  # the tokenizer would panic (a Rust panic, not an Exception)
        raise ValueError(f"qa features: max_length {max_length} leaves {room} context tokens beside the longest "
                         f"question ({longest} tokens), not more than the stride {stride}")
    return tokenizer(questions, [e["context"] for e in examples],
                     truncation="only_second", max_length=max_length, stride=stride,
                     return_overflowing_tokens=True, return_offsets_mapping=True)


def _cls_index(input_ids: list[int], cls_token_id: int | None) -> int:
    return input_ids.index(cls_token_id) if cls_token_id in input_ids else 0


def qa_train_features(tokenizer: "PreTrainedTokenizerBase", examples: Sequence[dict], max_length: int = 384,
                      stride: int = 128) -> list[dict]:
    """SQuAD examples -> one feature per window with start_positions / end_positions (token indices of the
    first answer's first and last token, or the CLS index when the window doesn't hold it)."""
    encoded = _qa_windows(tokenizer, examples, max_length, stride)
    keys = [k for k in MODEL_INPUTS if k in encoded]
    features = []
    for i, example_index in enumerate(encoded["overflow_to_sample_mapping"]):
        example = examples[example_index]
        cls = _cls_index(encoded["input_ids"][i], tokenizer.cls_token_id)
        start = end = cls
        answers = example["answers"]
        if answers["text"] and not example.get("is_impossible", False):
            start_char = answers["answer_start"][0]
            end_char = start_char + len(answers["text"][0])
            offsets = encoded["offset_mapping"][i]
            context = [t for t, s in enumerate(encoded.sequence_ids(i)) if s == 1]
            if offsets[context[0]][0] <= start_char and offsets[context[-1]][1] >= end_char:
                start = max(t for t in context if offsets[t][0] <= start_char)
                end = min(t for t in context if offsets[t][1] >= end_char)
        features.append({**{k: encoded[k][i] for k in keys}, "start_positions": start, "end_positions": end})
    return features


def qa_eval_features(tokenizer: "PreTrainedTokenizerBase", examples: Sequence[dict], max_length: int = 384,
                     stride: int = 128) -> list[dict]:
    """SQuAD examples -> one feature per window with example_id, cls_index and offset_mapping (character
    spans into the context; None for question, special and padding tokens), for postprocess_qa."""
    encoded = _qa_windows(tokenizer, examples, max_length, stride)
    keys = [k for k in MODEL_INPUTS if k in encoded]
    features = []
    for i, example_index in enumerate(encoded["overflow_to_sample_mapping"]):
        sequence_ids = encoded.sequence_ids(i)
        offsets = [tuple(o) if s == 1 else None for o, s in zip(encoded["offset_mapping"][i], sequence_ids)]
        features.append({**{k: encoded[k][i] for k in keys}, "example_id": examples[example_index]["id"],
                         "cls_index": _cls_index(encoded["input_ids"][i], tokenizer.cls_token_id),
                         "offset_mapping": offsets})
    return features


def _as_floats(row: Any, length: int) -> list[float]:
    if hasattr(row, "detach"):  # a torch tensor, possibly bf16 or on the GPU
        row = row.detach().float().cpu()
    return [float(v) for v in row[:length].tolist()] if hasattr(row, "tolist") else [float(v) for v in row[:length]]


def postprocess_qa(examples: Sequence[dict], features: Sequence[dict], start_logits: Sequence[Sequence[float]],
                   end_logits: Sequence[Sequence[float]], n_best: int = 20, max_answer_len: int = 30,
                   version: str = "v1", null_threshold: float = 0.0) -> list[dict]:
    """Best answer per example: [{"id", "prediction_text"}], ready for the squad metric.

    Over all windows of an example, spans start..end (end >= start, at most max_answer_len tokens, both ends
    in the context, starts and ends among each window's n_best logits) score start_logit + end_logit. v2: the
    null score is the lowest CLS start+end over the windows; "" is predicted when it beats the best span by more
    than null_threshold. Logit rows may be padded longer than their feature; the padding is ignored.
    """
    if version not in ("v1", "v2"):
        raise ValueError(f"postprocess_qa: version must be v1 or v2 (got {version!r})")
    if not (len(features) == len(start_logits) == len(end_logits)):
        raise ValueError(f"postprocess_qa: {len(features)} features but {len(start_logits)} start and "
                         f"{len(end_logits)} end logit rows")
    windows: dict[str, list[int]] = collections.defaultdict(list)
    for index, feature in enumerate(features):
        windows[feature["example_id"]].append(index)
    predictions = []
    for example in examples:
        best_score, best_text, null_score = float("-inf"), "", float("inf")
        for index in windows.get(example["id"], []):
            offsets = features[index]["offset_mapping"]
            starts = _as_floats(start_logits[index], len(offsets))
            ends = _as_floats(end_logits[index], len(offsets))
            cls = features[index].get("cls_index", 0)
            null_score = min(null_score, starts[cls] + ends[cls])
            top_starts = sorted(range(len(starts)), key=starts.__getitem__, reverse=True)[:n_best]
            top_ends = sorted(range(len(ends)), key=ends.__getitem__, reverse=True)[:n_best]
            for s in top_starts:
                for e in top_ends:
                    if offsets[s] is None or offsets[e] is None or e < s or e - s + 1 > max_answer_len:
                        continue
                    if starts[s] + ends[e] > best_score:
                        best_score = starts[s] + ends[e]
                        best_text = example["context"][offsets[s][0]:offsets[e][1]]
        if version == "v2" and null_score - best_score > null_threshold:
            best_text = ""
        predictions.append({"id": example["id"], "prediction_text": best_text})
    return predictions
