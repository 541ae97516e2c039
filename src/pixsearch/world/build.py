"""Building the benchmark world: entity pools and splits, KB + index, scenes, questions, records.

`build_world(out, config)` writes

    out/kb/docs.jsonl, out/kb/images/{images.jsonl, *.png}   the knowledge base
    out/kb/regions.jsonl                                     train scenes' entity masks
    out/index/                                               built by KnowledgeIndex.build
    out/images/*.jpg                                         the scenes
    out/{train,val,test,test_unseen}.jsonl                   the records
    out/world.json, out/card.md, out/contact_sheet.png       pools, dataset card, samples

Everything is a function of the config's seed. Countries are split into pools first: some are
left out of the KB (their questions are answered "I don't know"), and some in-KB countries are
reserved for test_unseen scenes, so that split is answerable only through retrieval.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from pixsearch.config import to_dict
from pixsearch.data.records import SPLITS, Record, write_records
from pixsearch.logs import progress_bar
from pixsearch.masks import mask_to_rle
from pixsearch.provenance import write_provenance
from pixsearch.retrieval.index import IndexConfig, KnowledgeIndex
from pixsearch.retrieval.regions import Region, RegionExample, write_region_examples
from pixsearch.types import Document, KBImage
from pixsearch.world.card import write_card, write_contact_sheet
from pixsearch.world.config import WorldConfig
from pixsearch.world.countries import Country, load_countries
from pixsearch.world.knowledge import write_kb
from pixsearch.world.questions import QA, SceneView, Search, make_questions
from pixsearch.world.refexp import referring_expressions
from pixsearch.world.scenes import (
    BACKGROUNDS,
    TRAIN_BACKGROUNDS,
    Scene,
    compose_ego,
    compose_nonego,
)
from pixsearch.world.trajectories import TrajectoryWriter, plain_trajectory
from pixsearch.world.wording import Wording


@dataclass
class Pools:
    """Which countries go where: in the KB or not, seen in training scenes or only in test."""

    kb: list[str]  # countries with documents and images in the knowledge base
    absent: list[str]  # countries left out of the knowledge base
    seen: list[str]  # entities of train / val / test scenes
    unseen: list[str]  # entities of test_unseen scenes only

    def for_split(self, split: str) -> list[str]:
        return self.unseen if split == "test_unseen" else self.seen


def make_pools(countries: list[Country], cfg: WorldConfig) -> Pools:
    """Deterministic partition of the countries (seeded)."""
    rng = np.random.default_rng([cfg.seed, 1])
    codes = [c.code for c in countries]
    rng.shuffle(codes)
    n_abs = max(2, round(cfg.absent_share * len(codes)))
    absent, kb = codes[:n_abs], codes[n_abs:]
    n_unseen = max(6, round(cfg.unseen_share * len(kb)))
    n_abs_unseen = max(1, round(cfg.unseen_share * n_abs))
    unseen = kb[:n_unseen] + absent[:n_abs_unseen]
    seen = kb[n_unseen:] + absent[n_abs_unseen:]
    return Pools(sorted(kb), sorted(absent), sorted(seen), sorted(unseen))


def select_countries(cfg: WorldConfig) -> list[Country]:
    """All eligible countries, or a seeded sample of `n_countries` of them."""
    countries = list(load_countries())
    if cfg.n_countries and cfg.n_countries < len(countries):
        rng = np.random.default_rng([cfg.seed, 0])
        keep = sorted(rng.choice(len(countries), cfg.n_countries, replace=False))
        countries = [countries[i] for i in keep]
    return countries


def compose_scene(split: str, s: int, pools: Pools, countries: dict[str, Country],
                  cfg: WorldConfig) -> tuple[Scene, np.random.Generator]:
    """Scene `s` of `split` (a pure function of the seed), and the generator that continues
    with its questions."""
    rng = np.random.default_rng([cfg.seed, 2, SPLITS.index(split), s])
    backgrounds = TRAIN_BACKGROUNDS if split == "train" else BACKGROUNDS
    return _compose(pools.for_split(split), countries, cfg, rng, backgrounds), rng


def _compose(pool: list[str], countries: dict[str, Country], cfg: WorldConfig,
             rng: np.random.Generator, backgrounds: tuple[str, ...]) -> Scene:
    sc = cfg.scene
    bg = backgrounds[rng.integers(len(backgrounds))]
    if rng.random() < sc.ego_share:
        n = int(rng.integers(sc.min_flags, min(sc.max_flags, len(pool)) + 1))
        codes = [pool[i] for i in rng.choice(len(pool), n, replace=False)]
        return compose_ego(codes, bg, sc, rng)
    code = pool[rng.integers(len(pool))]
    geo = countries[code].geojson
    kind = "outline" if geo is not None and rng.random() < sc.outline_share else "flag"
    return compose_nonego(code, kind, bg, sc, rng, geojson=geo)


def _pick(refs: list[str], rng: np.random.Generator) -> str | None:
    """Primary refexp: descriptions (colour, size, relation) as often as positions."""
    if not refs:
        return None
    desc = [r for r in refs if not any(w in r for w in ("left", "right", "highest", "lowest"))]
    pool = desc if desc and rng.random() < 0.5 else refs
    return pool[rng.integers(len(pool))]


def scene_wording(split: str, s: int, cfg: WorldConfig) -> Wording:
    """Scene `s`'s wording: paraphrases drawn from a stream of their own (so the scene, its
    targets and answers do not depend on them), or the canonical wording."""
    if not cfg.paraphrase:
        return Wording(None)
    return Wording(np.random.default_rng([cfg.seed, 3, SPLITS.index(split), s]))


def _view(scene: Scene, countries: dict[str, Country], kb: set[str],
          rng: np.random.Generator, wording: Wording, look: bool = False) -> SceneView:
    codes = [e.code for e in scene.entities]
    colours = {c: countries[c].colours for c in codes}
    if scene.ego:
        canon = [referring_expressions(scene.entities, i, colours) for i in range(len(codes))]
        picked = [_pick(r, rng) for r in canon]
        # one paraphrase per expression, the same wherever it appears in the scene's records
        alls = [[wording.refexp(r) for r in refs] for refs in canon]
        refexps = [None if p is None else alls[i][canon[i].index(p)]
                   for i, p in enumerate(picked)]
    else:
        alls = [[]]
        refexps = ["this flag" if scene.entities[0].kind == "flag" else "this outline"]
    return SceneView(codes, refexps, [c in kb for c in codes], scene.ego,
                     scene.entities[0].kind, countries, kb, scene.entities, alls, wording, look)


def _record(qa: QA, rid: str, image: str, split: str, scene: Scene, view: SceneView,
            countries: dict[str, Country], writer: TrajectoryWriter, cache: dict) -> Record:
    masks = [e.mask for e in scene.entities]
    if any(isinstance(p, Search) for p in qa.parts):
        traj = writer.write(qa, scene.image, masks, view.codes, cache)
        text, types, searches, spans = traj.text, traj.search_types, traj.searches, traj.region_spans
    else:
        text, types, searches, spans = plain_trajectory(qa), [], [], []
    entities = [{"code": e.code, "name": countries[e.code].name, "kind": e.kind,
                 "box": list(e.box), "refexp": view.refexps[i], "refexps": view.all_refexps[i],
                 "in_kb": view.in_kb[i]} for i, e in enumerate(scene.entities)]
    return Record(id=rid, image=image, question=qa.question, answer=qa.answer,
                  answers=qa.answers, question_type=qa.question_type,
                  needs_search=qa.needs_search, ego=scene.ego, split=split, entities=entities,
                  masks=[mask_to_rle(m) for m in masks], target=qa.target, trajectory=text,
                  search_types=types, searches=searches, region_spans=spans,
                  numeric_tolerance=qa.numeric_tolerance)


def scene_file(split: str, s: int) -> str:
    """The path of scene `s` of `split`, relative to the world folder."""
    return f"images/{split}_{s:05d}.jpg"


def build_split(split: str, out: Path, pools: Pools, countries: dict[str, Country],
                cfg: WorldConfig, writer: TrajectoryWriter, progress: bool = True
                ) -> tuple[list[Record], list[Scene]]:
    """Compose the scenes of one split, save them, and make their records."""
    records, samples = [], []
    n = getattr(cfg.scenes, split)
    kb = set(pools.kb)
    for s in progress_bar(range(n), desc=f"world {split}", disable=not progress):
        scene, rng = compose_scene(split, s, pools, countries, cfg)
        image = scene_file(split, s)
        scene.image.save(out / image, quality=cfg.scene.jpeg_quality)
        # Searches run on the saved JPEG, so anyone can rerun them from the files alone.
        scene.image = Image.open(out / image).convert("RGB")
        view = _view(scene, countries, kb, rng, scene_wording(split, s, cfg),
                     cfg.evidence.perception)
        cache: dict = {}
        for q, qa in enumerate(make_questions(view, cfg.questions_per_scene, rng)):
            records.append(_record(qa, f"{split}-{s:05d}-{q}", image, split, scene, view,
                                   countries, writer, cache))
        if len(samples) < 8:
            samples.append(scene)
    return records, samples


def write_regions(out: Path, images: list[KBImage], pools: Pools,
                  countries: dict[str, Country], cfg: WorldConfig, progress: bool = True
                  ) -> Path:
    """Compose and save the train scenes, and write their entity masks, labelled with the KB
    image each shows, as `out/kb/regions.jsonl` (`WorldConfig.index_regions`).

    `build_split` composes the same scenes again later (~35 s for 1,800): the index trains on
    these regions, and the train split's trajectories can only be written once it exists."""
    kb_ids = {im.id for im in images}
    examples = []
    for s in progress_bar(range(cfg.scenes.train), desc="world train regions",
                          disable=not progress):
        scene, _ = compose_scene("train", s, pools, countries, cfg)
        image = scene_file("train", s)
        scene.image.save(out / image, quality=cfg.scene.jpeg_quality)  # as build_split does
        ids = [f"{e.code}_{e.kind}" for e in scene.entities]
        examples.append(RegionExample(f"../{image}", [
            Region(mask_to_rle(e.mask), i if i in kb_ids else None)
            for e, i in zip(scene.entities, ids)]))
    path = out / "kb" / "regions.jsonl"
    write_region_examples(path, examples)
    return path


