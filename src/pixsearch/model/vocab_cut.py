"""Cutting a pretrained LM's vocabulary to the tokens a deployment writes and reads.

Gemma 3 270M's tokenizer has 262,144 tokens; its tied embedding / LM head (168M of its 268M
parameters) costs more than its 18 layers in every training step, and is ~670 MB of float32
read per decoded token. A knowledge-grounded assistant about a known domain uses a small
part of it. `cut_tokenizer` keeps

- the special tokens (bos, eos, pad, unk, …) and the 256 byte tokens, so *every* string still
  encodes (characters outside the kept set fall back to bytes, as the base tokenizer does for
  characters it never saw);
- the first `keep` distinct tokens the BPE merges make, in merge order (the most frequent pieces of the base
  tokenizer's corpus: general English stays tokenised as the LM learned it);
- every token the given corpus uses (the world's questions, answers and knowledge base);
- and every ancestor of a kept token in the merge tree, so that BPE can still build it.

The result is a fast tokenizer of the same pipeline (normaliser, pre-tokeniser, decoder) whose
encodings equal the base tokenizer's for text made of kept tokens. `select_rows` then keeps the
embedding rows of the kept tokens, found by their strings in the base vocabulary, so the same
cut is rebuilt from a saved tokenizer alone.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

BYTE_TOKENS = [f"<0x{b:02X}>" for b in range(256)]


def cut_tokenizer(base: Any, corpus: Iterable[str], keep: int) -> Any:
    """A `PreTrainedTokenizerFast` with `base`'s vocabulary cut as the module docstring says."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    data = json.loads(base.backend_tokenizer.to_str())
    model = data["model"]
    if model.get("type") != "BPE" or not model.get("byte_fallback"):
        raise ValueError("vocab_keep needs a BPE tokenizer with byte fallback (Gemma, Llama "
                         f"3 style); this one is {model.get('type')!r}")
    vocab: dict[str, int] = model["vocab"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ", 1)) for m in model["merges"]]
    parents: dict[str, tuple[str, str]] = {}
    for a, b in merges:
        parents.setdefault(a + b, (a, b))
    special = {t["content"] for t in data["added_tokens"] if t["special"]
               and not t["content"].startswith("<unused")}
    kept = special | {t for t in BYTE_TOKENS if t in vocab}
    kept |= _first_made(merges, keep)
    for text in corpus:
        kept |= set(base.convert_ids_to_tokens(base.encode(text, add_special_tokens=False)))
    kept = _closure(kept & vocab.keys(), parents)
    order = sorted(kept, key=vocab.__getitem__)
    new_vocab = {t: i for i, t in enumerate(order)}
    model["vocab"] = new_vocab
    model["merges"] = [[a, b] for a, b in merges if a in kept and b in kept and a + b in kept]
    data["added_tokens"] = [dict(t, id=new_vocab[t["content"]]) for t in data["added_tokens"]
                            if t["content"] in kept]
    _remap_template(data.get("post_processor"), new_vocab)
    fast = PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(json.dumps(data)))
    for role in ("bos_token", "eos_token", "pad_token", "unk_token"):
        value = getattr(base, role, None)
        if value is not None and value in kept:
            setattr(fast, role, value)
    return fast


def _first_made(merges: list[tuple[str, str]], keep: int) -> set[str]:
    """The first `keep` distinct tokens made by `merges`, in merge order."""
    out: set[str] = set()
    for a, b in merges:
        if len(out) >= keep:
            break
        out.add(a + b)
    return out


def _closure(kept: set[str], parents: dict[str, tuple[str, str]]) -> set[str]:
    """`kept` with every merge-tree ancestor of its tokens."""
    out, todo = set(kept), list(kept)
    while todo:
        for part in parents.get(todo.pop(), ()):
            if part not in out:
                out.add(part)
                todo.append(part)
    return out


def _remap_template(proc: dict | None, vocab: dict[str, int]) -> None:
    """Point a TemplateProcessing's special tokens (e.g. bos) at their new ids."""
    if not proc:
        return
    for sub in proc.get("processors", []):
        _remap_template(sub, vocab)
    for name, tok in proc.get("special_tokens", {}).items():
        tok["ids"] = [vocab[name]] if name in vocab else tok["ids"]


def base_ids(tokenizer: Any, base_vocab: dict[str, int]) -> list[int]:
    """For each id of a cut `tokenizer` that the base vocabulary has, in order, the base id;
    stops at the first token the base lacks (the control tokens added after the cut)."""
    tokens = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    out = []
    for t in tokens:
        if t not in base_vocab:
            break
        out.append(base_vocab[t])
    return out


def select_rows(lm: nn.Module, ids: list[int]) -> None:
    """Keep the input (and tied output) embedding rows `ids` of `lm`, in that order."""
    emb, out = lm.get_input_embeddings(), lm.get_output_embeddings()
    if out is not None:
        assert out.weight is emb.weight or lm.config.tie_word_embeddings, \
            "a cut of an untied LM head is not implemented"
    with torch.no_grad():
        emb.weight = nn.Parameter(emb.weight[torch.tensor(ids)].clone())
    emb.num_embeddings = len(ids)
    if out is not None:
        out.weight = emb.weight
        out.out_features = len(ids)
    lm.config.vocab_size = len(ids)
