"""An LLM judge over any OpenAI-compatible chat endpoint (vLLM, llama.cpp server, hosted APIs).

Implements CRAG-MM's semantic evaluation step: the judge model gets judging instructions as the
system message, then "Question / Ground Truth / Prediction" as the user message, and must end
with "Result: CORRECT" or "Result: WRONG" (facebookresearch/CRAG-MM, `evaluation/llm_judge.py`
and `evaluation_prompt.py`, read for this module: temperature 0, 1024 max tokens, 3 attempts
with 2**attempt s back-off, verdict read from "Result: WRONG"/"Result: CORRECT" or from the
last line). The instructions below restate CRAG-MM's eight judging rules and unit hints in
our own words with our own short examples; pass `system_prompt=` to use the official text.

Differences from the official client, on purpose:
- plain HTTP (`httpx`, `POST {base_url}/chat/completions`) so any compatible server works;
- retries only on timeouts, connection errors, 429 and 5xx; other 4xx fail at once with the
  server's message; when retries run out `JudgeUnavailableError` is raised instead of silently
  scoring the answer as wrong;
- responses are cached on disk by (model, prompt hash) (`JudgeCache`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

from pixsearch.eval.judge_cache import JudgeCache, prompt_hash
from pixsearch.eval.judges import Verdict
from pixsearch.openai_http import post_with_retries

JUDGE_INSTRUCTIONS = """\
You judge answers to questions about images. You get a question, the ground-truth answer and a \
model's prediction. Decide whether the prediction is correct according to the ground truth.

Rules, applied in order:
1. A prediction that expresses uncertainty or refuses to answer is WRONG.
2. A prediction that states exactly the ground truth is CORRECT.
3. When the ground truth is a number: a number that is almost exactly the same is CORRECT; a \
different number is WRONG.
4. A self-contradictory prediction is WRONG.
5. A prediction that does not answer the question is WRONG.
6. When the ground truth is a set of items: the same items (in any order) are CORRECT, different \
items are WRONG, nearly the same items call for your best judgement.
7. A prediction supported by the ground truth is CORRECT, including abbreviations, synonyms and \
extra details that do not contradict it.
8. A prediction unrelated to or contradicting the ground truth is WRONG.

Always treat the ground truth as correct. Mind units: 1 mile = 1.60934 km, 1 foot = 0.3048 m, \
1 inch = 2.54 cm, 1 yard = 0.9144 m, 1 pound = 0.453592 kg, 1 gallon = 3.78541 l, \
1 ounce = 28.3495 g.

Give a very short explanation naming the rule you applied, then end with exactly one line: \
"Result: CORRECT" or "Result: WRONG".

Examples:
Question: which country's flag is this?
Ground Truth: This is the flag of Peru.
Prediction: I can't tell from this picture.
Explanation: The prediction refuses to answer (rule 1).
Result: WRONG

Question: how many people live in this country?
Ground Truth: About 5.4 million people.
Prediction: Roughly 5,400,000 inhabitants.
Explanation: The same number in another notation (rule 3).
Result: CORRECT

Question: what is the capital of this country?
Ground Truth: The capital of Chile is Santiago.
Prediction: Santiago, which is also its largest city.
Explanation: Supported by the ground truth; the extra detail is fine (rule 7).
Result: CORRECT

