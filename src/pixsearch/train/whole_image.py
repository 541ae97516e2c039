"""The `whole_image` pool: what the model writes after a whole-image search it did not choose.

The paper's whole-image baseline (`pixsearch eval run --mode whole_image`, `eval/modes.py`)
forces `<search><image></search>` before the model writes anything. In an egocentric scene the
entities are small, so the whole image retrieves the flag a question asks about almost never
(first hit for 1.4% of 436 val900 questions, docs/results/gemma-270m), and a model trained
only on its own choices (a region search there) has never been in that place: it answers "This
is the flag of X." to any question. This pool puts it there, with the layout decoding gives it:

- the forced search call (`SearchCall.forced`: loss mask 0, it is not the model's choice);
- the evidence of the real whole-image search in the world's index, opened by how many
  entities the scene holds when the world's evidence has `image_count`
  (`perception.image_view`; decoding writes the count of the model's entity centres);
- the answer: a counting question's count sentence (the count is in the evidence), and for
  every other question about one entity of a scene with several, "I don't know." — unless the
  whole image's first hit is that entity, when the record is left out (its answer would need
  a plan the world did not write).

One "I don't know." per scene is kept: its answer does not depend on which of the scene's
questions it follows, and the scenes' counting questions would drown in them otherwise.
Records whose own gold trajectory searches the whole image (photos of one entity) join the
pool as they are, so a stage that draws only from it keeps what the model does there.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from pixsearch.data.records import Record
from pixsearch.images import load_image
from pixsearch.logs import progress_bar
from pixsearch.perception import SEEN, image_view
from pixsearch.retrieval.evidence import EvidenceConfig
from pixsearch.train.data import TrainSample, trajectory_sample
from pixsearch.turns import Information, SearchCall, Text, parse_display
from pixsearch.types import Query

POOL = "whole_image"
IDK = "I don't know."


def last_sentence(rec: Record) -> str:
    """The last sentence of `rec`'s gold answer text: the count sentence of a counting
    question, whether its trajectory looked at one flag first ("The red flag <search>…
    is one of them. There are 3 flags in the picture.") or not."""
    texts = [p.text for p in parse_display(rec.trajectory or rec.answer, rec.region_spans)
             if isinstance(p, Text)]
    return re.split(r"(?<=[.!?])\s+", "".join(texts).strip())[-1]


def forced_turn(rec: Record, hits: Sequence[Any], evidence: EvidenceConfig,
                count: int | None = None, idk: bool = True) -> list | None:
    """The assistant turn of `rec` after a forced whole-image search that returned `hits`,
    its count line saying `count` (default: the scene's entities); None when the pool leaves
    the record out (with `idk` False, also every question that would be answered "I don't
    know.")."""
    if rec.question_type == "counting":
        answer = last_sentence(rec)
    elif idk and rec.target is not None and len(rec.entities) > 1:
        target = rec.entities[rec.target].get("code")
        if hits and hits[0].entity == target:
            return None
        answer = IDK
    else:
        return None
    count = len(rec.masks) if count is None else count
    seen = image_view(count) if evidence.perception and evidence.image_count else None
    return [SearchCall("image", forced=True),
            Information(evidence.format(hits, seen).text), Text(" " + answer)]


@torch.no_grad()
def model_counts(model: Any, images: Sequence[str],
                 features: Callable[[str], dict[str, torch.Tensor]],
                 progress: bool = False) -> dict[str, int]:
    """How many entity centres `model`'s proposer finds in each image: the count its
    whole-image evidence will carry when it decodes (`PixSearchSession.centres`), right or
    wrong. `features(image)`: what `model.preprocess` gives for it (`FeatureCache.get`)."""
    if getattr(model, "proposer", None) is None:
        raise ValueError("whole_image_counts=model needs a model that finds entity centres "
                         "(referent.instances: points); use whole_image_counts=gold")
    out: dict[str, int] = {}
    was_training = model.training
    model.eval()  # the counts decoding will see
    for path in progress_bar(sorted(set(images)), desc="entity counts", disable=not progress):
        vis = model.stack_images([features(path)])
        _, mask_emb = model.encode_images({k: v.to(model._device()) for k, v in vis.items()})
        out[path] = len(model.proposer.points(mask_emb))
    model.train(was_training)
    return out


def _recount(turn: list, count: int) -> list:
    """A gold `turn` with its first whole-image evidence's count line saying `count`."""
    out, done = [], False
    for part in turn:
        if (not done and isinstance(part, Information) and out
                and isinstance(out[-1], SearchCall) and out[-1].modality == "image"):
            lines = part.evidence.split("\n")
            if lines[0].startswith(SEEN):
                seen = image_view(count)
                part = Information("\n".join([*([seen] if seen else []), *lines[1:]]))
            done = True
        out.append(part)
    return out


def whole_image_samples(records: Sequence[Record], index: Any, evidence: EvidenceConfig,
                        root: str | Path, progress: bool = False,
                        counts: dict[str, int] | None = None, idk: bool = True
                        ) -> list[TrainSample]:
    """The pool of `records` (module doc); `index` answers `search(query, k)`, images are
    read under the world folder `root`. One whole-image search per scene. `counts` (image →
    count, `model_counts`): the count lines say what the model will see instead of the
    scene's true number of entities. `idk` False: no "I don't know." answers."""
    out: list[TrainSample] = []
    hits_of: dict[str, list] = {}
    abstained: set[str] = set()  # scenes that already have their "I don't know."
    for rec in progress_bar(records, desc="whole-image pool", disable=not progress):
        if not rec.image:
            continue
        if rec.searches and rec.searches[0].get("type") == "image":
            sample = trajectory_sample(rec, POOL)
            if counts is not None:
                sample.parts = _recount(sample.parts, counts[rec.image])
            out.append(sample)
            continue
        if rec.image not in hits_of:
            image = load_image(str(Path(root) / rec.image))
            hits_of[rec.image] = index.search(Query("image", image=image), evidence.top_k)
        turn = forced_turn(rec, hits_of[rec.image], evidence,
                           None if counts is None else counts[rec.image], idk)
        if turn is None:
            continue
        if turn[-1].text == " " + IDK:
            if rec.image in abstained:
                continue
            abstained.add(rec.image)
        out.append(TrainSample(POOL, "trajectory", rec.question, turn, rec.image, [], rec.id))
    return out
