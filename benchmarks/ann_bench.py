"""Approximate search at corpus scale: recall@10 and latency of each vector index against exact.

Data with the structure of real embeddings (not uniform noise): the text vectors of the built
world's index (all-MiniLM-L6-v2 passages and cards, 384-d) are the seeds when they exist, else
2,000 clustered synthetic seeds with a decaying spectrum; every vector is a seed blended with
one of its 10 nearest seeds (topics overlap), plus noise drawn in the seeds' principal
subspace (embeddings vary along a few directions), normalised; seed popularity is Zipfian.
Queries are drawn the same way, held out from the database.

For exact search (FAISS flat, the ground truth), each FAISS kind of `pixsearch.retrieval`
(HNSW, IVF-PQ with 8-bit re-ranking, IVF-PQ alone) at a few search breadths, and a real
Milvus server (`LocalMilvusServer`, HNSW) on the same vectors: build time and throughput,
index memory, recall@10 and p50/p95 latency of single queries on one thread (HTTP/gRPC round
trip included for Milvus), and the speed-up over exact search. The last line is the default
configuration's result (`IndexConfig()`: "auto" gives HNSW at 1M):

    ann_recall10=<r> ann_speedup=<x> n=<vectors>

    python benchmarks/ann_bench.py                      # 1M vectors, all kinds, Milvus
    python benchmarks/ann_bench.py --n 100000 --no-milvus
    python benchmarks/ann_bench.py --report rows.json   # the tables of a saved run, again
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from pixsearch.retrieval.config import IndexConfig
from pixsearch.retrieval.embedders import normalize
from pixsearch.retrieval.vector_index import (
    SearchKnobs,
    import_faiss,
    make_index,
    resolve_kind,
    search_params,
)

K = 10


def seeds(dim: int, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """Real MiniLM vectors of the world index if built, else clustered synthetic ones."""
    from pixsearch import paths
    from pixsearch.retrieval import layout
    from pixsearch.retrieval.store import FaissStore

    try:
        store = FaissStore.load(layout.resolve(paths.world_dir() / "index"), "text")
        if store.dim == dim and len(store.keys) >= 500:
            vecs = store.index.reconstruct_n(0, store.index.ntotal)
            return vecs, f"{len(vecs)} real all-MiniLM-L6-v2 vectors of the world index"
    except (FileNotFoundError, ValueError):
        pass
    spectrum = 1.0 / np.arange(1, dim + 1) ** 0.7  # few strong directions, a long tail
    centres = normalize(rng.normal(size=(40, dim)) * spectrum)
    vecs = centres[rng.integers(0, 40, 2000)] + 0.5 * rng.normal(size=(2000, dim)) * spectrum
    return normalize(vecs), "2000 clustered synthetic seeds (no world index built)"


class Corpus:
    """Draws vectors around the seeds (module docstring)."""

    def __init__(self, seed_vecs: np.ndarray, noise: float = 0.35) -> None:
        self.seeds = normalize(seed_vecs)
        sims = self.seeds @ self.seeds.T
        self.neighbours = np.argsort(-sims, axis=1)[:, 1:11]
        centred = self.seeds - self.seeds.mean(0)
        _, sv, vt = np.linalg.svd(centred, full_matrices=False)
        self.basis = vt * (sv / sv[0])[:, None]  # principal directions, scaled by spread
        self.noise = noise
        ranks = np.arange(1, len(self.seeds) + 1)
        self.popularity = (1 / ranks ** 0.8) / np.sum(1 / ranks ** 0.8)

    def draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        out = np.empty((n, self.seeds.shape[1]), np.float32)
        for i in range(0, n, 50_000):
            m = min(50_000, n - i)
            a = rng.choice(len(self.seeds), m, p=self.popularity)
            b = self.neighbours[a, rng.integers(0, 10, m)]
            lam = rng.uniform(0, 0.5, (m, 1))
            x = (1 - lam) * self.seeds[a] + lam * self.seeds[b]
            x += self.noise * (rng.normal(size=(m, len(self.basis))) @ self.basis)
            x += 0.02 * rng.normal(size=x.shape)
            out[i : i + m] = normalize(x)
        return out


def latencies(search_one, queries: np.ndarray) -> np.ndarray:
    """Seconds of each single-query search."""
    out = np.empty(len(queries))
    for i in range(len(queries)):
        t0 = time.perf_counter()
        search_one(queries[i : i + 1])
        out[i] = time.perf_counter() - t0
    return out


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / K for f, t in zip(found, truth)]))


def bench_faiss(name: str, kind: str, cfg: IndexConfig, xb: np.ndarray, xq: np.ndarray,
                truth: np.ndarray, sweep: list[dict], threads: int,
                codes_only: dict | None = None) -> list[dict]:
    """Build one FAISS kind (all threads), then measure each search breadth of `sweep`
    (and, with `codes_only`, the IVF-PQ index under the re-ranking on its own)."""
    faiss = import_faiss()
    faiss.omp_set_num_threads(threads)
    t0 = time.perf_counter()
    index = make_index(xb.shape[1], kind, len(xb), cfg)
    if not index.is_trained:
        sample = xb[np.random.default_rng(1).choice(len(xb), min(len(xb), cfg.ivf_train_size),
                                                    replace=False)]
        index.train(sample)
    for i in range(0, len(xb), 100_000):
        index.add(xb[i : i + 100_000])
    build = time.perf_counter() - t0
    size = len(faiss.serialize_index(index))
    rows = []
    for knobs in sweep:
        k = SearchKnobs(**{**vars(SearchKnobs.of(cfg)), **knobs})
        params = search_params(index, k, None)
        faiss.omp_set_num_threads(threads)
        _, found = index.search(xq, K, params=params)
        faiss.omp_set_num_threads(1)
        lat = latencies(lambda q, p=params: index.search(q, K, params=p), xq)
        rows.append({"index": name, "search": knobs, "build_s": build,
                     "build_per_s": len(xb) / build, "memory_mb": size / 2**20,
                     "recall10": recall(found, truth), "p50_ms": 1e3 * np.median(lat),
                     "p95_ms": 1e3 * np.percentile(lat, 95)})
        print(_row(rows[-1]), flush=True)
    if codes_only is not None:  # the same IVF-PQ codes without re-ranking: no second build
        base = faiss.downcast_index(index.base_index)
        params = faiss.SearchParametersIVF(nprobe=codes_only["nprobe"])
        faiss.omp_set_num_threads(threads)
        _, found = base.search(xq, K, params=params)
        faiss.omp_set_num_threads(1)
        lat = latencies(lambda q: base.search(q, K, params=params), xq)
        rows.append({**rows[0], "index": "ivfpq (codes only)", "search": codes_only,
                     "memory_mb": len(faiss.serialize_index(base)) / 2**20,
                     "recall10": recall(found, truth), "p50_ms": 1e3 * np.median(lat),
                     "p95_ms": 1e3 * np.percentile(lat, 95)})
        print(_row(rows[-1]), flush=True)
    return rows  # the index is freed here: the next kind gets the memory


def bench_milvus(xb: np.ndarray, xq: np.ndarray, truth: np.ndarray, nlist: int,
                 nprobes: list[int]) -> list[dict]:
    """The same vectors in a real Milvus server, searched over its client. IVF_FLAT: Milvus
    builds an index per sealed segment, and HNSW there would double this run's length."""
    from pymilvus import MilvusClient

    from pixsearch.retrieval.milvus_server import LocalMilvusServer
    from pixsearch.retrieval.milvus_store import MilvusIndex, MilvusStore

    rows = []
    with tempfile.TemporaryDirectory(prefix="ann-milvus-") as tmp, \
            LocalMilvusServer(Path(tmp) / "data") as server:
        t0 = time.perf_counter()
        store = MilvusStore(server.url, "bench", xb.shape[1],
                            MilvusIndex("IVF_FLAT", {"nlist": nlist}, {"nprobe": nprobes[0]}))
        keys = np.char.add("v", np.arange(len(xb)).astype(str)).tolist()
        for i in range(0, len(xb), 50_000):
            store.add(keys[i : i + 50_000], xb[i : i + 50_000])
        store.save()
        client = MilvusClient(server.url)
        client.release_collection("bench")
        client.load_collection("bench")  # waits for the segment indexes
        build = time.perf_counter() - t0
        rss = _server_rss_mb(server)
        for nprobe in nprobes:
            store.index.search = {"nprobe": nprobe}
            found = np.array([[int(k[1:]) for k, _ in row]
                              for i in range(0, len(xq), 100)
                              for row in store.search(xq[i : i + 100], K)])
            lat = latencies(lambda q: store.search(q, K), xq[:300])
            rows.append({"index": f"milvus ivf_flat{nlist}", "search": {"nprobe": nprobe},
                         "build_s": build,
                         "build_per_s": len(xb) / build, "memory_mb": rss,
                         "recall10": recall(found, truth), "p50_ms": 1e3 * np.median(lat),
                         "p95_ms": 1e3 * np.percentile(lat, 95)})
            print(_row(rows[-1]), flush=True)
        store.close()
        client.close()
    return rows


