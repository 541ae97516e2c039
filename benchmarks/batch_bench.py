"""Continuous batching vs one answer at a time, in process and in one run: answers/s and p50/p95
latency at 1, 4, 8, 16 and 32 concurrent requests.

Both engines share one loaded model and index. A level of N runs N closed-loop clients: each
asks about the next record of the world's test split (records in order, the same records for
both engines), waits for the answer, and asks again, until the level has answered
max(--min-answers, N × --rounds) questions. "one at a time" is the single-answer `Engine` behind
a FIFO queue served by one thread (`pixsearch serve --batch 1`); "batched" is `BatchedEngine`
with --max-batch slots. Latency is request → answer, queue wait included. Levels alternate
between the engines so that a change of machine load hits both. Images are decoded before
the clock starts; their encoding (DINOv2 for `mini`) is part of every answer: there is no
feature cache, so a picture that several records ask about is encoded for each of them (the
batched engine encodes the images of requests that wait together in one call,
`decode/image_batcher.py`; the mean images per call is in each row).

Printed: one JSON row per (level, engine), with the process's CPU seconds per answer and the
share of the cores it kept busy, the table, the image encoder's cost per image alone
and in a group of 4 (the part of an answer that batching shares least, which bounds the
batched answers/s on a CPU), how many batched answers equal the one-at-a-time answers of the
same records, the share of an answer's time at 1 client spent outside decoding (prompt and evidence
prefill, masks, retrieval: what each answer pays itself, batched or not), the ratio's bound at
the CPU an answer costs batched at 16 (cores ÷ CPU seconds per answer ÷ answers/s at 1 client:
with the cores full, only a cheaper answer goes faster), and the goal check.
Last line:
`throughput_ratio_16=<answers/s batched at 16 ÷ answers/s one at a time at 1>`.
`--no-images` asks the same questions without their pictures: no frozen encoder runs, which
shows what batching does to the part of an answer it can share (the LM's decoding).

    python benchmarks/batch_bench.py [--model mini] [--world DIR] [--clients 1 4 8 16 32]
        [--rounds 2] [--min-answers 8] [--max-batch 32] [--threads 2] [--no-images]
        [decode key=value …]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from pixsearch import paths
from pixsearch.config import apply_overrides, from_dict
from pixsearch.decode.batched import BatchedEngine
from pixsearch.decode.batched_request import BatchConfig
from pixsearch.decode.config import DecodeConfig
from pixsearch.decode.engine import Engine
from pixsearch.images import load_image
from pixsearch.predictor import Predictor

CLI = "import sys; from pixsearch.cli import main; sys.exit(main(sys.argv[1:]))"


def percentile(ordered: list[float], q: float) -> float:
    """The q-quantile of sorted values (nearest rank; NaN when there are none)."""
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def world_dir(arg: str | None, tmp: Path) -> Path:
    """--world, else the built world, else a `small` world built into `tmp`."""
    if arg:
        return Path(arg).expanduser()
    if (paths.world_dir() / "test.jsonl").is_file():
        return paths.world_dir()
    world = tmp / "world"
    print(f"[batch_bench] building a small world in {world} (about a minute)", flush=True)
    subprocess.run([sys.executable, "-c", CLI, "world", "build", "--scale", "small", "--out",
                    str(world), "--no-progress"], check=True)
    return world


def load_questions(world: Path, n: int, images: bool = True) -> list[tuple[str, object]]:
    """(question, image or None) of the first `n` test records (cycled if the split is
    smaller)."""
    lines = [json.loads(x) for x in (world / "test.jsonl").read_text().splitlines() if x]
    records = [lines[i % len(lines)] for i in range(n)]
    cache: dict[str, object] = {}
    out = []
    for r in records:
        path = str(world / r["image"])
        if images and path not in cache:
            cache[path] = load_image(Path(path))
        out.append((r["question"], cache.get(path)))
    return out


def run_level(ask, questions: list, clients: int, total: int) -> dict:
    """`clients` closed-loop clients answer questions[0:total]; latencies and answers."""
    lock, nxt = threading.Lock(), [0]
    latencies: list[float] = []
    unshared: list[float] = []
    answers: dict[int, str] = {}

    def client() -> None:
        while True:
            with lock:
                i = nxt[0]
                nxt[0] += 1
            if i >= total:
                return
            q, image = questions[i]
            t0 = time.perf_counter()
            ans = ask(q, image)
            dt = time.perf_counter() - t0
            with lock:
                latencies.append(dt)
                unshared.append(unshared_seconds(ans.trace))
                answers[i] = ans.text + "\x00" + ans.trace.display

    t0, cpu0 = time.perf_counter(), time.process_time()
    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    lat = sorted(latencies)
    return {"clients": clients, "answers": len(lat), "seconds": round(wall, 2),
            "answers_per_s": len(lat) / wall, "p50_s": percentile(lat, 0.5),
            "p95_s": percentile(lat, 0.95),
            # the process's CPU seconds (all threads) per answer, and the share of the
            # machine's cores it kept busy: a level whose cores are full is compute-bound
            "cpu_s_per_answer": round(cpu / max(1, len(lat)), 3),
            "cores_busy": round(cpu / wall / (os.cpu_count() or 1), 2),
            "unshared_s": round(sum(unshared) / max(1, len(unshared)), 3), "_answers": answers}


def unshared_seconds(trace) -> float:
    """Seconds of an answer spent outside token-by-token decoding: the prompt's prefill (image
    encoding included), and per search the mask, the retrieval and the evidence prefill. Each
    answer pays these itself, batched or not (compute-bound on a CPU)."""
    steps = sum(sum(s.timings.get(k, 0.0) for k in ("mask", "retrieve", "prefill"))
                for s in trace.steps)
    return trace.timings.get("prompt_prefill", 0.0) + steps


def encoder_cost(predictor: Predictor, questions: list, n: int = 4) -> tuple[float, float]:
    """Seconds per image of `model.preprocess` (the frozen image encoder) one image at a time,
    and of `model.preprocess_many` over `n` images at once (what the batched engine's
    `ImageBatcher` runs for images that wait together)."""
    model = predictor.model
    images = [im for _, im in questions[:n]]
    t0 = time.perf_counter()
    for im in images:
        model.preprocess(im)
    alone = (time.perf_counter() - t0) / len(images)
    t0 = time.perf_counter()
    model.preprocess_many(images)
    return alone, (time.perf_counter() - t0) / len(images)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="mini")
    ap.add_argument("--world", default=None, help="world folder (test.jsonl + images + index)")
    ap.add_argument("--index", default=None, help="default: <world>/index")
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 4, 8, 16, 32])
    ap.add_argument("--rounds", type=int, default=2, help="questions per client per level")
    ap.add_argument("--min-answers", type=int, default=8, help="questions per level at least")
    ap.add_argument("--max-batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2, help="torch threads")
    ap.add_argument("--no-images", action="store_true",
                    help="ask without the pictures (no image encoder; see the module doc)")
    ap.add_argument("overrides", nargs="*", help="DecodeConfig key=value")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = from_dict(DecodeConfig, apply_overrides(DecodeConfig, {}, args.overrides), "decode")

    with tempfile.TemporaryDirectory() as tmp:
        world = world_dir(args.world, Path(tmp))
        index = args.index or str(world / "index")
        predictor = Predictor.load(args.model, index, cfg)
        model, api = predictor.model, predictor.search_api
        need = max(max(args.min_answers, n * args.rounds) for n in args.clients)
        questions = load_questions(world, need, images=not args.no_images)
        single = Engine(model, api, cfg)
        queue = ThreadPoolExecutor(1, thread_name_prefix="one-at-a-time")
        batched = BatchedEngine(model, api, cfg, BatchConfig(max_batch=args.max_batch))
        engines = {
            "one_at_a_time": lambda q, im: queue.submit(single.answer, q, im).result(),
            "batched": batched.answer,
        }
        for ask in engines.values():  # warm-up: encoder sessions, allocator, caches
            ask(*questions[0])
        print(f"[batch_bench] {args.model} over {index}: {len(questions)} questions; "
              f"{os.cpu_count()} CPUs, {args.threads} torch threads, load average "
              f"{os.getloadavg()[0]:.2f}", flush=True)
        rows, same, compared = [], 0, 0
        for n in args.clients:
            total = max(args.min_answers, n * args.rounds)
            level = {}
            for name, ask in engines.items():
                steps0, rows0 = batched.stats["steps"], batched.stats["rows"]
                groups0, images0 = batched.images.stats["groups"], batched.images.stats["images"]
                res = run_level(ask, questions, n, total)
                level[name] = res.pop("_answers")
                res["engine"] = name
                steps = batched.stats["steps"] - steps0
                groups = batched.images.stats["groups"] - groups0
                batch_run = name == "batched"
                res["mean_batch_rows"] = round((batched.stats["rows"] - rows0) / steps, 2) \
                    if batch_run and steps else 1.0
                res["mean_encode_group"] = round(
                    (batched.images.stats["images"] - images0) / groups, 2) \
                    if batch_run and groups else (1.0 if questions[0][1] is not None else 0.0)
                rows.append(res)
                print(json.dumps(res), flush=True)
            compared += len(level["batched"])
            same += sum(level["batched"][i] == level["one_at_a_time"].get(i)
                        for i in level["batched"])
        enc, enc_group = (encoder_cost(predictor, questions) if questions[0][1] is not None
                          else (0.0, 0.0))
        batched.close()
        queue.shutdown()

    print("\n| clients | engine | answers | answers/s | p50 s | p95 s | mean rows/step | "
          "mean images/encoder call | CPU s/answer | cores busy |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['clients']} | {r['engine']} | {r['answers']} | {r['answers_per_s']:.2f} | "
              f"{r['p50_s']:.2f} | {r['p95_s']:.2f} | {r['mean_batch_rows']} | "
              f"{r['mean_encode_group']} | {r['cpu_s_per_answer']} | {r['cores_busy']} |")
    by = {(r["clients"], r["engine"]): r for r in rows}
    if enc:
        print(f"\nimage encoder: {enc:.3f} s per image alone, {enc_group:.3f} s per image in a "
              f"group of 4 (answers/s ≤ {1 / enc_group:.2f} from the encoder alone on this "
              "machine). No feature cache: every answer encodes its image, "
              f"{len({id(im) for _, im in questions})} distinct images over "
              f"{len(questions)} questions")
    print(f"batched answers equal to one-at-a-time answers (text and display): "
          f"{same}/{compared}; load average now {os.getloadavg()[0]:.2f}")
    result = {"rows": rows, "equal": same, "compared": compared, "encoder_s": enc,
              "encoder_group_s": enc_group}
    if (1, "one_at_a_time") in by and (16, "batched") in by:
        base, b16 = by[(1, "one_at_a_time")], by[(16, "batched")]
        ratio = b16["answers_per_s"] / base["answers_per_s"]
        print(f"goal: ratio {ratio:.2f} (≥ 4), p95 at 16 {b16['p95_s']:.2f} s vs 4 × p95 at 1 "
              f"= {4 * base['p95_s']:.2f} s")
        per_answer = base["seconds"] / base["answers"]  # one client: answers in sequence
        share = base["unshared_s"] / per_answer
        # where an answer's time goes: these seconds batching does not share (they can only
        # overlap across requests where one request leaves a core idle)
        print(f"outside decoding at 1 client: {share:.2f} of an answer "
              f"({base['unshared_s']:.2f} s of {per_answer:.2f} s)")
        result["unshared_share"] = share
        # with every core busy, answers/s = cores ÷ CPU seconds per answer: the ratio can
        # only grow as far as batching cuts the CPU an answer costs
        cores = os.cpu_count() or 1
        bound = cores / b16["cpu_s_per_answer"] / base["answers_per_s"]
        print(f"CPU per answer: {base['cpu_s_per_answer']:.3f} s at 1 client, "
              f"{b16['cpu_s_per_answer']:.3f} s batched at 16 (cores {b16['cores_busy']:.0%} "
              f"busy): ratio ≤ {bound:.2f} at that CPU cost per answer")
        result["ratio_bound_at_cpu"] = bound
        print(f"throughput_ratio_16={ratio:.2f}")
        result["throughput_ratio_16"] = ratio
    return result


if __name__ == "__main__":
    main()
