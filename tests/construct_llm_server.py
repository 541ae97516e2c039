"""A deterministic OpenAI-compatible LLM server for the construction tests, run as a process.

It serves `POST /v1/chat/completions` and `POST /v1/completions` over real HTTP (standard
library `http.server`) and answers the construction prompts (`pixsearch/construct/prompts`)
the way a careful annotator would: it reads the question block at the end of the prompt and
replies with the rule annotator's decision in the prompt's reply format (the candidate picked
by the request's `seed`). `GET /stats` returns how many completions it computed, so tests can
tell cached calls from new ones.

    python tests/construct_llm_server.py   # prints "PORT <n>" once it listens
"""

from __future__ import annotations

import json
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from pixsearch.construct.annotator import Question
from pixsearch.construct.decompose import format_subquestions
from pixsearch.construct.queries import rule_query_type
from pixsearch.construct.rule import RuleAnnotator

RULES = RuleAnnotator()
COUNT = {"completions": 0}
LOCK = threading.Lock()


def _last(prompt: str, field: str) -> str:
    values = re.findall(rf"^{field}: (.*)$", prompt, re.MULTILINE)
    return values[-1].strip() if values else ""


def answer(prompt: str, seed: int) -> str:
    """The reply to one construction prompt (by the line the prompt ends with)."""
    tail = prompt.rstrip().splitlines()[-1]
    q = Question(_last(prompt, "Question"), (_last(prompt, "Gold answer") or "?",))
    if tail == "type:":
        sel = RULES.select(q)
        return f" {sel.question_type}\nretrieval: {'yes' if sel.needs_search else 'no'}"
    if tail == "Sub-questions:":
        return "\n" + format_subquestions(RULES.decompose(q, RULES.select(q)))
    if tail.startswith("Response:"):
        cands = RULES.respond(q, RULES.select(q), [], 5)
        return " " + cands[seed % len(cands)]
    if tail == "Best:":
        block = prompt.rsplit("Candidates:", 1)[1]
        ok = re.findall(r"^(\d+)\. .*\(problems: none\)$", block, re.MULTILINE)
        return f" {ok[0] if ok else 1}"
    if tail.startswith("Type:"):
        return " " + rule_query_type(_last(prompt, "Search"))
    return " I cannot tell."


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:  # quiet
        pass

    def _send(self, code: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/stats":
            with LOCK:
                self._send(200, dict(COUNT))
        else:
            self._send(404, {"error": "not found"})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path == "/v1/chat/completions":
            prompt = body["messages"][-1]["content"]
        elif self.path == "/v1/completions":
            prompt = body["prompt"]
        else:
            self._send(404, {"error": f"no route {self.path}"})
            return
        with LOCK:
            COUNT["completions"] += 1
        text = answer(prompt, int(body.get("seed", 0)))
        for stop in body.get("stop") or []:
            text = text.split(stop)[0] if stop in text[1:] else text
        choice = ({"message": {"role": "assistant", "content": text}} if "messages" in body
                  else {"text": text})
        self._send(200, {"choices": [{"index": 0, "finish_reason": "stop", **choice}],
                         "model": body.get("model")})


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(f"PORT {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
