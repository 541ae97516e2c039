"""Paper-scale presets at their real shapes, with random weights: size, memory, training step
and decoding speed on one accelerator (or on the CPU, for the default's LM).

The hub presets load their checkpoints by hub id; where the hub cannot be reached (the GPU
machine lent to this project has no internet) the same classes are built here from the
published configs, with random weights, through the project's own path:
`get_preset(name, overrides)` + `build_model` with `lm.pretrained=""`, `lm.hf_config=...`
and `mask_decoder.sam_pretrained=""`, `mask_decoder.sam_vision_config=...` (as the tiny
twins `llava-tiny` / `qwen2.5-vl-tiny` do), and `model.dtype=bf16`:

- `llava-1.5-13b`: LLaVA-1.5-13B (Vicuna-13B: hidden 5120, 40 layers, 40 heads, MLP 13824,
  32064 embedding rows; CLIP ViT-L/14-336 with feature layer -2; GELU MLP projector) + SAM
  ViT-H (hidden 1280, 32 layers, 16 heads, MLP 5120, windows of 14, global attention in
  layers 7/15/23/31, 1024 px) as the mask branch;
- `qwen2.5-vl-7b`: Qwen2.5-VL-7B (hidden 3584, 28 layers, 28 heads / 4 KV heads, MLP 18944,
  152064 rows, M-RoPE [16, 24, 24], θ 1e6; ViT of 32 blocks, 1280 wide, windows of 112,
  full attention in blocks 7/15/23/31) + SAM ViT-H;
- `gemma-270m` (the shipped default's LM): Gemma 3 270M (18 layers, hidden 640, 4 heads /
  1 KV head of 256, MLP 2048, sliding window 512 with every sixth layer global) at the
  41040 rows of the default's vocabulary cut (41033 kept tokens + 7 control tokens, as in
  `pixsearch/weights/gemma-270m/hub_configs.json`), with its DINOv2 tokens (frozen ONNX,
  outside the model; training reads them from the feature cache) replaced by random tokens
  of the same shape.

The shapes and the synthetic trajectories live in `paper_shapes.py` beside this file.
The tokenizer is the project's byte-level BPE trained on the synthetic text
(`model/tokenizer.py`), padded with unused tokens to the checkpoint's embedding rows, so that
the embedding and LM-head shapes (and the logits' cost) are the real ones; sequence lengths
follow this tokenizer, not the checkpoint's.

Per model: total and trainable parameters (per trainable group; "control_rows" makes the
whole embedding / LM-head matrices trainable parameters whose gradient is zero outside the
control tokens' rows), build time and accelerator memory after the build; then decoding
through the model's decoding interface (`PixSearchSession.open` / `extend`, what the engines
drive; no search engine, no retrieval): prefill of a prompt with its image (vision tower and
SAM's ViT included, preprocessing not) and greedy decoding of `--new-tokens` tokens with the
KV cache; then training steps as `train/trainer.py` makes them: trajectories (an image, a
question, a region search and a text search each followed by injected `<information>`
evidence, an answer) rendered by the model's renderer and padded by `model/batch.py`'s
`collate`, the trainer's groups and AdamW (`train/optim.py`), float32 master weights under
autocast to the model's dtype through `accelerate` (`train/precision.py`), the paper's loss
(`train/losses.py`), gradient clipping — the median of `--steps` steps after `--warmup`,
tokens per second (real tokens of the batch, as the trainer's log counts them) and the peak
accelerator memory (`torch.cuda.max_memory_allocated`). Batch collation (CPU preprocessing)
is timed apart. Each model runs in its own try/except; results are written after each model.

Output: `OUT/paper_scale_gpu.json` (every number, device, versions, command) and
`OUT/paper_scale_gpu.md` (the tables, also printed).

    # the GPU run (one H200, offline, transformers 5.17 installed: the project's 5.25 and
    # what it needs newer, as wheels in the git-ignored ./.whl, go first on PYTHONPATH):
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD/src
    PYTHONUNBUFFERED=1 timeout 420 python3 benchmarks/paper_scale_gpu.py --device cuda --out OUT
    # the same code path on tiny twins (llava-tiny, qwen2.5-vl-tiny, gemma-tiny), on a CPU:
    python benchmarks/paper_scale_gpu.py --tiny --device cpu --out /tmp/psg
    # the default's LM shape on this CPU (float32, as the default trains here), to compare:
    python benchmarks/paper_scale_gpu.py --device cpu --models gemma-270m --batch-sizes 4 \\
        --steps 2 --dtype fp32 --out /tmp/psg_gemma

Options: `--models a,b,c`, `--batch-sizes 1,8`, `--steps 3`, `--warmup 1`,
`--new-tokens 64` (with `--tiny` the defaults are 1,4 / 2 / 32), `--dtype bf16|fp16|fp32`,
`--threads N` (CPU).

Imports nothing that needs faiss, pycocotools, sentence-transformers or cairosvg (the GPU
machine has none of them): the step is `train/optim.py`'s `micro_step`, the trainer's own;
`train/trainer.py` and `train/data.py` are not imported (they reach pycocotools through
`pixsearch.masks`).
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import resource
import statistics
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from paper_shapes import BPE_VOCAB, SHAPES, corpus, image_inputs, make_batch, scene

from pixsearch.model.batch import Batch
from pixsearch.model.build import TOKEN_TABLES, build_model, set_trainable
from pixsearch.model.config import ModelConfig
from pixsearch.model.pixsearch_model import PixSearchModel
from pixsearch.model.presets import get_preset
from pixsearch.model.session import PixSearchSession
from pixsearch.model.tokenizer import train_tokenizer
from pixsearch.provenance import collect
from pixsearch.train.config import StageConfig, TrainConfig
from pixsearch.train.optim import adamw_groups, micro_step, stage_parameters
from pixsearch.train.precision import keep_master_weights, mixed_precision

GIB = 2**30
# ---- measurement helpers ------------------------------------------------------------------
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(device: torch.device, fn: Callable[[], Any]) -> tuple[float, Any]:
    sync(device)
    t0 = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - t0, out


def memory_gib(device: torch.device) -> float:
    """Accelerator memory allocated now; on the CPU the process's peak resident set."""
    if device.type == "cuda":
        return torch.cuda.memory_allocated(device) / GIB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def peak_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / GIB if device.type == "cuda" else None


