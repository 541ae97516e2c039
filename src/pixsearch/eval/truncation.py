"""Response truncation before scoring: CRAG-MM caps every answer at 75 tokens.

The official evaluator (facebookresearch/CRAG-MM `evaluation/evaluator.py`,
`truncate_agent_responses`; `MAX_RESPONSE_LENGTH_IN_TOKENS = 75` in `evaluation/config.py`)
encodes each response with the `meta-llama/Llama-3.2-1B-Instruct` tokenizer with truncation
at max_length=75 and decodes the kept ids. Whether its BOS token counts against the 75 depends
on that tokenizer's post-processor; we could not run it here (no model hub), so this is not
verified.

`truncate_response` accepts:
- `tokenizer=None` (default): whitespace tokens; the cut keeps the original spacing. 75 words
  are usually more than 75 Llama tokens, so this truncates *less* than the official scorer;
- an object with `encode`/`decode` (a `tokenizers.Tokenizer`, a transformers tokenizer): ids
  are cut to `max_tokens` (special tokens included, as with HF truncation) and decoded without
  special tokens — pass the Llama-3.2 tokenizer to reproduce the official numbers;
- any callable text → list of string tokens: the text is cut after the last kept token when the
  tokens are substrings of the text, else the kept tokens are joined with spaces.
"""

from __future__ import annotations

from typing import Any

MAX_RESPONSE_TOKENS = 75


def truncate_response(
    text: str, max_tokens: int = MAX_RESPONSE_TOKENS, tokenizer: Any = None
) -> str:
    """Cut `text` to `max_tokens` tokens; unchanged when it is already short enough."""
    if tokenizer is not None and hasattr(tokenizer, "encode") and hasattr(tokenizer, "decode"):
        encoded = tokenizer.encode(text)
        ids = list(getattr(encoded, "ids", encoded))
        # Decode only when cutting: the official round trip is lossless for Llama's byte BPE.
        return (
            text
            if len(ids) <= max_tokens
            else tokenizer.decode(ids[:max_tokens], skip_special_tokens=True)
        )
    tokens = text.split() if tokenizer is None else list(tokenizer(text))
    if len(tokens) <= max_tokens:
        return text
    end = 0
    for token in tokens[:max_tokens]:
        found = text.find(str(token), end)
        if found < 0:  # tokens that are not substrings (e.g. "Ġ" BPE pieces): join them instead
            return " ".join(str(t) for t in tokens[:max_tokens])
        end = found + len(str(token))
    return text[:end]