Question: which languages are official here?
Ground Truth: Dutch, French and German.
Prediction: French and Dutch.
Explanation: German is missing, so the set differs (rule 6).
Result: WRONG
"""

_RESULT = re.compile(r"result\s*[:：]\s*[*_`\"']*\s*(correct|wrong|incorrect)\b", re.IGNORECASE)
_LAST_LINE = re.compile(r"\b(correct|wrong|incorrect)\b", re.IGNORECASE)


class JudgeUnavailableError(RuntimeError):
    """The judge endpoint could not be reached or kept failing after all retries."""


def parse_verdict(text: str) -> bool | None:
    """Read "Result: CORRECT/WRONG" (any case, spacing, markdown emphasis); the last such line
    wins. Falls back to a lone CORRECT/WRONG/INCORRECT word on the last non-empty line."""
    matches = _RESULT.findall(text)
    if matches:
        return matches[-1].lower() == "correct"
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return None
    words = {w.lower() for w in _LAST_LINE.findall(lines[-1])}
    if len(words) == 1:
        return words == {"correct"}
    return None


def judge_messages(
    question: str, gold: str, prediction: str, system_prompt: str = JUDGE_INSTRUCTIONS
) -> list[dict[str, str]]:
    """The chat messages sent to the judge model for one answer."""
    user = (
        "Judge whether the prediction is correct according to the ground truth.\n\n"
        f"Question: {question}\nGround Truth: {gold}\nPrediction: {prediction}\n"
        "Give your judgment below:\n"
    )
    return [{"role": "system", "content": system_prompt}, {"role": "user", "content": user}]


class OpenAIJudge:
    """LLM judge over `POST {base_url}/chat/completions`.

    Args:
        base_url: the API root, e.g. "http://127.0.0.1:8000/v1" (vLLM) or
            "https://api.openai.com/v1".
        model: the model name the server expects.
        api_key: bearer token; defaults to $OPENAI_API_KEY, none sent if unset.
        max_retries: attempts per request (timeouts, connection errors, 429 and 5xx retry).
        timeout: seconds per request.
        cache_path: SQLite file caching responses by (model, prompt hash); None disables it.
        backoff: first back-off in seconds, doubled after every failed attempt.
        max_tokens: completion budget for the explanation and verdict.
        system_prompt: judging instructions (defaults to `JUDGE_INSTRUCTIONS`).
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        max_retries: int = 3,
        timeout: float = 60.0,
        cache_path: str | Path | None = None,
        backoff: float = 1.0,
        max_tokens: int = 1024,
        system_prompt: str = JUDGE_INSTRUCTIONS,
    ) -> None:
        try:
            import httpx
        except ImportError as exc:  # pragma: no cover - httpx is in the eval extra
            raise ImportError("OpenAIJudge needs httpx: pip install 'pixsearch[eval]'") from exc
        if max_retries < 1:
            raise ValueError("max_retries must be at least 1")
        self.name = f"llm:{model}"
        self.model = model
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.max_retries, self.backoff = max_retries, backoff
        self.max_tokens, self.system_prompt = max_tokens, system_prompt
        key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._client = httpx.Client(timeout=timeout, headers=headers)
        self.cache = JudgeCache(cache_path) if cache_path is not None else None
        self.calls = 0  # HTTP requests actually sent, for cost accounting

    def _post(self, messages: list[dict[str, str]]) -> str:
        body = {
            "model": self.model,
            "messages": messages,
            "temperature": 0.0,
            "max_tokens": self.max_tokens,
        }
        reply = post_with_retries(self._client, self.url, body, self.max_retries, self.backoff,
                                  JudgeUnavailableError, f"judge endpoint {self.url}",
                                  "check the model name and API key", self._sent)
        return reply["choices"][0]["message"]["content"] or ""

    def _sent(self) -> None:
        self.calls += 1

    def complete(self, messages: list[dict[str, str]]) -> str:
        """The judge model's response to `messages`, from the cache when possible."""
        key = prompt_hash(messages)
        if self.cache is not None:
            cached = self.cache.get(self.model, key)
            if cached is not None:
                return cached
        text = self._post(messages)
        # Only parseable answers are cached: an unparseable one may parse on a later attempt.
        if self.cache is not None and parse_verdict(text) is not None:
            self.cache.put(self.model, key, text)
        return text

    def judge(
        self, question: str, gold: str, prediction: str, aliases: Sequence[str] = ()
    ) -> Verdict:
        """Ask the judge model; aliases are appended to the ground truth as accepted variants."""
        truth = gold if not aliases else f"{gold} (also accepted: {'; '.join(aliases)})"
        text = self.complete(judge_messages(question, truth, prediction, self.system_prompt))
        return Verdict(parse_verdict(text), text)

    def close(self) -> None:
        """Close the HTTP client and the cache."""
        self._client.close()
        if self.cache is not None:
            self.cache.close()
