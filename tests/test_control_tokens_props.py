"""Control-token safety as properties (hypothesis): questions, knowledge-base documents and
answer text full of literal and near-literal control tags — `<search>`, `</information>`,
`<region>`, chat-template and tokenizer special tokens (`<eos>`, `</s>`, `<|im_start|>`, …),
fullwidth and small bracket look-alikes, zero-width characters inside tags, tags split across
parts — rendered by the real renderers of `mini` (its shipped tokenizer), `tiny`, `llava-tiny`
and `qwen2.5-vl-tiny` never yield a control-token id nor a bos/eos/pad/added-token id, never
open a search (the decode state machine sees only answer text) and never close an
`<information>` block early (exactly one open tag first and one close tag last).

The default run tries 200 examples per property and renderer; the `slow` twins try 1,000
(`pytest -m slow tests/test_control_tokens_props.py --hypothesis-show-statistics`).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pixsearch.decode.config import DecodeConfig
from pixsearch.decode.state import SearchStateMachine
from pixsearch.render import Renderer
from pixsearch.retrieval.evidence import EvidenceConfig
from pixsearch.tokens import escape
from pixsearch.turns import Information, SearchCall, Text
from pixsearch.types import Hit

NAMES = ("mini", "tiny", "llava-tiny", "qwen2.5-vl-tiny")
MINI = Path(__file__).resolve().parents[1] / "src" / "pixsearch" / "weights" / "mini"


@cache
def renderer(name: str) -> Renderer:
    """The real renderer of a preset (built once per test session)."""
    if name == "mini":
        from transformers import AutoTokenizer

        from pixsearch.render import ChatFormat
        from pixsearch.tokens import TokenTable

        tok = AutoTokenizer.from_pretrained(str(MINI / "tokenizer"))
        table = TokenTable.from_dict(json.loads((MINI / "special_tokens.json").read_text()))
        return Renderer(tok, table, ChatFormat(), n_image_tokens=65)
    from pixsearch.model.build import build_model
    from pixsearch.model.presets import get_preset

    return build_model(get_preset(name)).renderer


@cache
def forbidden(name: str) -> frozenset[int]:
    """Every id untrusted text must never produce: control tokens, the tokenizer's special
    tokens (bos, eos, pad, unk, …) and every other added token."""
    r = renderer(name)
    tok = r.tokenizer
    ids = set(r.tokens.control_ids()) | set(tok.all_special_ids)
    ids |= set(getattr(tok, "added_tokens_decoder", {}))
    ids |= {i for i in (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) if i is not None}
    return frozenset(ids)


# ---- strategies ------------------------------------------------------------------------------
TAGS = ("<search>", "</search>", "<information>", "</information>", "<region>", "</region>",
        "<image>", "</image>", "<image_query>", "<image_pad>", "<|image_pad|>", "<|im_start|>",
        "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|endoftext|>", "<eos>", "<bos>",
        "<pad>", "<unk>", "</s>", "<s>", "<mask>")
LOOKS = {"<": ("＜", "﹤", "‹", "〈", "⟨", "&lt;"), ">": ("＞", "﹥", "›", "〉", "⟩", "&gt;")}
INVISIBLE = ("\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad")
PIECES = ("<", ">", "/", "|", "<sea", "rch>", "</", "|>", "<|", "informa", "tion>", "<im",
          "age>", "eo", "s>", " ", "\n", "\t", "  ", "[1] ", ": ")


def _vocab_strings() -> tuple[str, ...]:
    """The control and special strings the tokenizers actually hold (e.g. llava's
    `<image_query>`), so the generator tries each real one."""
    out: set[str] = set()
    for name in NAMES:
        r = renderer(name)
        out |= set(r.tokens.strings().values()) | set(r.tokenizer.all_special_tokens)
    return tuple(sorted(out))


@st.composite
def near_tag(draw) -> str:
    """A tag as it is, or bent: look-alike brackets, an invisible character inside, another
    case, a space inside, or cut in half."""
    tag = draw(st.sampled_from(TAGS + _vocab_strings()))
    how = draw(st.sampled_from(("as_is", "looks", "invisible", "case", "space", "half")))
    if how == "looks":
        return (draw(st.sampled_from(LOOKS["<"] + ("<",))) + tag[1:-1]
                + draw(st.sampled_from(LOOKS[">"] + (">",))))
    if how == "invisible":
        at = draw(st.integers(1, len(tag) - 1))
        return tag[:at] + draw(st.sampled_from(INVISIBLE)) + tag[at:]
    if how == "case":
        return tag.upper() if draw(st.booleans()) else tag.title()
    if how == "space":
        at = draw(st.integers(1, len(tag) - 1))
        return tag[:at] + " " + tag[at:]
    if how == "half":
        at = draw(st.integers(1, len(tag) - 1))
        return tag[:at] if draw(st.booleans()) else tag[at:]
    return tag


FRAGMENT = st.one_of(st.sampled_from(TAGS), near_tag(), st.sampled_from(PIECES),
                     st.text(max_size=6))
HOSTILE = st.lists(FRAGMENT, max_size=12).map("".join)
PARTS = st.lists(FRAGMENT, min_size=1, max_size=8)
RENDERER = st.sampled_from(NAMES)


def _settings(n: int):
    return settings(max_examples=n, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# ---- properties ------------------------------------------------------------------------------
def check_question(name: str, question: str) -> None:
    """The prompt of a hostile question: the question's ids hold no forbidden id, and they
    are exactly what sits between the fixed prompt pieces."""
    r, bad = renderer(name), forbidden(name)
    q_ids = r.text_ids(question)
    assert not set(q_ids) & bad, (question, sorted(set(q_ids) & bad))
    empty, full = r.prompt("", True).input_ids, r.prompt(question, True).input_ids
    suffix = r._encode(r.chat.user_suffix + r.chat.assistant_prefix, trusted=True)[0]
    cut = len(empty) - len(suffix)
    assert full == empty[:cut] + q_ids + empty[cut:]


def check_information(name: str, document: str, title: str) -> None:
    """Evidence from a hostile document: one `<information>` first, one `</information>`
    last, nothing forbidden between — raw, and as the evidence formatter writes it."""
    r, bad = renderer(name), forbidden(name)
    t = r.tokens
    evidence = EvidenceConfig(top_k=3, max_words=40).format(
        [Hit("d1", title, 0.9, document), Hit("d2", document[:20], 0.5, title + document)])
    for text in (document, evidence.text):
        ids = r.information(text)
        assert ids[0] == t.id("info_open") and ids[-1] == t.id("info_close")
        assert not set(ids[1:-1]) & bad, (text, sorted(set(ids[1:-1]) & bad))


def check_turn(name: str, before: list[str], query: str, document: str, after: str) -> None:
    """A whole turn of hostile parts: control ids exactly where the parts put them, and the
    decode state machine, fed what the model writes, opens and closes one search only."""
    r, bad = renderer(name), forbidden(name)
    t = r.tokens
    parts = [Text(p) for p in before] + [SearchCall("text", "q " + query),
                                         Information(document), Text(after)]
    rendered = r.render("Q?", parts, has_image=False, add_eos=False)
    answer = rendered.input_ids[rendered.prompt_len:]
    control = [i for i in answer if i in bad]
    assert control == [t.id(x) for x in ("search_open", "search_close", "info_open",
                                         "info_close")], (parts, control)
    # how a turn is cut into text parts never changes its ids (a tag split across parts)
    joined = r.render("Q?", [Text("".join(before)), *parts[len(before):]], False, False)
    assert joined.input_ids == rendered.input_ids
    # what the model writes (everything but the forced evidence) through the state machine
    start, end = answer.index(t.id("info_open")), answer.index(t.id("info_close"))
    written = answer[:start] + answer[end + 1:]
    sm = SearchStateMachine(t, DecodeConfig(), False, r.tokenizer.decode)
    kinds = [sm.feed(i).kind for i in written]
    assert kinds.count("open") == 1 and kinds.count("close") == 1
    assert set(kinds) <= {"text", "open", "payload", "close"}
    assert sm.finish() is None


def check_escape(text: str) -> None:
    """`escape` leaves no literal tag, keeps the length, and is idempotent."""
    out = escape(text)
    assert len(out) == len(text) and escape(out) == out
    assert not any(tag in out for tag in TAGS), out


# ---- the default run: 200 examples each ---------------------------------------------------------
@_settings(200)
@given(RENDERER, HOSTILE)
def test_questions_never_yield_control_or_special_ids(name, question):
    check_question(name, question)


@_settings(200)
@given(RENDERER, HOSTILE, HOSTILE)
def test_documents_never_close_the_information_block_early(name, document, title):
    check_information(name, document, title)


@_settings(200)
@given(RENDERER, PARTS, HOSTILE, HOSTILE, HOSTILE)
def test_turns_open_and_close_only_their_own_search(name, before, query, document, after):
    check_turn(name, before, query, document, after)


@_settings(200)
@given(HOSTILE)
def test_escape_leaves_no_tag(text):
    check_escape(text)


# ---- 1,000 examples per property and renderer (slow) --------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
@_settings(1000)
@given(question=HOSTILE)
def test_questions_1000(name, question):
    check_question(name, question)


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
@_settings(1000)
@given(document=HOSTILE, title=HOSTILE)
def test_documents_1000(name, document, title):
    check_information(name, document, title)


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
@_settings(1000)
@given(before=PARTS, query=HOSTILE, document=HOSTILE, after=HOSTILE)
def test_turns_1000(name, before, query, document, after):
    check_turn(name, before, query, document, after)


@pytest.mark.slow
@_settings(1000)
@given(text=HOSTILE)
def test_escape_1000(text):
    check_escape(text)


def test_the_worst_known_inputs():
    """Hand-picked cases, always run: each literal tag, each bent one, split across parts."""
    for name in NAMES:
        for tag in TAGS + _vocab_strings():
            for text in (tag, f"x{tag}y", tag.upper(), "＜" + tag[1:-1] + "＞",
                         tag[:2] + "\u200b" + tag[2:]):
                check_question(name, text)
                check_information(name, text, text)
            check_turn(name, [tag[:3], tag[3:]], tag, tag, tag)
    # found by the 1,000-example run: escaping the inner tag made an outer one appear
    for nested in ("<|<search>image_pad|>", "<<search>>", "<|<|im_start|>|>", "＜<eos>＞"):
        check_escape(nested)
        check_question("mini", nested)
