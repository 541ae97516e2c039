"""The special-token table: control tokens of search-interleaved decoding, resolved to real ids.

Control flow in PixSearch is a state machine over these token ids (never over decoded text).
Each control token is a single added token of the tokenizer. The display format follows the
paper (`<search><region></search>`, `<information>…</information>`); the string a tokenizer
holds for a role may differ from its display string where a backbone already uses that string
for something else (LLaVA's image placeholder is `<image>`, so the image-query payload is
registered under another vocabulary string there). `DISPLAY` is the one spelling of the
display tags; `pixsearch.turns` writes and reads the display grammar with it.

Untrusted text (questions, retrieved documents) is passed through `escape` before it is
tokenised, so a literal `<search>` in it can never become a control token; the renderer also
tokenises it with `split_special_tokens`, so no spelling `escape` misses can either
(`tests/test_control_tokens_props.py` checks both as properties).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field, fields
from typing import Any

# role -> display string in the paper's format
DISPLAY: dict[str, str] = {
    "search_open": "<search>",
    "search_close": "</search>",
    "info_open": "<information>",
    "info_close": "</information>",
    "region": "<region>",
    "image_query": "<image>",
}

# Untrusted text is escaped where it looks like a tag of ours, a chat-template tag or a
# tokenizer's own special token: `<` + a name + `>`, the name compared after dropping format
# characters (zero-width spaces and joiners) and NFKC folding (fullwidth letters), case
# ignored, with the brackets also in their fullwidth and small forms (`＜search＞`).
_OPEN, _CLOSE = "<\uff1c\ufe64", ">\uff1e\ufe65"
_CANDIDATE = re.compile(f"[{_OPEN}]([^{_OPEN}{_CLOSE}]{{1,64}})[{_CLOSE}]")
_TAG_NAME = re.compile(
    r"/?(search|information|region|image|image_pad|image_query|im_start|im_end"
    r"|bos|eos|pad|unk|mask|s|\|[^|]{0,40}\|)", re.IGNORECASE)
_ESCAPE_OPEN = "\u2039"  # ‹
_ESCAPE_CLOSE = "\u203a"  # ›


def _tag_like(inner: str) -> bool:
    plain = "".join(c for c in inner if unicodedata.category(c) != "Cf")
    return _TAG_NAME.fullmatch(unicodedata.normalize("NFKC", plain).strip()) is not None


def escape(text: str) -> str:
    """Neutralise tag-like substrings of untrusted text: `<search>` becomes `‹search›`, and so
    do `</information>`, `<eos>`, `</s>`, `<|im_start|>`, `＜search＞` and `<se\u200barch>`.
    Only the two brackets change, so the text keeps its length (character spans stay valid).
    Repeated until nothing changes: escaping an inner tag can make an outer one appear
    (`<|<search>image_pad|>`); each pass removes brackets, so it ends."""
    while True:
        out = _CANDIDATE.sub(lambda m: f"{_ESCAPE_OPEN}{m.group(1)}{_ESCAPE_CLOSE}"
                             if _tag_like(m.group(1)) else m.group(0), text)
        if out == text:
            return out
        text = out


@dataclass(frozen=True)
class TokenTable:
    """Vocabulary strings of every control role, and their ids once resolved on a tokenizer.

    Attributes:
        search_open, search_close, info_open, info_close, region, image_query: the strings the
            tokenizer holds for each control role (defaults are the display strings).
        image_placeholder: the backbone's own image-patch placeholder token; never equal to
            `image_query`.
        ids: role -> token id, filled by `resolve`.
    """

    search_open: str = "<search>"
    search_close: str = "</search>"
    info_open: str = "<information>"
    info_close: str = "</information>"
    region: str = "<region>"
    image_query: str = "<image>"
    image_placeholder: str = "<image_pad>"
    ids: dict[str, int] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        strings = self.strings()
        if len(set(strings.values())) != len(strings):
            raise ValueError(f"special-token strings must be distinct, got {strings}")

    def strings(self) -> dict[str, str]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "ids"}

    @property
    def roles(self) -> tuple[str, ...]:
        return tuple(self.strings())

    def add_to(self, tokenizer: Any) -> int:
        """Register every string as a special token on a HF tokenizer; returns how many were new."""
        missing = [s for s in self.strings().values() if s not in tokenizer.get_vocab()]
        if missing:
            tokenizer.add_tokens(missing, special_tokens=True)
        return len(missing)

    def resolve(self, tokenizer: Any) -> TokenTable:
        """Return a copy with `ids` looked up on `tokenizer`; every string must be one token."""
        ids: dict[str, int] = {}
        for role, s in self.strings().items():
            enc = tokenizer.encode(s, add_special_tokens=False)
            if len(enc) != 1:
                raise ValueError(
                    f"special token {s!r} ({role}) is not a single token of this tokenizer "
                    f"(got {len(enc)} ids); call TokenTable.add_to(tokenizer) first"
                )
            ids[role] = enc[0]
        return TokenTable(**self.strings(), ids=ids)

    def id(self, role: str) -> int:
        if not self.ids:
            raise RuntimeError("TokenTable is not resolved; call .resolve(tokenizer)")
        return self.ids[role]

    def display(self, token_id: int) -> str | None:
        """Display string of a control id (None for ordinary tokens)."""
        for role, i in self.ids.items():
            if i == token_id:
                return DISPLAY.get(role, self.strings()[role])
        return None

    def control_ids(self) -> set[int]:
        return set(self.ids.values())

    def to_dict(self) -> dict[str, Any]:
        return {**self.strings(), "ids": dict(self.ids)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TokenTable:
        return cls(**{k: v for k, v in d.items()})
