"""The dataset card written next to a built world, and its contact sheet of sample scenes.

The card counts records per split, question type and ego / non-ego, shows one example record
of each type, and links the contact sheet: sample egocentric and close-up scenes with the exact
entity masks tinted over them and each entity's code and referring expression.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from pixsearch.data.records import QUESTION_TYPES, SPLITS, Record
from pixsearch.world.config import WorldConfig
from pixsearch.world.countries import Country
from pixsearch.world.scenes import Scene
from pixsearch.world.wording import ANSWERS, QUESTIONS, REFEXPS

TINTS = np.array([(255, 0, 255), (0, 255, 255), (255, 255, 0), (0, 255, 0), (255, 128, 0)])
TILE = (480, 270)


def _overlay(scene: Scene) -> Image.Image:
    arr = np.asarray(scene.image).astype(np.float32)
    for i, e in enumerate(scene.entities):
        arr[e.mask] = 0.45 * arr[e.mask] + 0.55 * TINTS[i % len(TINTS)]
    img = Image.fromarray(arr.astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for i, e in enumerate(scene.entities):
        colour = tuple(int(x) for x in TINTS[i % len(TINTS)])
        draw.rectangle(e.box, outline=colour, width=2)
        draw.text((e.box[0], max(0, e.box[1] - 12)), f"{i}:{e.code}", fill=colour)
    return img


def write_contact_sheet(path: Path, scenes: list[Scene], countries: dict[str, Country],
                        per_kind: int = 4) -> None:
    """A 2-row PNG: egocentric scenes on top, close-ups below, masks tinted and labelled."""
    rows = [[s for s in scenes if s.ego][:per_kind], [s for s in scenes if not s.ego][:per_kind]]
    cols = max(1, max(len(r) for r in rows))
    sheet = Image.new("RGB", (cols * TILE[0], 2 * (TILE[1] + 16)), (20, 20, 20))
    draw = ImageDraw.Draw(sheet)
    for r, row in enumerate(rows):
        for c, scene in enumerate(row):
            tile = _overlay(scene)
            tile.thumbnail(TILE)
            x, y = c * TILE[0], r * (TILE[1] + 16)
            sheet.paste(tile, (x, y + 16))
            names = ", ".join(countries[e.code].name for e in scene.entities)
            draw.text((x + 4, y + 2), ("ego: " if scene.ego else "close-up: ") + names[:70],
                      fill=(240, 240, 240))
    sheet.save(path)


def _table(title: str, rows: dict[str, Counter], cols: list[str]) -> list[str]:
    out = [f"| {title} | " + " | ".join(cols) + " | total |",
           "|---" * (len(cols) + 2) + "|"]
    for name, cnt in rows.items():
        out.append(f"| {name} | " + " | ".join(str(cnt.get(c, 0)) for c in cols)
                   + f" | {sum(cnt.values())} |")
    return out


def _paraphrase_counts() -> str:
    return (f"{sum(map(len, QUESTIONS.values()))} question and subject wordings in "
            f"{len(QUESTIONS)} families, {sum(map(len, ANSWERS.values()))} answer sentences, "
            f"{sum(len(f) for _, f in REFEXPS)} referring-expression forms")


def card_text(by_split: dict[str, list[Record]], cfg: WorldConfig, pools) -> str:
    """Markdown of the dataset card."""
    types = {s: Counter(r.question_type for r in recs) for s, recs in by_split.items()}
    ego = {s: Counter("ego" if r.ego else "non-ego" for r in recs) for s, recs in by_split.items()}
    search = {s: Counter("needs search" if r.needs_search else "no search" for r in recs)
              for s, recs in by_split.items()}
    idk = {s: Counter("I don't know" if r.answer == "I don't know" else "answerable" for r in recs)
           for s, recs in by_split.items()}
    lines = [
        "# PixSearch benchmark world", "",
        f"Scale `{cfg.scale}`, seed {cfg.seed}. Built by `pixsearch world build`. "
        "Real countries and facts (countryinfo, pycountry), real flags (flag-icons SVGs "
        "rasterised with cairosvg), real outlines (countryinfo GeoJSON), real photographs "
        "(scikit-image; training scenes also scikit-learn's and matplotlib's sample photos) as "
        "backgrounds. Format: docs/dataset_format.md.", "",
        (f"Wording: every question, fact answer and referring expression is drawn from a "
         f"family of paraphrases (`pixsearch/world/wording.py`; {_paraphrase_counts()})."
         if cfg.paraphrase else "Wording: one canonical template per question kind "
         "(`paraphrase=false`)."), "",
        f"Gold trajectories retrieve {cfg.evidence.top_k} hits per search and cut each "
        f"`<information>` block to {cfg.evidence.max_words} words (`evidence` in world.json; "
        "models trained on this world decode with the same budget)."
        + (" Each region search's evidence opens with what its gold mask shows (colours, "
           "flags in the image and left of it: `evidence.perception`), and colour, counting "
           "and spatial questions search the region of a flag before they answer."
           if cfg.evidence.perception else ""), "",
        f"Entities: {len(pools.kb)} countries in the knowledge base, {len(pools.absent)} left "
        f"out of it (answer: \"I don't know\"); {len(pools.unseen)} entities appear only in "
        "test_unseen scenes.", "",
        "## Records per split and question type", "",
        *_table("split", types, list(QUESTION_TYPES)), "",
        "## Ego / non-ego, search, abstention", "",
        *_table("split", ego, ["ego", "non-ego"]), "",
        *_table("split", search, ["needs search", "no search"]), "",
        *_table("split", idk, ["answerable", "I don't know"]), "",
        "## Sample scenes (masks tinted)", "", "![contact sheet](contact_sheet.png)", "",
        "## One example per question type", "",
    ]
    seen = set()
    for r in by_split.get("train", []) + by_split.get("test", []):
        if r.question_type in seen:
            continue
        seen.add(r.question_type)
        lines += [f"**{r.question_type}** (`{r.image}`) — {r.question} → *{r.answer}*", "",
                  f"> {r.trajectory[:600]}", ""]
    return "\n".join(lines) + "\n"


def write_card(path: Path, by_split: dict[str, list[Record]], cfg: WorldConfig, pools) -> None:
    assert set(by_split) <= set(SPLITS)
    Path(path).write_text(card_text(by_split, cfg, pools), encoding="utf-8")
