"""Cutting a pretrained LM's vocabulary (`model/vocab_cut.py`), on a Gemma-style tokenizer (BPE
over '▁'-joined text with byte fallback) trained here: what the corpus uses tokenises as
before, anything else still encodes and decodes (through smaller pieces or bytes), and a
model built with the cut keeps exactly the base's rows of its tokens — rebuilt the same from a
saved checkpoint."""

from __future__ import annotations

import pytest
import torch
from test_checkpoint import _outputs
from test_pretrained_lm import save_tiny_gemma
from tokenizers import Tokenizer, decoders, models, normalizers, trainers
from transformers import PreTrainedTokenizerFast

from pixsearch.model import causal_lm
from pixsearch.model.build import build_model
from pixsearch.model.checkpoint import load_checkpoint, save_checkpoint
from pixsearch.model.presets import get_preset
from pixsearch.model.vocab_cut import BYTE_TOKENS, base_ids, cut_tokenizer

TEXT = ["The capital of Peru is Lima.", "The capital of Japan is Tokyo.",
        "Peru has a population of 34,352,719 people.", "What is the flag on the left?",
        "The currency of Japan is the Yen.", "Which country has the largest flag?"] * 20
CORPUS = ["The capital of Peru is Lima."]


def gemma_style_tokenizer() -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    tok.normalizer = normalizers.Replace(" ", "▁")
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(),
                                     decoders.Fuse()])
    tok.train_from_iterator(TEXT, trainers.BpeTrainer(
        vocab_size=600, special_tokens=["<pad>", "<eos>", "<bos>", "<unk>", *BYTE_TOKENS]))
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>",
                                   pad_token="<pad>", unk_token="<unk>")


@pytest.fixture(scope="module")
def base():
    return gemma_style_tokenizer()


def _pieces(tok, text: str) -> list[str]:
    return tok.convert_ids_to_tokens(tok.encode(text, add_special_tokens=False))


def test_corpus_text_tokenises_as_before_and_anything_still_encodes(base):
    cut = cut_tokenizer(base, CORPUS, keep=10)
    assert len(cut) < len(base) - 50
    assert set(cut.get_vocab()) <= set(base.get_vocab())
    assert _pieces(cut, CORPUS[0]) == _pieces(base, CORPUS[0])
    for text in ("The currency of Japan is the Yen.", "Ouagadougou ñ 日本 🦜"):
        ids = cut.encode(text, add_special_tokens=False)
        assert cut.decode(ids) == text
    # a removed word falls back to smaller kept pieces, unknown characters to bytes
    assert len(_pieces(cut, "Tokyo")) > len(_pieces(base, "Tokyo"))
    assert "<0xF0>" in _pieces(cut, "🦜")


def test_every_kept_token_can_still_be_built(base):
    cut = cut_tokenizer(base, CORPUS, keep=30)
    for token in cut.get_vocab():
        text = token.replace("▁", " ")
        if token.startswith("<") or not text.strip():
            continue
        assert cut.convert_ids_to_tokens(cut.encode(text, add_special_tokens=False)) == [token]


def test_base_ids_follow_the_strings(base):
    cut = cut_tokenizer(base, CORPUS, keep=10)
    ids = base_ids(cut, base.get_vocab())
    assert len(ids) == len(cut)
    assert base.convert_ids_to_tokens(ids) == cut.convert_ids_to_tokens(list(range(len(cut))))


def test_model_keeps_the_base_rows_and_rebuilds_the_cut_from_its_checkpoint(base, tmp_path,
                                                                           monkeypatch):
    torch.set_num_threads(1)
    monkeypatch.setenv("PIXSEARCH_HOME", str(tmp_path / "home"))
    folder = tmp_path / "base"
    lm = save_tiny_gemma(folder, base)
    cfg = get_preset("gemma-tiny", {"lm": {"pretrained": str(folder), "vocab_keep": 10}})
    model = build_model(cfg, corpus=CORPUS).eval()
    cut_ids = base_ids(model.tokenizer, base.get_vocab())
    emb = model.backbone.input_embeddings().weight
    assert len(cut_ids) < len(base) and emb.shape[0] == len(model.tokenizer)
    assert torch.equal(emb[:len(cut_ids)], lm.get_input_embeddings().weight[cut_ids])
    assert model.backbone.model.get_output_embeddings().weight is emb
    path = save_checkpoint(model, tmp_path / "ckpt")
    # the cut is cached: the rebuild reads it and never the base's tokenizer again
    assert len(list((tmp_path / "home" / "cache" / "lm_cut").glob("*/config.json"))) == 1

    def no_base_tokenizer(spec):
        raise AssertionError("the base tokenizer was read again")

    monkeypatch.setattr(causal_lm, "load_lm_tokenizer", no_base_tokenizer)
    loaded = load_checkpoint(path).eval()
    for a, b in zip(_outputs(model), _outputs(loaded), strict=True):
        assert torch.equal(a, b)


def test_a_tokenizer_without_byte_fallback_is_refused():
    from pixsearch.model.tokenizer import train_tokenizer

    with pytest.raises(ValueError, match="byte fallback"):
        cut_tokenizer(train_tokenizer(None, 300), CORPUS, keep=10)
