"""Many decoding sessions of one `PixSearchModel` behind one batched KV cache.

`BatchDecoder.open` prefills a prompt into a free slot of a `SlotKVCache` and returns an
ordinary `PixSearchSession` whose cache is that slot: the engine's per-answer code (evidence
prefill through `extend`, the region mask from the session's hidden states) runs unchanged on
it. `step` then decodes one token for each of many sessions in one forward pass: every row of
the cache takes part (a session that is searching, or a free slot, as a dummy row; see
`model/batched_cache.py`), positions come from each session's own backbone state (M-RoPE deltas
for Qwen2.5-VL), and each session gets its logits and its final hidden state back.
`release` frees a session's slot for the next sequence.
"""

from __future__ import annotations

import torch
from PIL import Image

from pixsearch.model.batched_cache import SlotKVCache
from pixsearch.model.pixsearch_model import PixSearchModel
from pixsearch.model.session import PixSearchSession
from pixsearch.render import Rendered


class BatchDecoder:
    """Opens slot-backed sessions of `model` and decodes them a token at a time, together."""

    def __init__(self, model: PixSearchModel, max_slots: int) -> None:
        impl = getattr(model.backbone.model.config, "_attn_implementation", "sdpa")
        if impl not in ("sdpa", "eager"):
            raise ValueError(f"batched decoding needs attention that takes a 4-D mask (sdpa or "
                             f"eager); this model uses {impl!r}: load it with "
                             "attn_implementation='sdpa'")
        self.model = model
        self.cache = SlotKVCache(model.backbone.model.config, max_slots)
        self._slot: dict[int, int] = {}  # id(session) -> slot

    @property
    def free_slots(self) -> int:
        return self.cache.free

    @torch.no_grad()
    def open(self, prompt: Rendered, image: Image.Image | None,
             features: dict[str, torch.Tensor] | None = None
             ) -> tuple[PixSearchSession, torch.Tensor]:
        """Prefill `prompt` (image in its slots) into a free slot → (session, logits [V]).
        `features`: `model.preprocess(image)`, if computed beforehand."""
        slot = self.cache.acquire()
        try:
            session, logits = PixSearchSession.open(self.model, prompt, image,
                                                    cache=self.cache.view(slot),
                                                    features=features)
        except BaseException:
            self.cache.release(slot)
            raise
        self._slot[id(session)] = slot
        return session, logits

    def release(self, session: PixSearchSession) -> None:
        """Free `session`'s slot (the session must not be extended afterwards)."""
        self.cache.release(self._slot.pop(id(session)))

    @torch.no_grad()
    def step(self, sessions: list[PixSearchSession], tokens: list[int]) -> torch.Tensor:
        """Append `tokens[i]` to `sessions[i]` in one forward pass → next logits [n, V]."""
        assert len(sessions) == len(tokens) and sessions, "one token per session"
        m = self.model
        rows = self.cache.rows()
        slots = [self._slot[id(s)] for s in sessions]
        by_row: dict[int, tuple[PixSearchSession, int]] = {
            slot: (s, t) for slot, s, t in zip(slots, sessions, tokens)}
        assert len(by_row) == len(sessions), "a session appears twice in one step"
        view, mask, pos = self.cache.step([r in by_row for r in range(rows)])
        dev = m._device()
        ids = torch.zeros((rows, 1), dtype=torch.long, device=dev)
        for r, (_, t) in by_row.items():
            ids[r, 0] = t
        positions = torch.cat([
            m.backbone.position_ids(ids[r:r + 1], None, int(pos[r]),
                                    by_row[r][0].state if r in by_row else {})
            for r in range(rows)], dim=-2)
        if isinstance(mask, dict):
            mask = {kind: m_.to(dev) for kind, m_ in mask.items()}
        elif mask is not None:
            mask = mask.to(dev)
        logits, hidden = m.backbone.run(m.embed(ids, None), mask, positions, view, 1)
        for r, (session, t) in by_row.items():
            session.ids.append(t)
            session.hidden.append(hidden[r])
        return logits[slots, -1]
