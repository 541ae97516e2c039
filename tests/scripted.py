"""A scripted `SearchLM` for engine tests: it wants to emit a fixed list of token ids.

Logits put the most mass on the next scripted id and the second most on a fallback text token,
so when the engine bans the scripted id (budget, forbidden modality) the fallback is chosen.
Evidence blocks (`<information>…</information>`) do not advance the script.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from pixsearch.model.tokenizer import train_tokenizer
from pixsearch.render import Rendered, Renderer
from pixsearch.tokens import TokenTable


class ScriptedSession:
    def __init__(self, lm: ScriptedLM, prompt_ids: list[int]) -> None:
        self.lm = lm
        self.ids = list(prompt_ids)
        self.ptr = 0
        self.in_info = False
        self.extend_calls: list[list[int]] = []

    def _logits(self) -> torch.Tensor:
        logits = torch.zeros(len(self.lm.tokenizer))
        logits[self.lm.fallback] = 5.0
        want = self.lm.script[self.ptr] if self.ptr < len(self.lm.script) else self.lm.eos
        logits[want] = 10.0
        return logits

    def extend(self, ids: list[int]) -> torch.Tensor:
        self.extend_calls.append(list(ids))
        t = self.lm.tokens
        for i in ids:
            self.ids.append(i)
            if i == t.id("info_open"):
                self.in_info = True
            elif i == t.id("info_close"):
                self.in_info = False
            elif not self.in_info:
                self.ptr += 1
        return self._logits()

    def region_mask(self) -> np.ndarray:
        self.lm.mask_calls += 1
        return self.lm.mask.copy()


class ScriptedLM:
    def __init__(self, script: list[int | str], mask: np.ndarray | None = None) -> None:
        self.tokenizer = train_tokenizer()
        self.tokens = TokenTable().resolve(self.tokenizer)
        self.renderer = Renderer(self.tokenizer, self.tokens, n_image_tokens=4)
        self.eos = self.tokenizer.eos_token_id
        self.fallback = self.tokenizer.encode(" flag")[0]
        self.script = self.ids(script)
        self.mask = mask if mask is not None else np.zeros((32, 48), dtype=bool)
        self.mask_calls = 0
        self.sessions: list[ScriptedSession] = []

    def ids(self, script: list[int | str]) -> list[int]:
        """Script items: a role name in TokenTable ('search_open', 'region', ...) or plain text."""
        out: list[int] = []
        for item in script:
            if isinstance(item, int):
                out.append(item)
            elif item in self.tokens.ids:
                out.append(self.tokens.id(item))
            else:
                out += self.tokenizer.encode(item)
        return out

    def start(self, prompt: Rendered, image) -> tuple[ScriptedSession, torch.Tensor]:
        s = ScriptedSession(self, prompt.input_ids)
        self.sessions.append(s)
        return s, s._logits()


class SteeredSession:
    """A real model's session whose first generated tokens are steered to a script."""

    def __init__(self, inner, script: list[int]) -> None:
        self.inner, self.script, self.n = inner, list(script), 0

    @property
    def ids(self) -> list[int]:
        return self.inner.ids

    def _steer(self, logits: torch.Tensor) -> torch.Tensor:
        if self.n < len(self.script):
            logits = torch.full_like(logits, -1e9)
            logits[self.script[self.n]] = 0.0
        return logits

    def extend(self, ids: list[int]) -> torch.Tensor:
        if len(ids) == 1:  # a generated token (evidence blocks come as several)
            self.n += 1
        return self._steer(self.inner.extend(ids))

    def region_mask(self) -> np.ndarray:
        return self.inner.region_mask()

    @property
    def mask_score(self) -> float | None:
        return getattr(self.inner, "mask_score", None)


class SteeredLM:
    """Wraps a real `SearchLM` so that its answer starts with a scripted prefix; everything
    else (KV cache, prefill of evidence, region masks) is the real model's."""

    def __init__(self, model, script: list[int | str]) -> None:
        self.model = model
        self.tokens, self.renderer = model.tokens, model.renderer
        self.script = []
        for item in script:
            self.script += ([model.tokens.id(item)] if item in model.tokens.ids
                            else model.renderer.text_ids(item))
        self.sessions: list[SteeredSession] = []

    def start(self, prompt: Rendered, image):
        inner, logits = self.model.start(prompt, image)
        s = SteeredSession(inner, self.script)
        self.sessions.append(s)
        return s, s._steer(logits)


def colour_scene() -> Image.Image:
    """A grey scene with one green 'flag' on the left (see conftest's colour_index)."""
    img = np.full((120, 160, 3), 200, dtype=np.uint8)
    img[30:70, 20:80] = (30, 160, 60)
    return Image.fromarray(img)
