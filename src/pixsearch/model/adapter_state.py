"""Which tensors a checkpoint must store: what training can change, not the pretrained base.

A hub preset is a pretrained backbone (LLaVA-1.5-13B, Qwen2.5-VL-7B) and SAM, plus LoRA
adapters, the new heads (span tagger, g(·), mask-feature map, referent parts) and the rows of
the control tokens added to the vocabulary. Storing the whole state at every save would write
the base again each time (~28 GB for LLaVA-13B + SAM-H); the base is already on disk, where
`LMConfig.pretrained` / `MaskDecoderConfig.sam_pretrained` point. So an *adapter* checkpoint
keeps:

- every tensor of a part that no pretrained checkpoint provides (heads, LoRA, buffers of heads);
- every tensor of a trainable group the model was built with (`ModelConfig.trainable`; a stage
  trains a subset of it, so a group frozen in the last stage but trained in an earlier one is
  still kept);
- the rows of the control-token ids in the input/output embeddings, when those matrices are
  otherwise part of the frozen base (the rows were added and initialised by the build).

Models without a pretrained part (`tiny`, `mini`, hub classes built from random configs) have
no base to come back to: their checkpoints are *full*.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from pixsearch.model.pixsearch_model import PixSearchModel

FULL, ADAPTER = "full", "adapter"
ROWS_PREFIX = "token_rows::"  # safetensors key of the saved rows of an embedding matrix

# the module paths of SamModel's parts inside our MaskDecoder (`mask_decoder.py`)
_SAM_PARTS = ("mask_decoder.shared_image_embedding.", "mask_decoder.prompt_encoder.",
              "mask_decoder.mask_decoder.", "mask_decoder.vision_encoder.")
# wrappers (FSDP1, activation checkpointing) that insert a level into parameter names
_WRAPPERS = ("_fsdp_wrapped_module.", "_checkpoint_wrapped_module.", "_orig_mod.")


def clean_name(name: str) -> str:
    """A state-dict key without the path levels that FSDP / checkpointing wrappers add."""
    for w in _WRAPPERS:
        name = name.replace(w, "")
    return name


def checkpoint_format(model: PixSearchModel) -> str:
    """"adapter" when some part of `model` comes from a pretrained checkpoint, else "full"."""
    cfg = model.cfg
    return ADAPTER if cfg.lm.pretrained or cfg.mask_decoder.sam_pretrained else FULL


def base_prefixes(model: PixSearchModel) -> tuple[str, ...]:
    """Key prefixes of the parts loaded from pretrained checkpoints."""
    out: tuple[str, ...] = ()
    if model.cfg.lm.pretrained:
        out += ("backbone.model.",)
    if model.cfg.mask_decoder.sam_pretrained:
        out += _SAM_PARTS
    return out


def trained_keys(model: PixSearchModel) -> set[str]:
    """State-dict keys of every parameter in the groups the model was built to train, and of
    every LoRA adapter."""
    from pixsearch.model.build import trainable_groups

    groups = trainable_groups(model)
    # "control_rows" changes only the control-token rows, which `token_rows` stores
    ids = {id(p) for g in model.cfg.trainable if g != "control_rows" for p in groups.get(g, [])}
    keys = {clean_name(n) for n, p in model.named_parameters(remove_duplicate=False)
            if id(p) in ids}
    return keys | {clean_name(n) for n, _ in model.named_parameters() if "lora_" in n}


def adapter_keys(model: PixSearchModel, keys: list[str]) -> list[str]:
    """The subset of state-dict `keys` an adapter checkpoint stores (module docstring)."""
    base, trained = base_prefixes(model), trained_keys(model)
    return [k for k in keys if not clean_name(k).startswith(base) or clean_name(k) in trained]


def embedding_keys(model: PixSearchModel) -> list[str]:
    """State-dict keys of the input and output embedding matrices (one if they are tied)."""
    want = {id(model.backbone.input_embeddings().weight)}
    out_emb = model.backbone.model.get_output_embeddings()
    if out_emb is not None:
        want.add(id(out_emb.weight))
    return [clean_name(n) for n, p in model.named_parameters() if id(p) in want]


def token_rows(model: PixSearchModel, state: dict[str, torch.Tensor], stored: set[str]
               ) -> tuple[dict[str, torch.Tensor], list[int]]:
    """Rows of the control-token ids of each embedding matrix that is not stored whole:
    ({ROWS_PREFIX + key: rows [n, d]}, ids)."""
    ids = sorted(set(model.tokens.ids.values()))
    rows = {}
    for key in embedding_keys(model):
        if key not in stored and key in state:
            rows[ROWS_PREFIX + key] = state[key][ids].detach().clone()
    return rows, ids


@torch.no_grad()
def set_token_rows(model: PixSearchModel, rows: dict[str, torch.Tensor], ids: list[int]) -> None:
    """Write saved control-token rows back into the model's embedding matrices."""
    params = {clean_name(n): p for n, p in model.named_parameters()}
    for key, value in rows.items():
        name = key.removeprefix(ROWS_PREFIX)
        if name not in params:
            raise KeyError(f"saved token rows of {name}, which the model does not have")
        p = params[name]
        p[torch.as_tensor(ids, device=p.device)] = value.to(p.device, p.dtype)
