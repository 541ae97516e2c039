"""One evaluation worker: loads the model and search API once, answers records one by one.

The runner uses one in its own process, a process pool gives each process one, and Ray runs
them as actors. A worker turns a record into a prediction line: the answer of every turn
(multi-turn CRAG-MM records are answered turn by turn on the same image), the first turn's
full trace, what the mode forced, and timings.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from PIL import Image

from pixsearch.config import from_dict
from pixsearch.decode.config import DecodeConfig
from pixsearch.eval.datasets import record_turns
from pixsearch.eval.modes import plan, task_of
from pixsearch.eval.proposals import ProposalConfig
from pixsearch.eval.segmentation import SEG_TASKS, SegmentationConfig, answer_segmentation
from pixsearch.images import ImageError, load_image


class Worker:
    """Answers records under one run's settings (`cfg` is an `EvalConfig` as a dict, so it
    pickles and travels to other processes unchanged)."""

    def __init__(self, cfg: dict[str, Any], index: str | None) -> None:
        from pixsearch.predictor import Predictor

        self.cfg = cfg
        decode = from_dict(DecodeConfig, cfg["decode"], "decode")
        # the model code follows its parameters' device
        self.predictor = Predictor.load(cfg["model"], index, decode, cfg.get("device"),
                                        cfg.get("model_overrides"))
        # how a turn is answered: `Predictor.ask`, or a batched engine's (`eval/parallel.py`)
        self.ask = self.predictor.ask
        self.proposals = from_dict(ProposalConfig, cfg["proposals"])
        # hits per proposal when the pipeline ranks by retrieval: the run's hits per search
        self.rank_k = self.predictor.evidence.top_k
        self.segmentation = from_dict(SegmentationConfig, cfg.get("segmentation") or {})

    def answer(self, record: dict[str, Any]) -> dict[str, Any]:
        """The prediction line of one record."""
        t0 = time.perf_counter()
        image = _image(record)
        task = task_of(record)
        if task in SEG_TASKS:  # the model segments; nothing is searched
            return answer_segmentation(self.predictor.model, record, image, self.segmentation)
        answers, traces, infos = [], [], []
        for turn in record_turns(record):
            p = plan(self.cfg["mode"], turn["question"], image, self.predictor.search_api,
                     self.proposals, self.cfg["pipeline_select"], self.rank_k, task,
                     self.predictor.decode_config.modalities)
            # the mode's overrides (a baseline's budget of 0) win over the run's decode config
            ans = self.ask(turn["question"], image, forced_queries=p.forced_queries,
                           **p.overrides)
            answers.append(ans.text)
            traces.append(ans.trace.to_dict())
            infos.append(p.info)
        line = {
            "id": str(record["id"]),
            "mode": self.cfg["mode"],
            "question": record.get("question", ""),
            "answer": answers[0],
            "trace": traces[0],
            "mode_info": infos[0],
            "seconds": time.perf_counter() - t0,
        }
        if len(answers) > 1:
            line.update(turn_answers=answers, turn_traces=traces[1:])
        return line


def _image(record: dict[str, Any]) -> Image.Image | None:
    """The record's image as RGB (a path, a PIL image from the CRAG-MM adapter, or none)."""
    value = record.get("image_path") or record.get("image")
    if value is None or value == "":
        return None
    try:
        return load_image(value if isinstance(value, Image.Image) else Path(value))
    except ImageError as e:  # name the record: the message names only the file
        raise type(e)(f"record {record.get('id')!r}: {e}") from e
