"""Parallel evaluation: a process pool of workers, Ray actors for large sets, or one process
whose records are decoded together by the batched engine.

Each process (or actor) builds one `Worker`, so the model and the search API load once per
worker, not once per record. Results come back in completion order; the runner appends them
to predictions.jsonl as they arrive, which keeps parallel runs resumable too. With `batch > 1`
(`answer_batched`) one `Worker` answers `batch` records at a time, each in its own thread,
and every turn goes to one `BatchedEngine` (`pixsearch.decode.batched`): the threads only
wait, the engine decodes their answers in one batch.
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any

from pixsearch.config import to_dict
from pixsearch.eval.worker import Worker

_WORKER: Worker | None = None  # the pool process's worker, built by `_init`
_INIT_ERROR: BaseException | None = None  # why `_init` could not build it


def _init(cfg: dict[str, Any], index: str | None) -> None:
    global _WORKER, _INIT_ERROR
    import torch

    torch.set_num_threads(1)  # N processes × 1 thread each: no oversubscription
    try:
        _WORKER = Worker(cfg, index)
    except Exception as e:  # noqa: BLE001 - handed to the parent by `_answer`
        # A pool whose initializer raises replaces the dead process and runs the initializer
        # again, forever: the run would hang. Keep the error; the first record raises it.
        _INIT_ERROR = e


def _answer(record: dict[str, Any]) -> dict[str, Any]:
    if _INIT_ERROR is not None:
        raise _INIT_ERROR
    assert _WORKER is not None, "pool process was not initialised"
    return _WORKER.answer(record)


def answer_parallel(cfg: Any, index: str | None,
                    records: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Prediction lines of `records` from `cfg.workers` workers (Ray actors if `cfg.ray`)."""
    cfg_dict = to_dict(cfg)
    if cfg.ray:
        yield from _answer_ray(cfg_dict, index, records, cfg.workers)
        return
    # spawn: torch and onnxruntime sessions do not survive fork safely
    ctx = mp.get_context("spawn")
    with ctx.Pool(cfg.workers, initializer=_init, initargs=(cfg_dict, index)) as pool:
        yield from pool.imap_unordered(_answer, records)


def _answer_ray(cfg: dict[str, Any], index: str | None, records: list[dict[str, Any]],
                workers: int) -> Iterator[dict[str, Any]]:
    try:
        import ray
        from ray.util import ActorPool
    except ImportError as e:
        raise ImportError("Ray evaluation needs Ray: pip install 'pixsearch[distributed]'") from e
    if not ray.is_initialized():
        ray.init(ignore_reinit_error=True)
    actor = ray.remote(Worker)
    pool = ActorPool([actor.remote(cfg, index) for _ in range(workers)])
    yield from pool.map_unordered(lambda a, r: a.answer.remote(r), records)


def answer_batched(cfg: Any, index: str | None,
                   records: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Prediction lines of `records`, `cfg.batch` records at a time through one batched
    engine in this process (see module doc)."""
    from pixsearch.decode.batched import BatchConfig, BatchedEngine
    from pixsearch.images import load_image

    worker = Worker(to_dict(cfg), index)
    predictor = worker.predictor
    engine = BatchedEngine(predictor.model, predictor.search_api, predictor.decode_config,
                           BatchConfig(max_batch=cfg.batch))

    def ask(question: str, image: Any, forced_queries: Any = None, **overrides: Any):
        # what `Predictor.ask` does before its engine: checked overrides, the one image loader
        decode = predictor.validate_overrides(**overrides)
        image = None if image is None else load_image(image)
        return engine.answer(question, image, forced_queries, decode=decode)

    worker.ask = ask
    pool = ThreadPoolExecutor(cfg.batch, thread_name_prefix="pixsearch-record")
    try:
        futures = [pool.submit(worker.answer, record) for record in records]
        for future in as_completed(futures):
            yield future.result()
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        engine.close()
