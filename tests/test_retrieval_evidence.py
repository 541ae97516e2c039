"""Evidence formatting: numbered lines, dedupe, escaping, token budget."""

from pixsearch.retrieval.evidence import dedupe, format_evidence
from pixsearch.types import Hit


def _hit(doc_id, text, title="T", score=1.0):
    return Hit(doc_id=doc_id, title=title, score=score, text=text)


def test_lines_are_numbered_and_compact():
    ev = format_evidence([_hit("a", "First  fact.\nMore."), _hit("b", "Second fact.", "U")], 100)
    assert ev.text == "[1] T: First fact. More.\n[2] U: Second fact."
    assert [h.doc_id for h in ev.hits] == ["a", "b"]
    assert not ev.truncated
    assert ev.n_tokens == 9


def test_dedupe_by_doc_id_and_identical_text():
    hits = [_hit("a", "x y"), _hit("a", "other"), _hit("b", "X  y"), _hit("c", "z")]
    assert [h.doc_id for h in dedupe(hits)] == ["a", "c"]
    ev = format_evidence(hits, 100)
    assert ev.text == "[1] T: x y\n[2] T: z"


def test_control_tags_in_documents_are_escaped():
    ev = format_evidence([_hit("a", "see <search>x</search> and <information>", "<region>")], 100)
    assert "<search>" not in ev.text and "</search>" not in ev.text
    assert "<information>" not in ev.text and "<region>" not in ev.text
    assert "‹search›x‹/search›" in ev.text


def test_token_budget_cuts_and_marks_truncated():
    hits = [_hit(str(i), " ".join(f"w{i}_{j}" for j in range(10))) for i in range(5)]
    ev = format_evidence(hits, 30)
    assert ev.truncated
    assert ev.n_tokens <= 30
    assert ev.text.startswith("[1] T: w0_0")
    assert ev.text.endswith("…")
    assert len(ev.hits) == 3  # two whole lines of 12 words, the third cut


def test_custom_token_counter():
    # a character-level counter: the budget is in characters
    ev = format_evidence([_hit("a", "abcdef ghijkl mnopqr")], 20, count_tokens=len)
    assert len(ev.text) <= 20 and ev.truncated
    assert ev.text == "[1] T: abcdef …"
