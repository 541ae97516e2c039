"""Counterfactual renaming: training samples whose entity names are invented ones.

A from-scratch LM that sees each training country's name next to its flag hundreds of times
learns to write the name from the image and its own memory, not from the evidence. On
`test_unseen` (entities in the knowledge base, never in training) that shortcut writes a
memorised name, or fragments of memorised sentences, where the retrieved card's title should
be copied (measured on the shipped checkpoint: the best image hit was the right country for
all 100 answerable close-ups, its name was copied in 3).

Renaming breaks the shortcut. In a share of the search trajectories every country and capital
name (the question, the text queries, the injected evidence and the answer) is replaced,
consistently within the sample, by an invented name that appears nowhere else in training. The
flag still looks like Malaysia's, the evidence now says it is "Quorvanie" with capital "Tesh
Amuro", and the gold answer copies that. The only way to fit such samples is to read the name
out of the context — the skill unseen entities need. Counterfactual context of this kind is a
standard remedy for parametric-knowledge shortcuts in retrieval-augmented models.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from pixsearch.train.data import TrainSample
from pixsearch.turns import Information, Part, SearchCall, Text

RENAMED_POOLS = ("text", "stage2")
RENAMED = ":renamed"  # suffix of a renamed sample's record id
_ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr",
           "gr", "kr", "tr", "st", "sh", "th", "ch", "vl", "")
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ea", "ou", "y")
_ENDINGS = ("ia", "ania", "istan", "land", "ora", "eth", "ovia", "ar", "esh", "ine", "um", "")
_FIRST = ("North", "South", "East", "West", "New", "Upper", "Port", "San", "Saint", "Great")


class Renamer:
    """Replaces known names in training samples with invented ones.

    Args:
        names: the names to replace (countries and capitals of the knowledge base).
        seed: seed of the invented names and of which samples are renamed.
    """

    def __init__(self, names: Iterable[str], seed: int = 0) -> None:
        self.names = sorted({n.strip() for n in names if n and n.strip()}, key=len,
                            reverse=True)
        if not self.names:
            raise ValueError("renaming needs at least one name to replace")
        # longest first, so "Equatorial Guinea" wins over "Guinea"; word edges, so "Niger"
        # is not found inside "Nigeria"
        alternation = "|".join(re.escape(n) for n in self.names)
        self.pattern = re.compile(rf"(?<!\w)(?:{alternation})(?!\w)")
        self.known = {n.lower() for n in self.names}
        self.rng = random.Random(seed)

    def invent(self, taken: set[str]) -> str:
        """A pronounceable name that is not a real one and not in `taken`."""
        while True:
            syllables = self.rng.randint(1, 3)
            word = "".join(self.rng.choice(_ONSETS) + self.rng.choice(_VOWELS)
                           for _ in range(syllables))
            word = (word + self.rng.choice(_ENDINGS)).capitalize()
            if len(word) < 4:
                continue
            if self.rng.random() < 0.15:
                word = f"{self.rng.choice(_FIRST)} {word}"
            elif self.rng.random() < 0.1:
                word = f"{word} {self.rng.choice(('Islands', 'City', 'Republic'))}"
            if word.lower() not in self.known and word not in taken:
                return word

    def rename(self, sample: TrainSample) -> TrainSample:
        """`sample` with each name it mentions replaced by one invented name, everywhere."""
        texts = [sample.question, *(_part_text(p) for p in sample.parts)]
        found = sorted({m.group(0) for t in texts for m in self.pattern.finditer(t)})
        if not found:
            return sample
        taken: set[str] = set()
        mapping = {}
        for name in found:
            mapping[name] = self.invent(taken)
            taken.add(mapping[name])

        def sub(text: str) -> str:
            return self.pattern.sub(lambda m: mapping[m.group(0)], text)

        return replace(sample, question=sub(sample.question),
                       parts=[_part_with(p, sub) for p in sample.parts],
                       record_id=sample.record_id + RENAMED)

    def rename_share(self, samples: list[TrainSample], share: float) -> list[TrainSample]:
        """`samples` with a random `share` of them renamed (the others unchanged), in order."""
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"the renamed share must be within [0, 1], got {share}")
        return [self.rename(s) if self.rng.random() < share else s for s in samples]


def rename_pools(pools: dict[str, list[TrainSample]], share: float, names: Iterable[str],
                 seed: int = 0) -> dict[str, list[TrainSample]]:
    """`pools` with `share` of the search-trajectory pools ("text", "stage2") renamed; the
    Stage-1 pool (referring segmentation, questions without search) names no entity."""
    renamer = Renamer(names, seed=seed)
    return {k: renamer.rename_share(v, share) if k in RENAMED_POOLS else v
            for k, v in pools.items()}


def _part_text(part: Part) -> str:
    if isinstance(part, Text):
        return part.text
    if isinstance(part, SearchCall):
        return part.query
    return part.evidence


def _part_with(part: Part, sub) -> Part:
    if isinstance(part, Text):
        return replace(part, text=sub(part.text))
    if isinstance(part, SearchCall):
        return replace(part, query=sub(part.query)) if part.query else part
    assert isinstance(part, Information), part
    return Information(sub(part.evidence))


def world_names(world: Path) -> list[str]:
    """The names of a built world's countries and capitals, read from its `world.json` (as a
    file: the library never imports the generator)."""
    meta = Path(world) / "world.json"
    if not meta.is_file():
        raise FileNotFoundError(f"{meta} does not exist: `rename` replaces the names a world "
                                "built by `pixsearch world build` lists; set rename=0 for "
                                "records brought from elsewhere")
    countries = json.loads(meta.read_text(encoding="utf-8")).get("countries", {})
    return [n for c in countries.values() for n in (c["name"], c["capital"]) if n]