def free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def error_text() -> str:
    return traceback.format_exc()[-3000:]


# ---- the model ----------------------------------------------------------------------------
def model_config(name: str, tiny: bool, dtype: str) -> tuple[ModelConfig, int]:
    """The preset's config at the checkpoint's shape (or its tiny twin), and embedding rows."""
    shape = SHAPES[name]
    if tiny:
        return get_preset(shape.tiny, {"dtype": dtype}), 0
    return get_preset(shape.preset, {**shape.overrides, "dtype": dtype}), shape.rows


def shaped_tokenizer(cfg: ModelConfig, rows: int) -> Any:
    """The project's BPE (control tokens included), padded with unused tokens to `rows`."""
    tok = train_tokenizer(corpus(), BPE_VOCAB if rows else cfg.lm.tokenizer_vocab,
                          TOKEN_TABLES[cfg.lm.backbone])
    if rows > len(tok):
        tok.add_tokens([f"<|unused_{i}|>" for i in range(rows - len(tok))], special_tokens=True)
    return tok


def build(cfg: ModelConfig, rows: int, device: torch.device) -> PixSearchModel:
    """`build_model` with every tensor made on `device` (a 13B float32 build on the CPU
    would take minutes; `build_model` casts to `cfg.dtype` after it)."""
    tok = shaped_tokenizer(cfg, rows)
    with torch.device(device):
        model = build_model(cfg, tokenizer=tok)
    return model.to(device)


