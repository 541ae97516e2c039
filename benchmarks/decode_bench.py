"""Continue-from-KV-cache vs re-encode-after-each-search, measured in one run.

After every search PixSearch prefills only the evidence tokens into the KV cache it already
has. The baseline (what Search-R1's inference does) re-encodes the whole sequence — image
tokens, prompt, everything generated, all evidence so far — with a fresh cache after each
search, then decodes on. Shapes follow the issue: 576 image tokens (LLaVA-1.5), 128 evidence
tokens per search, 32 generated tokens between searches, greedy decoding on a model at least
the size of the CPU default (`mini`), so compute rather than Python overhead dominates.

Prints, for 1, 2 and 3 searches, baseline / continuation time, and how close continuation
comes to its floor (pure decoding of the same tokens + prefilling only the evidence tokens);
then the cost model (per-token prefill and decode cost, and the speed-up they allow) and the
decode cost per token through `transformers`' `DynamicCache` vs the sessions' `GrowingCache`.
Last line: `kv_speedup_at_3_searches=<ratio>`.

    python benchmarks/decode_bench.py [--preset mini] [--repeats 2] [--threads 2]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import torch
from PIL import Image
from transformers import DynamicCache

from pixsearch.model.build import build_model
from pixsearch.model.kv_cache import GrowingCache
from pixsearch.model.presets import get_preset
from pixsearch.render import Rendered

IMAGE_TOKENS, EVIDENCE_TOKENS, GEN_BETWEEN = 576, 128, 32


def make_model(preset: str, width: int | None, layers: int | None):
    """The preset's LM with a 24×24 patch grid (576 patch tokens + 1 CLS) in place of DINOv2,
    so image encoding (identical in both modes) stays negligible and the comparison is about
    the token sequence."""
    lm = {k: v for k, v in (("hidden_size", width), ("num_hidden_layers", layers)) if v}
    if width:
        lm["intermediate_size"] = 3 * width
    vision = dict(kind="patch", image_size=384, patch_size=16, dim=384, lm_grid=24)
    model = build_model(get_preset(preset, {"vision": vision, "lm": {"hf_config": lm}}))
    model.eval()
    return model


def prompt_for(model) -> Rendered:
    r = model.renderer.prompt("What is the capital of the country whose flag is on the left?")
    n = (r.image_slice[1] - r.image_slice[0]) if r.image_slice else 0
    assert n >= IMAGE_TOKENS, f"preset gives {n} image tokens, benchmark wants {IMAGE_TOKENS}"
    return r


def evidence_ids(model, i: int) -> list[int]:
    words = " ".join(f"fact{i}_{j}" for j in range(400))
    body = model.renderer.text_ids(words)
    ids = model.renderer.information("")
    return ids[:1] + body[: EVIDENCE_TOKENS - 2] + ids[-1:]


def banned_ids(model) -> list[int]:
    """Control tokens and EOS: greedy decoding here never searches or stops early."""
    return sorted(model.tokens.control_ids() | {model.renderer.tokenizer.eos_token_id})


def greedy(session, logits, n: int, banned: list[int]) -> torch.Tensor:
    for _ in range(n):
        logits = logits.clone()
        logits[banned] = float("-inf")
        logits = session.extend([int(torch.argmax(logits))])
    return logits


def run_once(model, image, n_searches: int, mode: str) -> dict[str, float]:
    """Generate 32 tokens, search (inject 128 evidence tokens), … n times, then 32 more."""
    banned = banned_ids(model)
    prompt = prompt_for(model)
    t0 = time.perf_counter()
    session, logits = model.start(prompt, image)
    prefill_ev = 0.0
    for s in range(n_searches):
        logits = greedy(session, logits, GEN_BETWEEN, banned)
        ev = evidence_ids(model, s)
        t1 = time.perf_counter()
        if mode == "cache":
            logits = session.extend(ev)
            prefill_ev += time.perf_counter() - t1
        else:  # re-encode everything with a fresh cache
            full = replace(prompt, input_ids=list(session.ids) + ev,
                           loss_mask=[0] * (len(session.ids) + len(ev)))
            session, logits = model.start(full, image)
    logits = greedy(session, logits, GEN_BETWEEN, banned)
    return {"total": time.perf_counter() - t0, "evidence_prefill": prefill_ev}


def floor_time(model, image, n_searches: int) -> float:
    """Pure decoding of the same number of tokens (no searches) + evidence-only prefill."""
    banned = banned_ids(model)
    t0 = time.perf_counter()
    session, logits = model.start(prompt_for(model), image)
    greedy(session, logits, GEN_BETWEEN * (n_searches + 1), banned)
    decode_only = time.perf_counter() - t0
    return decode_only


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="mini")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--width", type=int, default=None, help="override the LM hidden size")
    ap.add_argument("--layers", type=int, default=None, help="override the LM depth")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = make_model(args.preset, args.width, args.layers)
    image = Image.new("RGB", (640, 480), (90, 120, 160))
    n_params = sum(p.numel() for p in model.parameters())
    sl = prompt_for(model).image_slice
    print(f"preset={args.preset} params={n_params / 1e6:.1f}M image_tokens={sl[1] - sl[0]} "
          f"evidence_tokens={EVIDENCE_TOKENS} generated_between={GEN_BETWEEN} "
          f"threads={args.threads} repeats={args.repeats}")
    with torch.inference_mode():
        run_once(model, image, 1, "cache")  # warm-up
        speedup = 0.0
        for n in (1, 2, 3):
            cache, base, floors = [], [], []
            for _ in range(args.repeats):  # interleaved, so load changes hit every mode alike
                cache.append(run_once(model, image, n, "cache"))
                base.append(run_once(model, image, n, "reencode")["total"])
                floors.append(floor_time(model, image, n))
            # the minimum over repeats: on a shared machine noise only ever adds time
            best = min(cache, key=lambda r: r["total"])
            c, ev = best["total"], best["evidence_prefill"]
            b, fl = min(base), min(floors) + ev
            speedup = b / c
            print(f"searches={n} reencode={b:.3f}s continue={c:.3f}s speedup={speedup:.2f}x "
                  f"evidence_prefill={ev:.3f}s floor={fl:.3f}s continue/floor={c / fl:.2f}")
        cost_model(model, image, args.repeats)
        cache_compare(model, args.repeats)
    print(f"kv_speedup_at_3_searches={speedup:.2f}")


def cost_model(model, image, repeats: int, n: int = 3) -> None:
    """Per-token prefill cost P and decode cost D measured here, and what they allow.

    Baseline ≈ P·ΣL_i + G·D (every re-encode prefills the whole sequence so far), continuation
    ≈ P·(L_0 + n·E) + G·D (G generated tokens in both). The speed-up is therefore capped by the
    hardware's D/P: decoding one token reads every weight for one row of work (memory-bound),
    prefill amortises that read over many rows (compute-bound).
    """
    prompt = prompt_for(model)
    L0, G, E = len(prompt), GEN_BETWEEN * (n + 1), EVIDENCE_TOKENS
    pre, dec, banned = [], [], banned_ids(model)
    for _ in range(repeats):
        t0 = time.perf_counter()
        session, logits = model.start(prompt, image)
        pre.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        greedy(session, logits, G, banned)
        dec.append(time.perf_counter() - t0)
    P, D = min(pre) / L0, min(dec) / G
    reencoded = sum(L0 + i * (GEN_BETWEEN + E) for i in range(n + 1))
    predicted = (P * reencoded + G * D) / (P * (L0 + n * E) + G * D)
    needed = (reencoded - 2 * (L0 + n * E)) / G  # D/P at which the prediction reaches 2×
    print(f"cost_model prefill={P * 1e3:.3f}ms/token decode={D * 1e3:.2f}ms/token "
          f"decode/prefill={D / P:.1f} predicted_speedup_at_{n}={predicted:.2f}x "
          f"(2x needs decode/prefill <= {needed:.1f})")


def cache_compare(model, repeats: int, n: int = 3) -> None:
    """Decode cost per token with the context of the last segment at `n` searches, through
    `transformers`' `DynamicCache` (grows by `torch.cat`: every token copies every layer's
    cache) and through the sessions' `GrowingCache` (amortised in-place appends)."""
    lm = model.backbone.model
    context = len(prompt_for(model)) + n * (GEN_BETWEEN + EVIDENCE_TOKENS)
    x = torch.randn(1, context, lm.config.hidden_size)
    step = torch.tensor([[5]])
    times: dict[str, list[float]] = {"dynamic": [], "growing": []}
    for _ in range(max(repeats, 5)):  # interleaved, as above
        for name, make in (("dynamic", DynamicCache), ("growing", GrowingCache)):
            cache = make()
            lm(inputs_embeds=x, cache=cache, use_cache=True, logits_to_keep=1)
            t0 = time.perf_counter()
            for _ in range(GEN_BETWEEN):
                lm(input_ids=step, cache=cache, use_cache=True, logits_to_keep=1)
            times[name].append((time.perf_counter() - t0) / GEN_BETWEEN)
    cost = {name: min(t) for name, t in times.items()}
    print(f"cache context={context} dynamic_cache={cost['dynamic'] * 1e3:.2f}ms/token "
          f"growing_cache={cost['growing'] * 1e3:.2f}ms/token "
          f"dynamic/growing={cost['dynamic'] / cost['growing']:.2f}")


if __name__ == "__main__":
    main()
