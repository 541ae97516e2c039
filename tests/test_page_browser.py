"""The page in a real browser: Playwright drives Debian's Chromium (/usr/bin/chromium, no
`playwright install`) against a live server with the `tiny` model and a small real index.

Upload, ask, wait for the answer; the mask overlay (tint, contour, legend) and hit cards are
drawn; Ask is disabled while a request runs (a double click makes one stream); errors — the
page's own checks, a 4xx JSON answer, an error event mid-stream — are shown as text; a sample
scene can be clicked; the layout fits a phone's width. Screenshots go to the test's tmp dir.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from eval_fixture import build_eval_set
from servers import PacedLM

from pixsearch import Predictor
from pixsearch.data.records import read_records
from pixsearch.decode.config import DecodeConfig
from pixsearch.model.build import build_model
from pixsearch.model.presets import get_preset
from pixsearch.retrieval.index import KnowledgeIndex
from pixsearch.serve.app import create_app
from pixsearch.serve.samples import world_samples

CHROMIUM = os.environ.get("PIXSEARCH_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
SCRIPT = ["The flag on the left", "search_open", "region", "search_close", " is",
          "search_open", "capital of Redland", "search_close"]
STEP_COLOUR = (0xE6, 0x19, 0x4B)  # the first step's colour in app.js (contours are opaque)


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (CI installs Debian's `chromium`: "
                    "bash scripts/setup.sh)")
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="playwright is not installed (pip install -e '.[dev]')")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A live server over the hand-made evaluation set's index, with its scenes as samples."""
    from servers import serve_in_thread

    root = tmp_path_factory.mktemp("world")
    records_path, index = build_eval_set(root)
    records_path.rename(root / "test.jsonl")
    torch.manual_seed(0)
    lm = PacedLM(build_model(get_preset("tiny")).eval(), SCRIPT)
    predictor = Predictor(lm, KnowledgeIndex.open(index), DecodeConfig(max_new_tokens=24))
    app = create_app(predictor, "tiny", samples=world_samples(root, n=3))
    record = read_records(root / "test.jsonl")[0]
    with serve_in_thread(app) as url:
        yield url, root / record.image, record.question, lm


def done(page) -> None:
    page.wait_for_function("!document.getElementById('ask').disabled", timeout=60_000)


def test_upload_ask_answer_masks_hits_and_errors(browser, site, tmp_path):
    url, image, question, lm = site
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    streams = []
    page.on("request", lambda r: streams.append(r) if r.url.endswith("/api/ask/stream") else None)
    page.goto(url)
    page.set_input_files("#image", str(image))
    page.fill("#question", question)
    # the button is disabled while a stream runs; the tiny model may finish before a check
    # right after the click, so an observer records the attribute change as it happens
    page.evaluate("""() => { const b = document.getElementById('ask'); window.askDisabled = false;
        new MutationObserver(() => { if (b.disabled) window.askDisabled = true; })
            .observe(b, {attributes: true}); }""")
    page.dblclick("#ask")  # a double click starts one stream, not two
    done(page)
    assert page.evaluate("window.askDisabled")
    assert len(streams) == 1
    assert page.is_hidden("#error"), page.text_content("#error")
    assert "tokens" in page.text_content("#status")
    assert page.text_content("#answer").strip()
    assert page.locator("#legend li").count() >= 1  # one legend entry per region mask
    assert page.locator(".hit").count() >= 1 and page.locator(".evidence pre").count() >= 1
    contour = page.evaluate("""([r, g, b]) => {
        const c = document.getElementById('canvas'), d = c.getContext('2d')
            .getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 0; i < d.length; i += 4) if (d[i] === r && d[i+1] === g && d[i+2] === b) n++;
        return n; }""", list(STEP_COLOUR))
    assert contour > 0  # the mask's contour is drawn in its step's colour
    page.screenshot(path=str(tmp_path / "answer.png"), full_page=True)

    page.fill("#budget", "two")  # the page's own check, before any request
    page.click("#ask")
    assert "Max searches must be a whole number" in page.text_content("#error")
    assert len(streams) == 1

    page.fill("#budget", "")
    page.set_input_files("#image", files=[{"name": "notes.png", "mimeType": "image/png",
                                           "buffer": b"this is not a picture"}])
    page.click("#ask")
    done(page)
    error = page.text_content("#error")
    assert error.startswith("Error 400 (bad_image)") and "not an image" in error

    page.set_input_files("#image", str(image))
    lm.fail_at = lm.steps + 4  # the model crashes mid-answer: an error event ends the stream
    try:
        page.click("#ask")
        done(page)
    finally:
        lm.fail_at = None
    assert "The answer failed (answer_failed)" in page.text_content("#error")
    assert "injected fault" in page.text_content("#error")
    page.screenshot(path=str(tmp_path / "error.png"), full_page=True)
    page.close()


def test_samples_and_phone_layout(browser, site, tmp_path):
    url, _, _, _ = site
    page = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
    page.goto(url)
    page.wait_for_selector(".sample")
    assert page.locator(".sample").count() == 3
    page.locator(".sample").nth(1).click()
    page.wait_for_function("document.getElementById('question').value.includes('stripe')")
    page.click("#ask")
    done(page)
    assert page.is_hidden("#error") and page.text_content("#answer").strip()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390  # nothing sticks out sideways at phone width
    page.screenshot(path=str(tmp_path / "phone.png"), full_page=True)
    page.close()
