"""Tokenizers the project trains itself (the `tiny` and `mini` presets), with control tokens added.

A byte-level BPE trained with `tokenizers` encodes any text (no unknown tokens), so escaped
user text and retrieved evidence always round-trip. Hub presets use their own tokenizer and
only get the control tokens added (`TokenTable.add_to`).
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

from pixsearch.tokens import TokenTable

BOS, EOS, PAD = "<bos>", "<eos>", "<pad>"

# Enough varied English to give a tiny model a usable vocabulary when no corpus is given.
_DEFAULT_CORPUS = [
    "The flag on the left is the flag of Peru. Its capital is Lima.",
    "What is the capital of the country whose flag is shown? The answer is Paris.",
    "How many flags are in the picture? There are three flags.",
    "Which country borders it to the north? The population is about 33 million people.",
    "I don't know. The region is South America and the currency is the sol.",
    "red white blue green yellow black orange stripes star cross circle crescent",
    "0 1 2 3 4 5 6 7 8 9 km2 million thousand percent official language",
]


def train_tokenizer(corpus: Iterable[str] | None = None, vocab_size: int = 1024,
                    tokens: TokenTable | None = None) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE on `corpus` and return a HF fast tokenizer with control tokens."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=[PAD, BOS, EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tok.train_from_iterator(list(corpus or _DEFAULT_CORPUS), trainer=trainer)
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS,
                                 pad_token=PAD)
    (tokens or TokenTable()).add_to(hf)
    return hf
