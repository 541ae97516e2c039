"""Language-model back-ends of data construction: any OpenAI-compatible endpoint, cached.

`OpenAICompatibleLM` talks plain HTTP (`httpx`) to `POST {base_url}/chat/completions` (mode
"chat": the prompt is one user message) or `POST {base_url}/completions` (mode "completion":
the raw prompt, what a base model such as Gemma 3 270M needs). vLLM, the llama.cpp server,
`xllamacpp` (`llm_local.py`) and hosted APIs all speak it. Timeouts, connection errors, 429
and 5xx are retried with exponential back-off; any other error fails at once with the
server's message.

Every call goes through a `CallCache` (`cache.py`) keyed by the back-end, the model, the
prompt and the sampling parameters, so a rerun (after a kill, or with other downstream
settings) costs no model call. `calls` counts the HTTP requests really sent.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Literal, Protocol

from pixsearch.construct.cache import CallCache, call_key
from pixsearch.openai_http import post_with_retries


class LMUnavailableError(ConnectionError):
    """The endpoint could not be reached, refused the request, or kept failing after all
    retries (an OSError: the CLI prints it as one line)."""


class CompletionLM(Protocol):
    """What annotators need from a language model."""

    name: str

    def complete(self, prompt: str, temperature: float = 0.0, seed: int = 0,
                 max_tokens: int = 128, stop: tuple[str, ...] = ()) -> str: ...


@dataclass
class LLMConfig:
    """An OpenAI-compatible endpoint.

    Attributes:
        base_url: API root, e.g. "http://127.0.0.1:8000/v1" (vLLM) or "https://api.openai.com/v1".
        model: the model name the server expects.
        mode: "chat" (chat completions, one user message) or "completion" (raw prompt; for
            base models).
        api_key_env: environment variable holding the bearer token (none sent if unset).
        timeout_s: seconds per request.
        max_retries: attempts per call (timeouts, connection errors, 429 and 5xx retry).
        backoff_s: first back-off, doubled after every failed attempt.
        stop: stop strings added to every call (besides the step's own).
    """

    base_url: str = "http://127.0.0.1:8000/v1"
    model: str = "default"
    mode: Literal["chat", "completion"] = "chat"
    api_key_env: str = "OPENAI_API_KEY"
    timeout_s: float = 120.0
    max_retries: int = 3
    backoff_s: float = 1.0
    stop: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.max_retries < 1:
            raise ValueError("max_retries must be at least 1")


class OpenAICompatibleLM:
    """Completions from an OpenAI-compatible endpoint, through a cache.

    Args:
        cfg: the endpoint.
        cache: where replies are kept (None: no caching).
        backend: the back-end name in cache keys ("openai", "gemma", ...).
    """

    def __init__(self, cfg: LLMConfig, cache: CallCache | None = None,
                 backend: str = "openai") -> None:
        try:
            import httpx
        except ImportError as e:  # pragma: no cover - httpx is in the construct extra
            raise ImportError("the LLM back-end needs httpx: pip install 'pixsearch[construct]'"
                              ) from e
        self.cfg, self.cache, self.backend = cfg, cache, backend
        self.name = f"{backend}:{cfg.model}"
        key = os.environ.get(cfg.api_key_env) if cfg.api_key_env else None
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._client = httpx.Client(timeout=cfg.timeout_s, headers=headers)
        self.calls = 0

    def _request(self, prompt: str, temperature: float, seed: int, max_tokens: int,
                 stop: tuple[str, ...]) -> dict:
        body: dict = {"model": self.cfg.model, "temperature": temperature, "seed": seed,
                      "max_tokens": max_tokens}
        stops = list(dict.fromkeys([*stop, *self.cfg.stop]))
        if stops:
            body["stop"] = stops[:4]  # OpenAI accepts at most four
        if self.cfg.mode == "chat":
            body["messages"] = [{"role": "user", "content": prompt}]
        else:
            body["prompt"] = prompt
        return body

    def complete(self, prompt: str, temperature: float = 0.0, seed: int = 0,
                 max_tokens: int = 128, stop: tuple[str, ...] = ()) -> str:
        """The model's continuation of `prompt` (from the cache when it was asked before)."""
        body = self._request(prompt, temperature, seed, max_tokens, tuple(stop))
        key = call_key(self.backend, self.cfg.model, {"mode": self.cfg.mode, **body})
        if self.cache is not None:
            cached = self.cache.get(key)
            if cached is not None:
                return cached
        reply = self._post(body)
        if self.cache is not None:
            self.cache.put(key, reply, self.backend, self.cfg.model)
        return reply

    def _post(self, body: dict) -> str:
        path = "/chat/completions" if self.cfg.mode == "chat" else "/completions"
        url = self.cfg.base_url.rstrip("/") + path
        reply = post_with_retries(self._client, url, body, self.cfg.max_retries,
                                  self.cfg.backoff_s, LMUnavailableError, url,
                                  "check the model name, mode and key", self._sent)
        choice = reply["choices"][0]
        text = choice["message"]["content"] if self.cfg.mode == "chat" else choice["text"]
        return text or ""

    def _sent(self) -> None:
        self.calls += 1

    def close(self) -> None:
        """Close the HTTP client."""
        self._client.close()
