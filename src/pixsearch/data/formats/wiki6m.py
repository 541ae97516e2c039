"""The paper's knowledge base: the Wikipedia entity file of OVEN / InfoSeek, streamed.

`Wiki6M_ver_1_0.jsonl` (github.com/open-vision-language/oven; 6,063,945 entities; also as
`.jsonl.gz`) holds one entity a line:

    {"wikidata_id": "Q3783438", "wikipedia_title": "Harold Keeling",
     "wikipedia_summary": "Harold A. Keeling ...", "wikipedia_content": "Harold A. Keeling ...",
     "wikipedia_image_url": "https://upload.wikimedia.org/.../Keeling.jpg" | null}

Also read: the sectioned layout of Encyclopedic-VQA's knowledge base (`title`,
`section_titles`, `section_texts`, `image_urls`), `id` / `title` / `text` for hand-made
files, and a local `image_path` (relative to the entity file, or absolute) instead of a URL.

Each entity becomes (`WikiEntity`):
- one "card" document, id = the Wikidata id, text = the summary (or the opening words);
  what an image search returns, as in the paper's "image index linked to docs";
- "passage" documents `<id>#<k>` of about `passage_words` words, cut at paragraph and section
  boundaries (a passage starts with its section title), for the text index;
- the entity's image as a `KBImage` linked to the card, when a file for it is on disk: the
  `image_path`, or the URL's image under `images` as `<id>.<ext>`, `<id[:4]>/<id>.<ext>` (the
  layout of the entity-image snapshot) or the URL's file name. Images are never downloaded;
  an entity whose image is not on disk is text-only and is counted in `Wiki6MStats`.

Everything is a generator over the (possibly gzipped) file: 6M entities are never in memory,
only the set of ids already seen (the file has a few duplicate entities; the first wins).
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote, urlparse

from pixsearch.data.jsonl import FormatError
from pixsearch.types import Document, KBImage

_EXTS = (".jpg", ".jpeg", ".png", ".JPEG", ".webp", ".gif")


@dataclass
class Wiki6MConfig:
    """How entities become documents.

    Attributes:
        passage_words: target length of a passage in words (UniIR and the paper's text index
            cut Wikipedia at about 100).
        max_passages: passages kept per entity (None: all; the first ones hold the lead).
        card_words: words of the summary kept on the card.
        limit: stop after this many entities (None: the whole file; for trials).
    """

    passage_words: int = 100
    max_passages: int | None = None
    card_words: int = 100
    limit: int | None = None

    def __post_init__(self) -> None:
        if self.passage_words < 10 or self.card_words < 1:
            raise ValueError("passage_words must be >= 10 and card_words >= 1")


@dataclass
class WikiEntity:
    """One entity: its card, its passages and (when on disk) its image, linked to the card."""

    id: str
    title: str
    card: Document
    passages: list[Document]
    image: KBImage | None = None
    image_missing: bool = False  # it has an image URL but no local file


@dataclass
class Wiki6MStats:
    """Counts of a pass over the file (filled as the generator runs)."""

    entities: int = 0
    passages: int = 0
    images: int = 0
    images_missing: int = 0
    duplicates: int = 0
    missing_examples: list[str] = field(default_factory=list)


def _open(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return path.open(encoding="utf-8")


def _words(text: str) -> list[str]:
    return text.split()


def chunk_passages(sections: list[tuple[str, str]], words: int) -> list[str]:
    """Passages of about `words` words: paragraphs are packed together up to the target, a
    longer paragraph is cut, and a passage never spans two sections (it starts with the
    section's title when there is one)."""
    out: list[str] = []
    for heading, text in sections:
        current: list[str] = []
        for para in (p for p in re.split(r"\n\s*\n|\n", text) if p.strip()):
            toks = _words(para)
            if current and len(current) + len(toks) > words:
                out.append(_with_heading(heading, current))
                current = []
            while len(toks) > words:
                out.append(_with_heading(heading, toks[:words]))
                toks = toks[words:]
            current += toks
        if current:
            out.append(_with_heading(heading, current))
    return out


def _with_heading(heading: str, toks: list[str]) -> str:
    body = " ".join(toks)
    return f"{heading}: {body}" if heading else body


def _sections(row: dict[str, Any]) -> list[tuple[str, str]]:
    if isinstance(row.get("section_texts"), list):
        titles = row.get("section_titles") or [""] * len(row["section_texts"])
        return [(str(t) if str(t).lower() not in ("abstract", "introduction") else "", str(s))
                for t, s in zip(titles, row["section_texts"])]
    text = row.get("wikipedia_content") or row.get("text") or row.get("wikipedia_summary") or ""
    return [("", str(text))]


def _image_url(row: dict[str, Any]) -> str | None:
    url = row.get("wikipedia_image_url") or row.get("image_url")
    if not url and isinstance(row.get("image_urls"), list) and row["image_urls"]:
        url = row["image_urls"][0]
    return str(url) if url else None


def local_image(qid: str, url: str | None, path: str | None, base: Path,
                images: Path | None) -> Path | None:
    """The file of an entity's image, or None when it is not on disk (see the module
    docstring for where it is looked for)."""
    if path:
        p = Path(path) if Path(path).is_absolute() else base / path
        return p if p.is_file() else None
    if images is None or not url:
        return None
    name = Path(unquote(urlparse(url).path)).name
    tries = [images / f"{qid}{ext}" for ext in _EXTS]
    tries += [images / qid[:4] / f"{qid}{ext}" for ext in _EXTS]
    tries += [images / name] if name else []
    return next((p for p in tries if p.is_file()), None)


def parse_entity(row: dict[str, Any], cfg: Wiki6MConfig, base: Path,
                 images: Path | None) -> WikiEntity:
    """One line of the entity file as a `WikiEntity` (ValueError on a malformed line)."""
    qid = row.get("wikidata_id") or row.get("id") or row.get("entity_id")
    title = row.get("wikipedia_title") or row.get("title")
    if not qid or not title:
        raise ValueError(f"an entity needs an id (wikidata_id) and a title (wikipedia_title); "
                         f"got fields {sorted(row)}")
    qid, title = str(qid), str(title)
    passages = chunk_passages(_sections(row), cfg.passage_words)
    if cfg.max_passages is not None:
        passages = passages[: cfg.max_passages]
    summary = str(row.get("wikipedia_summary") or "") or (passages[0] if passages else title)
    card_text = " ".join(_words(summary)[: cfg.card_words])
    card = Document(qid, title, card_text, entity=qid, kind="card")
    docs = [Document(f"{qid}#{k}", title, text, entity=qid, kind="passage")
            for k, text in enumerate(passages)]
    url, path = _image_url(row), row.get("image_path")
    found = local_image(qid, url, path, base, images)
    image = KBImage(f"img:{qid}", str(found.resolve()), qid) if found is not None else None
    return WikiEntity(qid, title, card, docs, image, image_missing=bool(url or path) and not found)


def iter_entities(path: str | Path, images: str | Path | None = None,
                  cfg: Wiki6MConfig | None = None,
                  stats: Wiki6MStats | None = None) -> Iterator[WikiEntity]:
    """Stream the entities of a Wiki6M-style JSONL (or .jsonl.gz) file, skipping repeated
    ids; `stats` (if given) is updated as entities go by."""
    path, cfg = Path(path).expanduser(), cfg or Wiki6MConfig()
    if not path.is_file():
        raise FileNotFoundError(f"Wikipedia entity file {path} does not exist")
    folder = Path(images).expanduser() if images is not None else None
    if folder is not None and not folder.is_dir():
        raise FileNotFoundError(f"entity image folder {folder} does not exist")
    stats = stats if stats is not None else Wiki6MStats()
    seen: set[str] = set()
    with _open(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            if cfg.limit is not None and stats.entities >= cfg.limit:
                return
            try:
                row = json.loads(line)
                if not isinstance(row, dict):
                    raise ValueError("each line must be a JSON object")
                entity = parse_entity(row, cfg, path.parent, folder)
            except (ValueError, TypeError) as e:  # JSONDecodeError is a ValueError
                raise FormatError(f"{path}:{n}: {e}") from e
            if entity.id in seen:
                stats.duplicates += 1
                continue
            seen.add(entity.id)
            stats.entities += 1
            stats.passages += len(entity.passages)
            stats.images += entity.image is not None
            if entity.image_missing:
                stats.images_missing += 1
                if len(stats.missing_examples) < 3:
                    stats.missing_examples.append(entity.id)
            yield entity


def iter_documents(entities: Iterator[WikiEntity]) -> Iterator[Document]:
    """The cards and passages of a stream of entities, in file order."""
    for e in entities:
        yield e.card
        yield from e.passages


def iter_images(entities: Iterator[WikiEntity]) -> Iterator[KBImage]:
    """The images (linked to their cards) of a stream of entities."""
    for e in entities:
        if e.image is not None:
            yield e.image


class Wiki6MSource:
    """The entity file as a knowledge-base source for an index builder: `documents()` and
    `images()` each stream the file once (a builder embeds the text, then the images, and
    never holds either in memory). Image paths are absolute, so `image_root` is only the
    folder the builder is told."""

    def __init__(self, path: str | Path, images: str | Path | None = None,
                 cfg: Wiki6MConfig | None = None) -> None:
        self.path, self.cfg = Path(path).expanduser(), cfg or Wiki6MConfig()
        self.images_dir = Path(images).expanduser() if images is not None else None
        self.image_root = self.path.parent
        self.stats = Wiki6MStats()  # of the last completed `documents()` pass

    def documents(self) -> Iterator[Document]:
        """Every card and passage, in file order."""
        stats = Wiki6MStats()
        yield from iter_documents(iter_entities(self.path, self.images_dir, self.cfg, stats))
        self.stats = stats

    def images(self) -> Iterator[KBImage]:
        """Every entity image found on disk, linked to its entity's card."""
        yield from iter_images(iter_entities(self.path, self.images_dir, self.cfg))
