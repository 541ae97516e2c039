"""Warm-starting parts of a new model from a trained model of another shape.

A `gemma-270m` model shares `mini`'s mask branch (prompt encoder, SAM-style decoder, hi-res
CNN over the frozen DINOv2 features) but not its LM: the parts that read the LM's hidden
states (span tagger, g(·), projector) change width with it. The mask branch learned on `mini`
still knows how to turn mask queries and image features into masks, so it is copied in and
only the new parts start from scratch; g(·) learns to speak to the transplanted decoder.
"""

from __future__ import annotations

from collections.abc import Sequence

from pixsearch.model.build import group_modules
from pixsearch.model.pixsearch_model import PixSearchModel


def transplant(model: PixSearchModel, donor: PixSearchModel, groups: Sequence[str]) -> list[str]:
    """Copy the weights of trainable `groups` from `donor` into `model`; returns the state-dict
    keys copied. Raises ValueError when a group is missing or differs in shape."""
    mine, theirs = group_modules(model), group_modules(donor)
    copied: list[str] = []
    for group in groups:
        if group not in mine or len(mine[group]) != len(theirs.get(group, [])):
            raise ValueError(f"cannot transplant {group!r}: the donor has "
                             f"{len(theirs.get(group, []))} module(s) there, the model "
                             f"{len(mine.get(group, []))}")
        for dst, src in zip(mine[group], theirs[group], strict=True):
            want, have = dst.state_dict(), src.state_dict()
            diff = [k for k in want if k not in have or have[k].shape != want[k].shape]
            if diff or set(have) - set(want):
                raise ValueError(f"cannot transplant {group!r}: shapes differ at "
                                 f"{(diff or sorted(set(have) - set(want)))[:3]} (transplant "
                                 "needs the same part configuration in both presets)")
            dst.load_state_dict({k: v.to(want[k].dtype) for k, v in have.items()})
            copied += [f"{group}:{k}" for k in want]
    return copied
