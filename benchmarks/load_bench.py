"""Load on the real server: N concurrent clients for T seconds, some dropping their stream.

Starts `pixsearch serve` as its own process on 127.0.0.1 (the `mini` model and the world's
index by default: `$PIXSEARCH_HOME/world/index` if built, else a `small` world built into a
temporary folder), waits until the model is loaded, answers one warm-up question, then for
each client count runs N threads for T seconds. Each client asks the world's sample scenes
in turn over `/api/ask/stream` and reads the stream to its DoneEvent; a fraction of requests
(`--drop`) disconnect after their first token instead. A 429 is counted and retried after
min(Retry-After, 2 s). Meanwhile /api/health is polled once a second (its latency) and the
server's RSS is sampled.

Counted per run: answers (DoneEvent), answers/s, p50/p95 latency of answers (request sent →
DoneEvent, queue wait included), status codes, drops, `non_429_errors` (any status but 200 and
429, an error event, a stream that ended early, a transport error) and `hung` (no byte for
`--hang` seconds, or still running `--hang` seconds after the run ended). Last line:
`non_429_errors=<n> hung=<n>` of the largest client count (32 by default). Loopback only;
bounded by --seconds per run.

    python benchmarks/load_bench.py [--clients 1 8 16 32] [--seconds 45] [--model mini]
        [--index DIR] [--world DIR] [--drop 0.2] [--max-queue 16] [serve overrides …]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

SERVE = "import sys; from pixsearch.cli import main; sys.exit(main(sys.argv[1:]))"


def percentile(ordered: list[float], q: float) -> float:
    """The q-quantile of sorted values (nearest rank; NaN when there are none)."""
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


@dataclass
class RunResult:
    clients: int
    seconds: float
    latencies: list[float] = field(default_factory=list)
    codes: Counter = field(default_factory=Counter)
    dropped: int = 0
    non_429_errors: int = 0
    hung: int = 0
    errors: Counter = field(default_factory=Counter)  # kind of error -> count
    rss_mb: list[float] = field(default_factory=list)
    health_s: list[float] = field(default_factory=list)

    def summary(self) -> dict:
        lat = sorted(self.latencies)
        return {"clients": self.clients, "answers": len(lat),
                "answers_per_s": len(lat) / self.seconds, "p50_s": percentile(lat, 0.5),
                "p95_s": percentile(lat, 0.95),
                "codes": dict(sorted(self.codes.items())), "dropped": self.dropped,
                "non_429_errors": self.non_429_errors, "hung": self.hung,
                "errors": dict(self.errors),
                "rss_mb_start": self.rss_mb[0] if self.rss_mb else None,
                "rss_mb_max": max(self.rss_mb) if self.rss_mb else None,
                "rss_mb_end": self.rss_mb[-1] if self.rss_mb else None,
                "health_max_s": max(self.health_s) if self.health_s else None}


class Server:
    """`pixsearch serve` in a child process on a free loopback port."""

    def __init__(self, args: list[str], log: Path) -> None:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        sock.close()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SERVE, "serve", "--host", "127.0.0.1", "--port",
             str(self.port), *args], stdout=log.open("w"), stderr=subprocess.STDOUT, env=env)
        self.ps = psutil.Process(self.proc.pid)

    def wait_loaded(self, timeout: float = 300.0) -> dict:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited ({self.proc.returncode}):\n{self.tail()}")
            try:
                h = httpx.get(f"{self.url}/api/health", timeout=2).json()
                if h.get("model_error"):
                    raise RuntimeError(f"the model failed to load: {h['model_error']}")
                if h.get("model_loaded"):
                    return h
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"the server was not ready within {timeout:.0f} s:\n{self.tail()}")

    def rss_mb(self) -> float:
        return self.ps.memory_info().rss / 2**20

    def tail(self, n: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def ask_once(client: httpx.Client, url: str, body: dict, drop: bool, res: RunResult,
             lock: threading.Lock) -> float:
    """One streamed question; returns seconds to wait before the next (429 back-off)."""
    t0 = time.perf_counter()
    outcome, code, retry = None, None, 0.0
    try:
        with client.stream("POST", f"{url}/api/ask/stream", json=body) as r:
            code = r.status_code
            if code != 200:
                r.read()
                retry = float(r.headers.get("Retry-After", 1)) if code == 429 else 0.0
                outcome = "429" if code == 429 else f"http {code}"
            else:
                outcome = "incomplete"
                for line in r.iter_lines():
                    if not line.startswith("data: "):
                        continue
                    event = json.loads(line[6:])
                    if drop and event["type"] == "TokenEvent":
                        outcome = "dropped"
                        break  # leaving the block closes the connection mid-answer
                    if event["type"] == "DoneEvent":
                        outcome = "done"
                    elif event["type"] == "ErrorEvent":
                        outcome = f"error event {event.get('error')}"
    except httpx.ReadTimeout:
        outcome = "hung"
    except httpx.HTTPError as e:
        outcome = f"transport {type(e).__name__}"
    elapsed = time.perf_counter() - t0
    with lock:
        if code is not None:
            res.codes[code] += 1
        if outcome == "done":
            res.latencies.append(elapsed)
        elif outcome == "dropped":
            res.dropped += 1
        elif outcome == "hung":
            res.hung += 1
        elif outcome != "429":
            res.non_429_errors += 1
            res.errors[outcome] += 1
    return min(retry, 2.0) if outcome == "429" else 0.0


def run_clients(server: Server, scenes: list[dict], n: int, seconds: float, drop: float,
                hang: float, seed: int = 0) -> RunResult:
    res, lock = RunResult(n, seconds), threading.Lock()
    stop_at = time.monotonic() + seconds
    timeout = httpx.Timeout(connect=10.0, read=hang, write=30.0, pool=10.0)

    def client(i: int) -> None:
        rng = random.Random(seed * 1000 + i)
        with httpx.Client(timeout=timeout) as c:
            k = i
            while time.monotonic() < stop_at:
                pause = ask_once(c, server.url, scenes[k % len(scenes)], rng.random() < drop,
                                 res, lock)
                k += 1
                time.sleep(pause)

    def monitor() -> None:
        while time.monotonic() < stop_at + hang:
            res.rss_mb.append(server.rss_mb())
            t0 = time.perf_counter()
            try:
                httpx.get(f"{server.url}/api/health", timeout=30)
                res.health_s.append(time.perf_counter() - t0)
            except httpx.HTTPError:
                res.health_s.append(float("inf"))
            if not any(t.is_alive() for t in threads):
                return
            time.sleep(1.0)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    mon = threading.Thread(target=monitor, daemon=True)
    mon.start()
    for t in threads:  # every request started before the end gets `hang` seconds to finish
        t.join(max(0.0, stop_at + hang - time.monotonic()))
    res.hung += sum(t.is_alive() for t in threads)
    mon.join(5)
    res.rss_mb.append(server.rss_mb())
    return res


def load_scenes(world: Path, n: int = 8) -> list[dict]:
    from pixsearch.serve.samples import world_samples

    samples = world_samples(world, n)
    if not samples:
        raise SystemExit(f"no scenes in {world} (test.jsonl with images)")
    return [{"question": s.question, "image": base64.b64encode(s.data).decode()}
            for s in samples]


def world_and_index(args: argparse.Namespace, tmp: Path) -> tuple[Path, Path]:
    from pixsearch import paths

    if args.world:
        world = Path(args.world).expanduser()
    elif (paths.world_dir() / "index").is_dir():
        world = paths.world_dir()
    else:
        world = tmp / "world"
        print(f"[load_bench] building a small world in {world} (about a minute)", flush=True)
        subprocess.run([sys.executable, "-c", SERVE, "world", "build", "--scale", "small",
                        "--out", str(world)], check=True)
    return world, Path(args.index).expanduser() if args.index else world / "index"


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 8, 16, 32])
    ap.add_argument("--seconds", type=float, default=45.0)
    ap.add_argument("--model", default="mini")
    ap.add_argument("--index", default=None)
    ap.add_argument("--world", default=None, help="folder with test.jsonl + images (scenes)")
    ap.add_argument("--drop", type=float, default=0.2, help="share of streams dropped")
    ap.add_argument("--max-queue", type=int, default=16)
    ap.add_argument("--hang", type=float, default=120.0,
                    help="seconds without a byte after which a request counts as hung")
    ap.add_argument("overrides", nargs="*", help="DecodeConfig key=value for the server")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        world, index = world_and_index(args, Path(tmp))
        scenes = load_scenes(world)
        server = Server(["--model", args.model, "--index", str(index), "--max-queue",
                         str(args.max_queue), *args.overrides], Path(tmp) / "server.log")
        try:
            t0 = time.perf_counter()
            server.wait_loaded()
            print(f"[load_bench] {args.model} over {index}: loaded in "
                  f"{time.perf_counter() - t0:.1f} s; {len(scenes)} scenes; "
                  f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}", flush=True)
            httpx.post(f"{server.url}/api/ask", json=scenes[0], timeout=300)  # warm-up
            rows = []
            for n in args.clients:
                res = run_clients(server, scenes, n, args.seconds, args.drop, args.hang)
                rows.append(res.summary())
                print(json.dumps(rows[-1]), flush=True)
            stats = httpx.get(f"{server.url}/api/health", timeout=10).json()["stats"]
        except BaseException:
            print(server.tail(), file=sys.stderr)
            raise
        finally:
            server.stop()
    print(f"\nserver counters: {stats}")
    print("| clients | answers | answers/s | p50 s | p95 s | status codes | dropped | "
          "non-429 errors | hung | RSS MB start→max→end | health max s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['clients']} | {r['answers']} | {r['answers_per_s']:.2f} | "
              f"{r['p50_s']:.2f} | {r['p95_s']:.2f} | {r['codes']} | {r['dropped']} | "
              f"{r['non_429_errors']} | {r['hung']} | {r['rss_mb_start']:.0f}→"
              f"{r['rss_mb_max']:.0f}→{r['rss_mb_end']:.0f} | {r['health_max_s']:.2f} |")
    last = max(rows, key=lambda r: r["clients"])
    print(f"non_429_errors={last['non_429_errors']} hung={last['hung']}")
    return rows


if __name__ == "__main__":
    main()