def parameter_counts(model: PixSearchModel) -> dict[str, Any]:
    names = set_trainable(model, model.cfg.trainable)  # the state the build left
    params = dict(model.named_parameters())
    groups = {g: sum(params[n].numel() for n in ns) for g, ns in names.items()}
    return {"total_params": sum(p.numel() for p in model.parameters()),
            "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "trainable_by_group": groups,
            "embedding_rows": model.backbone.input_embeddings().weight.shape[0],
            "image_tokens": model.backbone.n_image_tokens}


# ---- decoding -----------------------------------------------------------------------------
@torch.no_grad()
def decode_bench(model: PixSearchModel, device: torch.device, new_tokens: int,
                 repeats: int = 3) -> dict[str, Any]:
    """Prefill (image encoders + LM) and greedy decoding through the session's KV cache."""
    model.eval()
    rng = np.random.default_rng(1)
    image, _ = scene(rng)
    prompt = model.renderer.prompt("What is the capital of the country of the flag on the left?")
    feats = image_inputs(model, image)

    def open_session() -> tuple[PixSearchSession, torch.Tensor]:
        return PixSearchSession.open(model, prompt, image, features=feats)

    session, logits = open_session()  # warm-up: kernels, allocator
    for _ in range(4):
        logits = session.extend([int(logits.argmax())])
    prefill = []
    for _ in range(repeats):
        dt, (session, logits) = timed(device, open_session)
        prefill.append(dt)

    def greedy() -> None:
        nonlocal logits
        for _ in range(new_tokens):
            logits = session.extend([int(logits.argmax())])

    dt, _ = timed(device, greedy)
    return {"prompt_tokens": len(prompt.input_ids), "prefill_s": statistics.median(prefill),
            "prefill_all_s": prefill, "new_tokens": new_tokens,
            "decode_ms_per_token": 1000 * dt / new_tokens, "decode_tokens_per_s": new_tokens / dt}


# ---- training -----------------------------------------------------------------------------
def train_step(acc: Any, wrapped: Any, opt: torch.optim.Optimizer,
               groups: list[list[torch.nn.Parameter]], batch: Batch, tc: TrainConfig
               ) -> dict[str, float]:
    """One optimiser step as the trainer makes it (one micro-batch, no teacher)."""
    total, parts = micro_step(acc, wrapped, opt, groups, batch, tc)
    return {"total": float(total.detach()), **parts}


def train_one_size(acc: Any, wrapped: Any, opt: torch.optim.Optimizer, groups: list,
                   model: PixSearchModel, size: int, args: argparse.Namespace,
                   device: torch.device) -> dict[str, Any]:
    tc = TrainConfig()
    t0 = time.perf_counter()
    batch = make_batch(model, size, seed=size)
    row: dict[str, Any] = {"batch_size": size, "collate_s": time.perf_counter() - t0,
                           "seq_len": int(batch.input_ids.shape[1]),
                           "tokens": int(batch.attention_mask.sum())}
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times, losses = [], []
    for i in range(args.warmup + args.steps):
        dt, parts = timed(device, lambda: train_step(acc, wrapped, opt, groups, batch, tc))
        losses.append(parts["total"])
        if i >= args.warmup:
            times.append(dt)
    step = statistics.median(times)
    row.update(step_s=step, step_all_s=times, tokens_per_s=row["tokens"] / step,
               samples_per_s=size / step, peak_gib=peak_gib(device), losses=losses,
               loss_parts=parts)
    return row


