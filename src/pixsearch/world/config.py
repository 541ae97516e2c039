"""Configuration of the benchmark world: sizes, entity pools, scene geometry, evidence budget.

`WorldConfig.preset("small")` builds in well under a minute (tests); `"full"` builds the
training/evaluation world of the CPU default model (a few thousand records). Every field can be
overridden from the command line (`pixsearch world build ... seed=3 scenes.train=500`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

from pixsearch.retrieval.config import IndexConfig, LearnedConfig
from pixsearch.retrieval.evidence import EvidenceConfig

Scale = Literal["small", "full"]


@dataclass
class SplitSizes:
    """Number of scenes per split (each scene yields `questions_per_scene` records). A scene is a
    pure function of (seed, split, index), so a larger `train` adds scenes and leaves the
    evaluation splits as they are."""

    train: int = 1800
    val: int = 100
    test: int = 150
    test_unseen: int = 150


@dataclass
class SceneConfig:
    """Geometry and photometry of composited scenes.

    Attributes:
        ego_size: (width, height) of egocentric scenes.
        nonego_size: (width, height) of non-egocentric close-ups.
        ego_share: share of scenes that are egocentric.
        min_flags, max_flags: number of flags in an egocentric scene.
        min_scale, max_scale: flag width as a share of the scene width.
        warp: maximal perspective jitter of a flag corner, as a share of the flag width.
        max_blur: maximal Gaussian blur radius (pixels) applied to a flag.
        light: maximal relative brightness change of a flag (lighting).
        pole_prob: probability that a flag hangs on a pole.
        overlap_prob: probability that a flag is placed to partly occlude another.
        outline_share: share of non-egocentric scenes showing a country outline, not a flag.
        jpeg_quality: quality of the saved JPEGs.
    """

    ego_size: tuple[int, int] = (960, 540)
    nonego_size: tuple[int, int] = (448, 336)
    ego_share: float = 0.7
    min_flags: int = 2
    max_flags: int = 5
    min_scale: float = 0.03
    max_scale: float = 0.15
    warp: float = 0.08
    max_blur: float = 1.2
    light: float = 0.25
    pole_prob: float = 0.5
    overlap_prob: float = 0.25
    outline_share: float = 0.3
    jpeg_quality: int = 90


@dataclass
class WorldConfig:
    """The whole benchmark world.

    Attributes:
        seed: every random choice derives from it; same seed, same world.
        scale: the preset this config came from (recorded in the card).
        n_countries: how many countries to use (0 = all that have a flag and basic facts).
        absent_share: share of countries kept out of the knowledge base (answer: "I don't know").
        unseen_share: share of in-KB countries reserved for the test_unseen split.
        scenes: scenes per split.
        questions_per_scene: questions drawn per scene.
        evidence: hits per search and word budget of one `<information>` block of the gold
            trajectories (training samples and decoding of a model trained on this world use
            the same budget; `evidence.top_k=5` overrides).
        kb_image_size: width of knowledge-base flag / outline PNGs.
        index_config: how the world's knowledge index is built (the retrieval `IndexConfig`,
            with three learned embedder networks averaged, `learned.members=3`; override
            fields with e.g. `index_config.image_embedder=thumbnail-16x12`).
        reuse_index: keep an existing `DIR/index` when it was built from the very same KB
            files and index config (skips embedder training when only scenes change).
        index_regions: the index's learned image embedder also trains on the train scenes'
            entities, cropped by perturbed masks (`kb/regions.jsonl`,
            `pixsearch/retrieval/regions.py`): region queries are crops of photographs by a
            model's imperfect masks, not clean flags. Only train scenes, so val and test
            photographs and test_unseen's entities stay unseen by the index. With the
            default three-member embedder (`index_config.learned.members=3`) it lifts the
            first hit of the shipped model's own first region masks on val900 / test /
            test_unseen from 0.771 / 0.766 / 0.816 to 0.794 / 0.792 / 0.822 (one network
            with region examples varied by seed: 0.760–0.792 on test;
            docs/results/gemma-270m/README.md, fifteenth version).
        paraphrase: word every question, fact answer and referring expression with a member
            of its paraphrase family (`wording.py`), drawn from an RNG stream of its own, so
            the scenes, targets and gold answers are those of `paraphrase=false` (the
            canonical one-template-per-kind wording).
    """

    seed: int = 0
    scale: Scale = "full"
    n_countries: int = 0
    absent_share: float = 0.15
    unseen_share: float = 0.15
    scenes: SplitSizes = field(default_factory=SplitSizes)
    questions_per_scene: int = 3
    evidence: EvidenceConfig = field(default_factory=EvidenceConfig)
    kb_image_size: int = 160
    index_config: IndexConfig = field(
        default_factory=lambda: IndexConfig(learned=LearnedConfig(members=3)))
    reuse_index: bool = False
    index_regions: bool = True
    paraphrase: bool = True
    scene: SceneConfig = field(default_factory=SceneConfig)

    @classmethod
    def preset(cls, scale: Scale) -> WorldConfig:
        """The `small` (tests, < 1 min) or `full` (training data) preset."""
        if scale == "full":
            return cls(scale="full")
        if scale == "small":
            # The no-learning thumbnail embedder keeps the small build well under a minute;
            # the full world trains the learned embedder (the index's default).
            return cls(scale="small", n_countries=48,
                       scenes=SplitSizes(train=24, val=6, test=10, test_unseen=8),
                       questions_per_scene=3, kb_image_size=96,
                       index_config=IndexConfig(image_embedder="thumbnail-16x12"))
        raise ValueError(f"unknown world scale {scale!r}; use 'small' or 'full'")

    def replace(self, **changes) -> WorldConfig:
        return dataclasses.replace(self, **changes)
