"""Stage-0 reading samples: text-only search trajectories over the knowledge base.

The paper fine-tunes an LLM that already reads and copies from its context. The CPU default
model's LM is trained from scratch, and on the world's trajectories alone it learns the answer
templates but not to copy a name out of the evidence (measured: it answers one fixed country
whatever was retrieved). A name copied out of the context has to be found by content, which
small LMs learn late from sparse signals (one name per image trajectory). Text-only
trajectories over the knowledge base carry that signal densely and cheaply (no image, ~100
tokens): every answer is a sentence copied out of the evidence the engine would inject
(`retrieval/evidence.py` formatting, under the same `EvidenceConfig` budget as the world's
trajectories and decoding). Stage 0 trains on them so the copy skill is in place
before the image trajectories ask for it — the role pretraining plays for the paper's LLM.

Only the entities of the training split are read, so `test_unseen` stays unseen.
"""

from __future__ import annotations

import random
from collections import defaultdict
from pathlib import Path

from pixsearch.data.knowledge import DOCS_FILE, read_documents
from pixsearch.data.records import Record
from pixsearch.retrieval.evidence import EvidenceConfig
from pixsearch.train.data import TrainSample
from pixsearch.turns import Information, SearchCall, Text
from pixsearch.types import Document, Hit


def reading_samples(world: Path, records: list[Record], evidence: EvidenceConfig | None = None,
                    passes: int = 2, seed: int = 0) -> list[TrainSample]:
    """Text-only search trajectories over the knowledge base, one per fact passage of each
    training entity: "What does the knowledge base say about the area of X?" →
    `<search>area of X</search><information>` the passage among `evidence.top_k` - 1 other
    passages of the same entity (what the text index returns for such a query), at a random
    rank so it is found by content, cut to `evidence.max_words` `</information>` the passage's
    sentence, copied. Where the budget would cut the passage itself, it is shown first, so the
    answer is always in the evidence. `passes` reshuffles."""
    evidence = evidence or EvidenceConfig()
    hits = evidence.top_k
    codes = {e.get("code") for r in records for e in r.entities if e.get("in_kb", True)}
    by_entity: dict[str, list[Document]] = defaultdict(list)
    for d in read_documents(Path(world) / "kb" / DOCS_FILE):
        if d.entity in codes:
            by_entity[d.entity].append(d)
    if not by_entity:
        raise ValueError(f"no knowledge-base document of {world} is about an entity of the "
                         "training split")
    rng = random.Random(seed)
    out: list[TrainSample] = []
    for p in range(passes):
        for code in sorted(by_entity):
            docs = by_entity[code]
            name = next((d.title for d in docs if d.kind == "card"), docs[0].title)
            for d in docs:
                if d.kind == "card":
                    continue
                fact = d.id.split(":", 1)[1].replace("_", " ")
                others = rng.sample([o for o in docs if o is not d], min(hits - 1, len(docs) - 1))
                shown = others[:]
                shown.insert(rng.randrange(len(shown) + 1), d)
                ev = _evidence(shown, d, code, evidence)
                turn = [SearchCall("text", f"{fact} of {name}"), Information(ev),
                        Text(f" {d.text}")]
                out.append(TrainSample("text", "trajectory",
                                       f"What does the knowledge base say about the {fact} of "
                                       f"{name}?", turn, record_id=f"kb:{d.id}:{p}"))
    return out


def _evidence(shown: list[Document], answer: Document, code: str, budget: EvidenceConfig) -> str:
    """`shown` formatted under `budget`; if that cuts `answer` off, with `answer` first."""
    def fmt(docs: list[Document]):
        return budget.format([Hit(o.id, o.title, 1.0, o.text, code) for o in docs])

    ev = fmt(shown)
    if ev.truncated and answer.id not in [h.doc_id for h in ev.hits[:-1]]:
        ev = fmt([answer, *(o for o in shown if o is not answer)])
    return ev.text
