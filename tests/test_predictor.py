"""The facade at the top: `from pixsearch import Predictor` (lazily, so `import pixsearch`
stays free of torch), its public decode config, override validation and forced queries."""

from __future__ import annotations

import subprocess
import sys

import pytest
from PIL import Image
from scripted import ScriptedLM

import pixsearch
from pixsearch.config import ConfigError
from pixsearch.decode.config import DecodeConfig
from pixsearch.decode.engine import saved_evidence
from pixsearch.decode.events import DoneEvent, SearchStarted
from pixsearch.types import Hit, Query

IMAGE = Image.new("RGB", (48, 32), (120, 30, 30))
SCRIPT = ["It is", "search_open", "capital of Peru", "search_close", " Lima"]


class Recording:
    """A search API double recording its queries and k."""

    def __init__(self) -> None:
        self.calls: list[tuple[Query, int]] = []

    def search(self, query: Query, k: int) -> list[Hit]:
        self.calls.append((query, k))
        return [Hit(doc_id=f"d{i}", title="Peru", score=1.0 - i / 10,
                    text=f"Lima is the capital of Peru, fact number {i}.") for i in range(k)]


def _predictor(**cfg) -> tuple[pixsearch.Predictor, Recording]:
    search = Recording()
    return pixsearch.Predictor(ScriptedLM(SCRIPT), search,
                               DecodeConfig(max_new_tokens=40, **cfg)), search


def test_import_pixsearch_is_light_and_exports_the_predictor():
    code = "import sys, pixsearch; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    from pixsearch.predictor import Predictor

    assert pixsearch.Predictor is Predictor and "Predictor" in pixsearch.__all__
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        pixsearch.Nope  # noqa: B018


def test_decode_config_is_public_and_overrides_apply_per_call():
    p, search = _predictor(top_k=2)
    assert (p.decode_config.max_new_tokens, p.decode_config.top_k) == (40, 2)
    # the evidence budget in use: top_k from the decode config, the word budget the model's
    assert p.evidence.top_k == 2 and p.evidence.max_words == saved_evidence(p.model).max_words
    ans = p.ask("What is the capital?", IMAGE)
    assert [s.query_text for s in ans.trace.steps] == ["capital of Peru"]
    assert search.calls[-1][1] == 2
    ans = p.ask("What is the capital?", IMAGE, max_searches=0)
    assert ans.trace.steps == [] and len(search.calls) == 1
    ans = p.ask("Again?", IMAGE, top_k="1")  # coerced to the field's type
    assert search.calls[-1][1] == 1 and len(ans.trace.steps) == 1
    assert p.decode_config.top_k == 2  # per-call overrides leave the predictor's config alone


def test_forced_queries_are_searched_first_and_the_budget_still_applies():
    p, search = _predictor()
    forced = [Query("image", image=IMAGE)]
    ans = p.ask("Which country?", IMAGE, forced_queries=forced, max_searches=0)
    assert [s.modality for s in ans.trace.steps] == ["image"]
    assert search.calls[0][0].modality == "image" and len(search.calls) == 1
    events = list(p.stream("Which country?", IMAGE, forced_queries=forced, max_searches=0))
    assert [e.modality for e in events if isinstance(e, SearchStarted)] == ["image"]
    assert isinstance(events[-1], DoneEvent)
    assert events[-1].answer.trace.display == ans.trace.display


def test_validate_overrides_names_what_is_wrong():
    p, _ = _predictor()
    cfg = p.validate_overrides(max_searches=2, modalities=["region", "text"], temperature=0.5)
    assert (cfg.max_searches, cfg.modalities, cfg.temperature) == (2, ("region", "text"), 0.5)
    with pytest.raises(ConfigError, match=r"unknown field.*max_serches.*known:.*max_searches"):
        p.validate_overrides(max_serches=2)
    with pytest.raises(ConfigError, match="max_new_tokens: expected int"):
        p.validate_overrides(max_new_tokens="many")
    with pytest.raises(ConfigError, match="unknown modalities"):
        p.validate_overrides(modalities=("audio",))
    with pytest.raises(ConfigError, match="temperature"):
        p.ask("q", IMAGE, temperature=-1.0)


def test_load_model_pauses_the_collector_and_restores_it(monkeypatch):
    import gc

    import pixsearch.predictor as predictor

    seen = []

    def fake_load(spec, device, overrides):
        seen.append(gc.isenabled())
        if spec == "boom":
            raise RuntimeError("boom")
        return "model"

    monkeypatch.setattr(predictor, "_load_model", fake_load)
    assert gc.isenabled()
    assert predictor.load_model("tiny") == "model" and seen == [False] and gc.isenabled()
    with pytest.raises(RuntimeError):
        predictor.load_model("boom")
    assert seen == [False, False] and gc.isenabled()
    gc.disable()  # a caller that runs without the collector keeps it off
    try:
        predictor.load_model("tiny")
        assert not gc.isenabled()
    finally:
        gc.enable()