def _server_rss_mb(server) -> float:
    """Resident memory of the Milvus server process (its vectors, index and runtime)."""
    try:
        import psutil

        return psutil.Process(server._server.server_proc.pid).memory_info().rss / 2**20
    except Exception:  # noqa: BLE001 - memory is informative only
        return float("nan")


def _row(r: dict) -> str:
    knobs = ",".join(f"{k}={v}" for k, v in r["search"].items()) or "-"
    speed = f"{r['speedup']:.0f}x" if "speedup" in r else ""
    return (f"| {r['index']} | {knobs} | {r['recall10']:.3f} | {r['p50_ms']:.2f} | "
            f"{r['p95_ms']:.2f} | {speed} | {r['build_s']:.0f} s ({r['build_per_s']:,.0f}/s) | "
            f"{r['memory_mb']:,.0f} MB |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--exact-queries", type=int, default=100,
                    help="single queries timed for exact search (it is slow)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                    help="threads for building and the ground truth (latency: one thread)")
    ap.add_argument("--no-milvus", action="store_true")
    ap.add_argument("--out", default=None, help="write the rows as JSON here")
    ap.add_argument("--report", default=None,
                    help="print the tables and last line of a run saved with --out (no run)")
    args = ap.parse_args()
    if args.report:
        saved = json.loads(Path(args.report).read_text())
        if isinstance(saved, list):  # rows alone: the run's size is --n / --dim
            saved = {"n": args.n, "dim": args.dim, "rows": saved}
        report(saved["rows"], saved["n"], saved["dim"])
        return
    faiss = import_faiss()
    rng = np.random.default_rng(0)
    seed_vecs, origin = seeds(args.dim, rng)
    corpus = Corpus(seed_vecs)
    t0 = time.perf_counter()
    xb, xq = corpus.draw(args.n, rng), corpus.draw(args.queries, np.random.default_rng(1))
    print(f"data: {args.n:,} x {args.dim} around {origin} ({time.perf_counter() - t0:.0f} s)")

    faiss.omp_set_num_threads(args.threads)
    _, truth = faiss.knn(xq, xb, K, metric=faiss.METRIC_INNER_PRODUCT)
    faiss.omp_set_num_threads(1)
    lat = latencies(lambda q: faiss.knn(q, xb, K, metric=faiss.METRIC_INNER_PRODUCT),
                    xq[: args.exact_queries])
    exact = {"index": "flat (exact)", "search": {}, "build_s": 0.0, "build_per_s": float("inf"),
             "memory_mb": xb.nbytes / 2**20, "recall10": 1.0, "p50_ms": 1e3 * np.median(lat),
             "p95_ms": 1e3 * np.percentile(lat, 95)}
    print("| index | search | recall@10 | p50 ms | p95 ms | speed-up | build | memory |")
    print("|---|---|---|---|---|---|---|---|")
    print(_row(exact), flush=True)

    default = IndexConfig()
    rows = [exact]
    rows += bench_faiss("hnsw", "hnsw", default, xb, xq, truth,
                        [{"ef_search": e} for e in (64, 128, 256)], args.threads)
    rows += bench_faiss("ivfpq + sq8 re-rank", "ivfpq", default, xb, xq, truth,
                        [{"nprobe": p} for p in (64, 128, 256)], args.threads,
                        codes_only={"nprobe": default.ivf_nprobe})
    if not args.no_milvus:
        try:
            rows += bench_milvus(xb, xq, truth, 1024, [64, 128])
        except Exception as e:  # noqa: BLE001 - report and keep the FAISS results
            print(f"milvus: failed ({type(e).__name__}: {e})")
    if args.out:
        Path(args.out).write_text(json.dumps({"n": args.n, "dim": args.dim, "rows": rows},
                                             indent=1, default=float))
    report(rows, args.n, args.dim)


def report(rows: list[dict], n: int, dim: int) -> None:
    """The table with speed-ups, and the default configuration's last line."""
    exact = next(r for r in rows if r["index"] == "flat (exact)")
    for r in rows:
        r["speedup"] = exact["p50_ms"] / r["p50_ms"]
    print("\nwith speed-ups (p50 of exact / p50 of the index, one thread):")
    print("| index | search | recall@10 | p50 ms | p95 ms | speed-up | build | memory |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(_row(r))
    default = IndexConfig()
    kind = resolve_kind(default.store, n, dim, default)
    name = {"hnsw": "hnsw", "ivfpq": "ivfpq + sq8 re-rank", "flat": "flat (exact)"}[kind]
    knob = {"hnsw": {"ef_search": default.ef_search}, "ivfpq": {"nprobe": default.ivf_nprobe},
            "flat": {}}[kind]
    chosen = next(r for r in rows if r["index"] == name and r["search"] == knob)
    print(f"default (store=auto → {kind}, {knob or 'exact'})")
    print(f"ann_recall10={chosen['recall10']:.3f} ann_speedup={chosen['speedup']:.1f} n={n}")


if __name__ == "__main__":
    main()