def train_bench(acc: Any, model: PixSearchModel, args: argparse.Namespace,
                device: torch.device) -> list[dict[str, Any]]:
    """Training steps at each batch size; a batch size that fails ends the larger ones."""
    tc, stage = TrainConfig(), StageConfig(name="bench")
    model.train()
    groups = stage_parameters(model, stage)
    params = [p for g in groups for p in g]
    keep_master_weights(params)  # float32 whatever the model's dtype
    opt = torch.optim.AdamW(adamw_groups(params), lr=stage.lr, betas=tuple(tc.betas),
                            weight_decay=tc.weight_decay)
    wrapped, opt = acc.prepare(model, opt)
    rows = []
    for size in args.batch_sizes:
        try:
            rows.append(train_one_size(acc, wrapped, opt, groups, model, size, args, device))
        except Exception:  # an OOM at B=8 must not lose B=1
            rows.append({"batch_size": size, "error": error_text()})
            opt.zero_grad(set_to_none=True)
            free(device)
            break
        finally:
            last = rows[-1]
            print(json.dumps({**last, "error": last["error"].strip().splitlines()[-1]}
                             if "error" in last else last), flush=True)
    acc.free_memory()
    del wrapped, opt
    return rows


def run_model(name: str, acc: Any, args: argparse.Namespace, device: torch.device
              ) -> dict[str, Any]:
    cfg, rows = model_config(name, args.tiny, args.dtype)
    res: dict[str, Any] = {"preset": cfg.name, "dtype": cfg.dtype, "lm": cfg.lm.hf_config,
                           "sam_vision_config": cfg.mask_decoder.sam_vision_config}
    free(device)
    base = memory_gib(device)
    dt, model = timed(device, lambda: build(cfg, rows, device))
    res.update(build_s=dt, memory_after_build_gib=memory_gib(device) - base
               if device.type == "cuda" else memory_gib(device),
               attn_implementation=getattr(model.backbone.model.config, "_attn_implementation",
                                           None),
               **parameter_counts(model))
    print(json.dumps({k: res[k] for k in ("preset", "build_s", "total_params",
                                          "trainable_params", "memory_after_build_gib")}),
          flush=True)
    try:
        res["decode"] = decode_bench(model, device, args.new_tokens)
        print(json.dumps(res["decode"]), flush=True)
    except Exception:
        res["decode"] = {"error": error_text()}
    free(device)
    try:
        res["train"] = train_bench(acc, model, args, device)
    except Exception:
        res["train"] = [{"batch_size": 0, "error": error_text()}]
    del model
    return res


# ---- report -------------------------------------------------------------------------------
def _fmt(x: Any, spec: str = ".3g") -> str:
    return "—" if x is None else format(x, spec)


def _count(n: int) -> str:
    return f"{n / 1e9:.2f} B" if n >= 1e9 else f"{n / 1e6:.1f} M" if n >= 1e5 else f"{n:,}"


def markdown(report: dict[str, Any]) -> str:
    prov = report["provenance"]
    lines = [f"# Paper-scale presets, random weights — {report['device']}", "",
             f"torch {prov['packages'].get('torch')}, transformers "
             f"{prov['packages'].get('transformers')}, dtype {report['dtype']}; "
             f"`{' '.join(prov['command'])}`", "",
             "| model | params | trainable (of which embedding matrices) | build s | "
             "memory after build GiB (CPU: peak RSS) | prompt tokens | prefill s | decode tok/s |",
             "|---|---|---|---|---|---|---|---|"]
    for name, r in report["models"].items():
        if "total_params" not in r:
            lines.append(f"| {name} | error | | | | | | |")
            continue
        d = r.get("decode", {})
        rows = r["trainable_by_group"].get("control_rows", 0)
        lines.append(f"| {r['preset']} | {_count(r['total_params'])} | "
                     f"{_count(r['trainable_params'])} ({_count(rows)}) | "
                     f"{r['build_s']:.1f} | {_fmt(r['memory_after_build_gib'], '.2f')} | "
                     f"{d.get('prompt_tokens', '—')} | {_fmt(d.get('prefill_s'))} | "
                     f"{_fmt(d.get('decode_tokens_per_s'), '.1f')} |")
    lines += ["", "| model | B | seq len | tokens | step s (median) | tokens/s | samples/s | "
              "peak GiB | loss |", "|---|---|---|---|---|---|---|---|---|"]
    for name, r in report["models"].items():
        label = r.get("preset", name)
        for t in r.get("train", []):
            if "error" in t:
                lines.append(f"| {label} | {t['batch_size']} | error | | | | | | |")
                continue
            lines.append(f"| {label} | {t['batch_size']} | {t['seq_len']} | {t['tokens']} | "
                         f"{t['step_s']:.3f} | {t['tokens_per_s']:.0f} | "
                         f"{t['samples_per_s']:.2f} | {_fmt(t['peak_gib'], '.1f')} | "
                         f"{t['losses'][-1]:.3f} |")
    models = {r.get("preset", n): r for n, r in report["models"].items()}
    errors = [(n, r["error"]) for n, r in models.items() if "error" in r]
    errors += [(f"{n} decode", r["decode"]["error"]) for n, r in models.items()
               if "error" in r.get("decode", {})]
    errors += [(f"{n} train B={t['batch_size']}", t["error"]) for n, r in models.items()
               for t in r.get("train", []) if "error" in t]
    for where, text in errors:
        lines += ["", f"**{where}**: `{text.strip().splitlines()[-1]}`"]
    return "\n".join(lines) + "\n"


