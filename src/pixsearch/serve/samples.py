"""Sample scenes and questions the page offers to click, served by the server itself.

Nothing is fetched from the internet: samples come from a benchmark world next to the index
being served (`<world>/index` → `<world>/test.jsonl` and its images: real scenes with the
questions they were made for), else from the pictures that ship inside scikit-image
(`skimage.data`), else there are none.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("pixsearch.serve")


@dataclass
class Sample:
    """A picture (encoded bytes and their media type) and a question to ask about it."""

    question: str
    data: bytes
    media_type: str = "image/png"
    label: str = ""


def world_samples(world: Path, n: int = 6) -> list[Sample]:
    """Up to `n` scenes of a world's test split: different question types on different
    scenes first (so the samples show region, whole-image and text searches), in file order:
    deterministic."""
    from pixsearch.data.records import read_records

    path = world / "test.jsonl"
    if not path.is_file():
        return []
    records = [r for r in read_records(path) if r.image]
    chosen, types, images = [], set(), set()
    for r in records:  # a new question type on a new scene, then new scenes, then the rest
        if r.question_type not in types and r.image not in images:
            types.add(r.question_type)
            images.add(r.image)
            chosen.append(r)
    for r in records:
        if r.image not in images:
            images.add(r.image)
            chosen.append(r)
    chosen += [r for r in records if r not in chosen]
    out = []
    for r in chosen[:n]:
        image = world / r.image
        media = "image/jpeg" if image.suffix.lower() in (".jpg", ".jpeg") else "image/png"
        out.append(Sample(r.question, image.read_bytes(), media, r.question_type or r.id))
    return out


# scikit-image's bundled pictures (no download) and a question for each
_SKIMAGE = (("astronaut", "Who is the person in this photo?"),
            ("coffee", "What drink is in the cup?"),
            ("chelsea", "What animal is this?"))


def skimage_samples() -> list[Sample]:
    """scikit-image's bundled pictures (empty when it is not installed)."""
    try:
        from PIL import Image
        from skimage import data
    except ImportError:
        return []
    out = []
    for name, question in _SKIMAGE:
        buf = io.BytesIO()
        Image.fromarray(getattr(data, name)()).save(buf, format="PNG")
        out.append(Sample(question, buf.getvalue(), "image/png", name))
    return out


def find_samples(index: str | None, n: int = 6) -> list[Sample]:
    """Samples for a server answering over `index` (a folder or URL; see module docstring)."""
    if index and not index.startswith(("http://", "https://")):
        try:
            found = world_samples(Path(index).expanduser().parent, n)
        except (OSError, ValueError) as e:  # a malformed world file: no samples, not no server
            log.warning("no world samples: %s", e)
            found = []
        if found:
            return found
    return skimage_samples()
