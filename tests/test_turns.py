"""Typed turns: the display grammar is written by `to_display` and read by `parse_display` only,
round-trips with the referring spans, escapes what it writes, and rejects malformed turns."""

from __future__ import annotations

import pytest

from pixsearch.turns import (
    Information,
    SearchCall,
    Text,
    parse_display,
    region_spans,
    to_display,
)

TURN = [Text("The flag on the left", refers=True), Text(" "), SearchCall("region"),
        Information("[1] Peru: a red-white flag"), Text(" is the flag of Peru. "),
        SearchCall("text", "capital of Peru"), Information("[1] Peru: capital Lima"),
        Text(" Its capital is Lima. "), SearchCall("image"), Information("")]
DISPLAY = ("The flag on the left <search><region></search><information>[1] Peru: a red-white "
           "flag</information> is the flag of Peru. <search>capital of Peru</search>"
           "<information>[1] Peru: capital Lima</information> Its capital is Lima. "
           "<search><image></search><information></information>")


def test_to_display_writes_the_papers_format_and_the_spans():
    assert to_display(TURN) == DISPLAY
    assert region_spans(TURN) == [(0, 20)]
    assert DISPLAY[0:20] == "The flag on the left"


def test_parse_display_reads_back_the_same_parts():
    parts = parse_display(DISPLAY, [(0, 20)])
    assert parts == TURN
    assert to_display(parts) == DISPLAY and region_spans(parts) == [(0, 20)]
    # a span inside a longer run splits it; the pieces write the same characters
    parts = parse_display("So the flag on the left <search><region></search>", [(3, 23)])
    assert parts == [Text("So "), Text("the flag on the left", refers=True), Text(" "),
                     SearchCall("region")]


def test_text_is_escaped_when_written_so_it_never_becomes_a_tag():
    turn = [Text("a <search>x</search> b"), SearchCall("text", "<region> of <image>"),
            Information("see </information>")]
    display = to_display(turn)
    assert display == ("a ‹search›x‹/search› b<search>‹region› of ‹image›</search>"
                       "<information>see ‹/information›</information>")
    assert parse_display(display) == [Text("a ‹search›x‹/search› b"),
                                      SearchCall("text", "‹region› of ‹image›"),
                                      Information("see ‹/information›")]
    assert to_display(parse_display(display)) == display  # escaping is idempotent


def test_tags_can_be_written_as_anything():
    blank = to_display(TURN[:3], dict.fromkeys(
        ("search_open", "search_close", "info_open", "info_close", "region", "image_query"),
        " "))
    assert blank == "The flag on the left    "


@pytest.mark.parametrize("bad", [
    "x </search>",
    "x <region>",
    "<search>a<search>b</search>",
    "<search>a <region></search>",
    "<search><region><image></search>",
    "<information>x",
    "<information><search>q</search></information>",
    "<search>q",
])
def test_malformed_displays_are_rejected(bad):
    with pytest.raises(ValueError):
        parse_display(bad)


def test_spans_must_lie_in_answer_text():
    with pytest.raises(ValueError, match="not inside"):
        parse_display("ab <search><region></search>", [(1, 8)])
    with pytest.raises(ValueError, match="overlapping"):
        parse_display("abcdef", [(0, 3), (2, 4)])


def test_search_call_fields_are_checked():
    with pytest.raises(ValueError):
        SearchCall("video")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        SearchCall("region", "a query")


def test_a_tag_split_across_text_parts_is_refused():
    from pixsearch.turns import Text, to_display

    with pytest.raises(ValueError, match="join into a control tag"):
        to_display([Text("look <sea"), Text("rch> here")])
    assert to_display([Text("the flag "), Text("on the left", refers=True)]) == "the flag on the left"