def build_index(out: Path, docs: list[Document], images: list[KBImage], cfg: WorldConfig,
                regions: Path | None = None) -> KnowledgeIndex:
    """Build `out/index` from the KB (and the region examples `regions`) with the retrieval
    package (same as `pixsearch index build`)."""
    config = cfg.index_config
    stamp = out / "kb" / "index.sha256"
    digest = _kb_digest(out / "kb", config)
    if (cfg.reuse_index and stamp.is_file() and stamp.read_text() == digest
            and (out / "index" / "index.yaml").is_file()):
        return KnowledgeIndex.open(out / "index")
    index = KnowledgeIndex.build(docs, images, image_root=out / "kb" / "images",
                                 out_dir=out / "index", config=config, overwrite=True,
                                 regions=regions)
    stamp.write_text(digest)
    return index


def _kb_digest(kb_dir: Path, config: IndexConfig) -> str:
    """Hash of every KB file and the index config: equal digests, interchangeable indexes."""
    h = hashlib.sha256(json.dumps(to_dict(config), sort_keys=True).encode())
    for path in sorted(p for p in kb_dir.rglob("*") if p.is_file() and p.name != "index.sha256"):
        h.update(str(path.relative_to(kb_dir)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def build_world(out: Path, cfg: WorldConfig, progress: bool = True) -> dict[str, list[Record]]:
    """Build the whole world into `out` (see the module docstring); returns records by split."""
    started = time.perf_counter()
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    chosen = select_countries(cfg)
    countries = {c.code: c for c in chosen}
    pools = make_pools(chosen, cfg)
    docs, images = write_kb([countries[c] for c in pools.kb], out / "kb", cfg.kb_image_size)
    regions = None
    if cfg.index_regions and cfg.index_config.image_embedder == "learned":
        regions = write_regions(out, images, pools, countries, cfg, progress)
    index = build_index(out, docs, images, cfg, regions)
    writer = TrajectoryWriter(index, cfg.evidence)
    by_split, samples = {}, []
    for split in SPLITS:
        recs, scenes = build_split(split, out, pools, countries, cfg, writer, progress)
        write_records(out / f"{split}.jsonl", recs)
        by_split[split] = recs
        samples += scenes[:4]
    (out / "world.json").write_text(json.dumps({
        "config": to_dict(cfg), "pools": pools.__dict__,
        "countries": {c: countries[c].to_dict() for c in sorted(countries)},
    }, ensure_ascii=False, indent=1))
    write_contact_sheet(out / "contact_sheet.png", samples, countries)
    write_card(out / "card.md", by_split, cfg, pools)
    write_provenance(out, "world", time.perf_counter() - started)
    return by_split
