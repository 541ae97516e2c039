"""OpenAIJudge against a real local HTTP server speaking the chat-completions protocol.

The server (standard-library `http.server` on 127.0.0.1, ephemeral port) answers like a judge
model would: "Result: CORRECT" when the prediction contains the ground truth, else
"Result: WRONG". It can fail the first N calls with HTTP 500 or stall past the client timeout,
and it counts every request so the tests can prove retries and the cache.
"""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pixsearch.eval.crag import score_crag
from pixsearch.eval.judges import RuleJudge
from pixsearch.eval.llm_judge import JUDGE_INSTRUCTIONS, JudgeUnavailableError, OpenAIJudge


class _JudgeServer:
    def __init__(self, fail_first: int = 0, stall_first: int = 0, status: int = 500) -> None:
        self.fail_first, self.stall_first, self.status = fail_first, stall_first, status
        self.calls, self.bodies, self.auth = 0, [], []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def _handler(self):
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_POST(self):
                owner.calls += 1
                n = owner.calls
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                owner.bodies.append(body)
                owner.auth.append(self.headers.get("Authorization"))
                if self.path != "/v1/chat/completions":
                    return self._send(404, {"error": "no such route"})
                if n <= owner.stall_first:
                    time.sleep(0.6)
                if n <= owner.fail_first:
                    return self._send(owner.status, {"error": "overloaded"})
                user = body["messages"][-1]["content"]
                gold = re.search(r"Ground Truth: (.*)", user).group(1).split(" (also")[0]
                pred = re.search(r"Prediction: (.*)", user).group(1)
                ok = gold.lower().strip(". ") in pred.lower()
                text = f"Explanation: checked.\nResult: {'CORRECT' if ok else 'WRONG'}"
                self._send(200, {"choices": [{"message": {"role": "assistant", "content": text}}]})

            def _send(self, status, payload):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def test_retry_after_500_then_cache_hit(tmp_path):
    with _JudgeServer(fail_first=1) as server:
        judge = OpenAIJudge(
            server.base_url,
            "judge-model",
            api_key="sk-test",
            max_retries=3,
            timeout=5,
            cache_path=tmp_path / "cache.sqlite",
            backoff=0.01,
        )
        verdict = judge.judge("which flag?", "Peru", "the flag of peru")
        assert verdict.correct is True and "Result: CORRECT" in verdict.explanation
        assert server.calls == 2  # one 500, one success
        body = server.bodies[-1]
        assert body["model"] == "judge-model" and body["temperature"] == 0.0
        assert body["messages"][0] == {"role": "system", "content": JUDGE_INSTRUCTIONS}
        assert server.auth[-1] == "Bearer sk-test"
        # The same question again: answered from the cache, no request.
        assert judge.judge("which flag?", "Peru", "the flag of peru").correct is True
        assert server.calls == 2
        assert judge.judge("which flag?", "Peru", "the flag of chile").correct is False
        assert server.calls == 3
        judge.close()
        # A new judge on the same cache file sends nothing for known prompts.
        again = OpenAIJudge(server.base_url, "judge-model", cache_path=tmp_path / "cache.sqlite")
        assert again.judge("which flag?", "Peru", "the flag of chile").correct is False
        assert server.calls == 3 and len(again.cache) == 2
        # Another model name is another cache key.
        other = OpenAIJudge(server.base_url, "other-model", cache_path=tmp_path / "cache.sqlite")
        other.judge("which flag?", "Peru", "the flag of chile")
        assert server.calls == 4
        again.close()
        other.close()


def test_retry_after_timeout():
    with _JudgeServer(stall_first=1) as server:
        judge = OpenAIJudge(server.base_url, "m", max_retries=2, timeout=0.3, backoff=0.01)
        assert judge.judge("q", "Lima", "Lima, Peru").correct is True
        assert judge.calls == 2
        judge.close()


def test_retries_exhausted_raise():
    with _JudgeServer(fail_first=10) as server:
        judge = OpenAIJudge(server.base_url, "m", max_retries=3, timeout=5, backoff=0.01)
        with pytest.raises(JudgeUnavailableError, match="failed 3 times.*HTTP 500"):
            judge.judge("q", "a", "b")
        assert server.calls == 3
        judge.close()


def test_client_error_fails_fast():
    with _JudgeServer(fail_first=10, status=401) as server:
        judge = OpenAIJudge(server.base_url, "m", max_retries=3, backoff=0.01)
        with pytest.raises(JudgeUnavailableError, match="HTTP 401"):
            judge.judge("q", "a", "b")
        assert server.calls == 1
        judge.close()


def test_score_crag_with_llm_judge_and_rule_agreement(tmp_path):
    records = [
        {"id": "1", "question": "which flag?", "answer": "Peru", "ego": True},
        {"id": "2", "question": "capital?", "answer": "Lima", "ego": False},
        {"id": "3", "question": "capital?", "answer": "Quito", "ego": False},
    ]
    preds = {"1": "This is the flag of Peru.", "2": "It is Cusco.", "3": "quito"}
    with _JudgeServer() as server:
        judge = OpenAIJudge(server.base_url, "m", cache_path=tmp_path / "c.sqlite")
        report = score_crag(records, preds, judge, second_judge=RuleJudge())
        judge.close()
    assert server.calls == 2  # the exact match "quito" never reaches the judge
    assert report.groups["all"].correct == 2 and report.groups["all"].hallucinated == 1
    assert report.groups["ego"].truthfulness == 1.0
    assert report.agreement.n == 2 and report.agreement.agreement == 1.0
