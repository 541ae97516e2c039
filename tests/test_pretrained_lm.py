"""A native backbone around a pretrained causal LM (`model/causal_lm.py`, presets `gemma-270m`
and its random twin `gemma-tiny`): the build freezes the base and trains LoRA and the heads,
an adapter checkpoint stores only those (and the control-token rows) and loads back to the
same outputs, the engine answers through Gemma's sliding-window cache, and the trainer runs
it. The real Gemma 3 270M (a 215 MB package, ~100 s to de-quantise) is behind `slow`."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from test_checkpoint import DISPLAY, _outputs  # the forward pass of the checkpoint tests
from test_train import _steps, _train, world  # noqa: F401  (the four-scene world fixture)
from transformers import AutoConfig, AutoModelForCausalLM

from pixsearch.model.batch import collate
from pixsearch.model.build import build_model
from pixsearch.model.causal_lm import resolve_pretrained
from pixsearch.model.checkpoint import load_checkpoint, read_metadata, save_checkpoint
from pixsearch.model.presets import get_preset
from pixsearch.model.tokenizer import train_tokenizer
from pixsearch.tokens import TokenTable
from pixsearch.train.transplant import transplant


@pytest.fixture(scope="module")
def gemma_base(tmp_path_factory):
    """A tiny Gemma 3 saved as a published checkpoint, with a tokenizer that predates the
    control tokens (so the build adds and initialises their rows)."""
    root = tmp_path_factory.mktemp("gemma")
    save_tiny_gemma(root, train_tokenizer(None, 512, TokenTable(*[f"<other{i}>" for i in range(6)])))
    return root


def save_tiny_gemma(folder, tok):
    """A random `gemma-tiny` LM for `tok` saved with it as a published checkpoint."""
    hf = dict(get_preset("gemma-tiny").lm.hf_config)
    torch.manual_seed(1)
    lm = AutoModelForCausalLM.from_config(AutoConfig.for_model(
        hf.pop("model_type"), **hf, vocab_size=len(tok)))
    lm.save_pretrained(folder)
    tok.save_pretrained(folder)
    return lm


def test_tiny_twin_is_a_gemma_with_a_frozen_base(gemma_base):
    torch.set_num_threads(1)
    model = build_model(get_preset("gemma-tiny", {"lm": {"pretrained": str(gemma_base)}}))
    assert type(model.backbone.model).__name__ == "Gemma3ForCausalLM"
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any("lora_" in n and "mlp.down_proj" in n for n in trainable)  # every projection
    base = [n for n in trainable if n.startswith("backbone.model.") and "lora_" not in n]
    assert base == ["backbone.model.model.embed_tokens.weight"]  # its control rows (tied head)
    # the control tokens were added after the base vocabulary and got its mean embedding
    emb = model.backbone.input_embeddings().weight
    n_base = AutoConfig.from_pretrained(gemma_base).vocab_size
    search = model.tokens.id("search_open")
    assert search >= n_base and emb.shape[0] == len(model.tokenizer)
    assert torch.allclose(emb[search], emb[:n_base].mean(0), atol=1e-6)


def test_only_the_control_token_rows_of_the_embedding_train(gemma_base):
    torch.set_num_threads(1)
    model = build_model(get_preset("gemma-tiny", {"lm": {"pretrained": str(gemma_base)}}))
    emb = model.backbone.input_embeddings().weight
    assert emb.requires_grad  # the "control_rows" group
    r = model.renderer.trajectory("Which flag?", DISPLAY, spans=[(4, 12)])
    image = Image.fromarray(np.zeros((40, 50, 3), np.uint8))
    mask = np.zeros((40, 50), bool)
    mask[5:20, 10:30] = True
    model(collate(model, [r], [image], [[mask]])).logits.square().mean().backward()
    rows = emb.grad.abs().sum(1) > 0
    control = sorted(set(model.tokens.ids.values()))
    assert rows[control].any() and not rows[[i for i in range(len(rows)) if i not in control]].any()


def test_adapter_checkpoint_round_trip(gemma_base, tmp_path):
    torch.set_num_threads(1)
    model = build_model(get_preset("gemma-tiny", {"lm": {"pretrained": str(gemma_base)}})).eval()
    emb = model.backbone.input_embeddings().weight
    control = sorted(set(model.tokens.ids.values()))
    with torch.no_grad():  # "train" it: LoRA B starts at zero; the embedding, its control rows
        for p in model.parameters():
            if p.requires_grad and p is not emb:
                p.add_(torch.randn_like(p) * 0.05)
        emb[control] += torch.randn(len(control), emb.shape[1])
    path = save_checkpoint(model, tmp_path / "ckpt")
    assert read_metadata(path)["format"] == "adapter"
    with safe_open(str(path / "model.safetensors"), "pt") as f:
        stored = set(f.keys())
    frozen_base = [k for k in stored if k.startswith("backbone.model.") and "lora_" not in k]
    assert not frozen_base, frozen_base[:3]
    loaded = load_checkpoint(path).eval()
    for a, b in zip(_outputs(model), _outputs(loaded), strict=True):
        assert torch.equal(a, b)


def test_engine_answers_through_the_sliding_window_cache():
    from pixsearch.decode.config import DecodeConfig
    from pixsearch.decode.engine import Engine

    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = build_model(get_preset("gemma-tiny")).eval()
    answer = Engine(model, None, DecodeConfig(max_new_tokens=24, abstain=False)).answer(
        "What is the capital of Peru?", None)
    assert 0 < answer.trace.n_generated <= 24 and answer.trace.stop_reason


def test_transplant_copies_the_mask_branch_of_another_model():
    torch.set_num_threads(1)
    donor = build_model(get_preset("tiny", {"seed": 5}))
    model = build_model(get_preset("gemma-tiny"))
    copied = transplant(model, donor, ["prompt_encoder", "mask_decoder", "hires"])
    assert copied and all(k.split(":")[0] in ("prompt_encoder", "mask_decoder", "hires")
                          for k in copied)
    for a, b in ((model.mask_decoder.mask_decoder, donor.mask_decoder.mask_decoder),
                 (model.mask_features, donor.mask_features)):
        assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(),
                                                     b.state_dict().values(), strict=True))
    other = build_model(get_preset("tiny", {"mask_decoder": {"hidden": 24}}))
    with pytest.raises(ValueError, match="shapes differ"):
        transplant(model, other, ["mask_decoder"])


def test_trainer_runs_the_gemma_twin(world, tmp_path, capsys):  # noqa: F811
    donor = save_checkpoint(build_model(get_preset("tiny")), tmp_path / "tiny")
    out = tmp_path / "run"
    # weight decay must not shrink the embedding rows that "control_rows" leaves frozen
    assert _train(world, out, "model=gemma-tiny", f"transplant_from={donor}",
                  "weight_decay=0.5") == 0
    printed = capsys.readouterr()
    assert "transplanted" in printed.out + printed.err
    trained = load_checkpoint(out / "final")
    built = build_model(get_preset("gemma-tiny"), tokenizer=trained.tokenizer)
    control = set(trained.tokens.ids.values())
    others = [i for i in range(len(trained.tokenizer)) if i not in control]
    a = trained.backbone.input_embeddings().weight
    b = built.backbone.input_embeddings().weight
    assert torch.equal(a[others], b[others]) and not torch.equal(a[sorted(control)],
                                                                 b[sorted(control)])
    steps, _ = _steps(out)
    assert len(steps) == 3 and all(torch.isfinite(torch.tensor(r["loss/total"])) for r in steps)
    model = load_checkpoint(out / "final")
    assert model.cfg.name == "gemma-tiny"


def test_a_cache_folder_made_twice_at_once_keeps_the_first(tmp_path):
    """`eval run --workers N` on a fresh machine: every worker process converts the Gemma base
    (and cuts its vocabulary) into the same cache folder at once. Each writes its own scratch
    folder; the first to finish publishes it, the others keep it and drop theirs (one of them
    used to fail renaming onto the winner's folder). Threads cannot stand in for the worker
    processes: `from_pretrained` toggles process-wide initialisation flags."""
    from pixsearch.model.causal_lm import _partial, _publish

    out = tmp_path / "hub" / "gemma3-270m"
    first, second = _partial(out), _partial(out)
    assert first != second and first.parent == second.parent == out.parent
    for folder, text in ((first, "first"), (second, "second")):
        (folder / "config.json").write_text(text)
    _publish(first, out)
    _publish(second, out)  # the loser of the race
    assert (out / "config.json").read_text() == "first"
    assert sorted(p.name for p in out.parent.iterdir()) == ["gemma3-270m"]
    third = _partial(out)  # an incomplete folder where `out` should be is still an error
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x").write_text("")
    with pytest.raises(OSError):
        _publish(third, tmp_path / "other")


def test_missing_gguf_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such GGUF file"):
        resolve_pretrained(str(tmp_path / "absent.gguf"))


@pytest.mark.slow
def test_gemma_270m_copies_a_fact_from_context():
    """The real base, converted from its package: it reads evidence before any training."""
    from transformers import AutoTokenizer

    folder = resolve_pretrained("gemma3-270m")
    tok = AutoTokenizer.from_pretrained(folder)
    lm = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    prompt = ("Ecuador — card: Country in South America. Capital: Quito.\n"
              "Question: What is the capital of Ecuador?\nAnswer: The capital of Ecuador is")
    ids = tok(prompt, return_tensors="pt").input_ids
    with torch.no_grad():
        out = lm.generate(ids, max_new_tokens=4, do_sample=False)
    assert "Quito" in tok.decode(out[0, ids.shape[1]:])