def write(report: dict[str, Any], out: Path) -> str:
    out.mkdir(parents=True, exist_ok=True)
    (out / "paper_scale_gpu.json").write_text(json.dumps(report, indent=1, default=str))
    md = markdown(report)
    (out / "paper_scale_gpu.md").write_text(md)
    return md


def environment(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """The device and settings of this run, and its provenance (versions, machine, command)."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    total = (torch.cuda.get_device_properties(device).total_memory / GIB
             if device.type == "cuda" else None)
    return {"device": f"{device.type}: {name or platform.machine()}", "device_memory_gib": total,
            "cuda": torch.version.cuda, "dtype": args.dtype, "tiny": args.tiny,
            "provenance": collect("benchmark"), "models": {}}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda", help="cuda | cuda:N | cpu")
    p.add_argument("--models", default=",".join(SHAPES),
                   help=f"comma-separated, of {list(SHAPES)}")
    p.add_argument("--tiny", action="store_true",
                   help="build each model's tiny random twin (a CPU check of this script)")
    p.add_argument("--batch-sizes", default=None, help="default 1,8 (--tiny: 1,4)")
    p.add_argument("--steps", type=int, default=None,
                   help="timed training steps per batch size (default 3; --tiny: 2)")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps before them")
    p.add_argument("--new-tokens", type=int, default=None, help="default 64 (--tiny: 32)")
    p.add_argument("--dtype", default="bf16", choices=["bf16", "fp16", "fp32"])
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    p.add_argument("--out", default="runs/paper_scale_gpu")
    args = p.parse_args(argv)
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = sorted(set(args.models) - set(SHAPES))
    if unknown:
        p.error(f"unknown model(s) {unknown}; known: {list(SHAPES)}")
    sizes = args.batch_sizes or ("1,4" if args.tiny else "1,8")
    args.batch_sizes = sorted(int(b) for b in sizes.split(","))
    args.steps = args.steps or (2 if args.tiny else 3)
    args.new_tokens = args.new_tokens or (32 if args.tiny else 64)
    return args


def main(argv: list[str] | None = None) -> None:
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda":
        device = torch.device("cuda", device.index or 0)
        torch.cuda.set_device(device)  # where `Accelerator` places the model
    bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    acc = Accelerator(mixed_precision=mixed_precision("auto", args.dtype, bf16),
                      cpu=device.type == "cpu")
    set_seed(0)
    report = environment(args, device)
    report["mixed_precision"] = acc.mixed_precision
    out = Path(args.out)
    for name in args.models:
        t0 = time.perf_counter()
        try:
            report["models"][name] = run_model(name, acc, args, device)
        except Exception:
            report["models"][name] = {"error": error_text()}
        report["models"][name]["wall_s"] = time.perf_counter() - t0
        acc.free_memory()
        free(device)
        write(report, out)
    print(write(report, out), flush=True)


if __name__ == "__main__":
    main()
