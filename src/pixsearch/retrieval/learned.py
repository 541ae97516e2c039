"""The trained image embedder of a knowledge index (built at indexing time, saved with it).

Off-the-shelf DINOv2-S features do not tell small, warped, blurred flags apart
(`benchmarks/image_embedder_bench.py`, README "Benchmarks": 0.23 recall@1 on tight crops). The
knowledge base is known when the index is built, so small CNNs are trained there on augmented
views of the KB images (`augment.random_views`: crops that look like region queries) with a
prototype loss: a cosine classifier with one prototype per KB image. Given region examples
(`regions.py`: photographs with entity masks labelled by KB image), a share of every batch are
crops of them by perturbed masks, the kind of query a model's own mask makes. Index vectors
blend each image's clean embedding with its learned prototype. Several independently seeded
networks (`LearnedConfig.members`) make one embedding by concatenation. The weights
(safetensors) and config (JSON) live in the index folder and reload with it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from pixsearch.config import from_dict
from pixsearch.logs import progress_bar
from pixsearch.retrieval.augment import photometric, random_views, to_tensor
from pixsearch.retrieval.config import LearnedConfig

WEIGHTS_FILE = "image_embedder.safetensors"
CONFIG_FILE = "image_embedder.json"


class CropNet(nn.Module):
    """Four conv stages, then the 4×3 layout is kept (flattened): flags differ by where their
    colours are, which global pooling would throw away."""

    def __init__(self, channels: int, dim: int, in_hw: tuple[int, int]) -> None:
        super().__init__()
        c = channels
        widths = [3, c, 2 * c, 4 * c, 4 * c]
        layers: list[nn.Module] = []
        for i, o in zip(widths[:-1], widths[1:]):
            layers += [nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(),
                       nn.MaxPool2d(2)]
        self.features = nn.Sequential(*layers)
        h, w = in_hw[0] // 16, in_hw[1] // 16
        assert h > 0 and w > 0, f"input {in_hw} is too small for four 2× poolings"
        self.head = nn.Linear(4 * c * h * w, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.features(x - 0.5).flatten(1)
        return F.normalize(self.head(z), dim=-1)


class LearnedImageEmbedder:
    """An `Embedder` for images: `config.members` `CropNet`s trained on one knowledge base.

    With several members, a vector is the concatenation of the members' normalised vectors,
    each scaled by 1/√members: dot products are the members' mean cosine."""

    name = "learned"

    def __init__(self, config: LearnedConfig, nets: Sequence[CropNet],
                 prototypes: Sequence[torch.Tensor] | None = None) -> None:
        assert len(nets) == config.members, (len(nets), config.members)
        assert prototypes is None or len(prototypes) == len(nets)
        self.config = config
        self.nets = [net.eval() for net in nets]
        # per member: [n_kb_images, dim], one row per training image
        self.prototypes = list(prototypes) if prototypes is not None else None
        self.dim = config.dim * config.members

    @classmethod
    def create(cls, config: LearnedConfig) -> LearnedImageEmbedder:
        nets = []
        for i in range(config.members):
            torch.manual_seed(config.seed + i)
            nets.append(CropNet(config.channels, config.dim,
                                (config.input_height, config.input_width)))
        return cls(config, nets)

    def _join(self, parts: Sequence[torch.Tensor]) -> torch.Tensor:
        """Members' normalised vectors → one vector whose dot products are mean cosines."""
        return torch.cat(list(parts), dim=-1) / len(parts) ** 0.5

    @torch.no_grad()
    def _member_vectors(self, images: Sequence[Image.Image], batch_size: int
                        ) -> list[torch.Tensor]:
        """Each member's L2-normalised embeddings of `images`, [N, config.dim] apiece."""
        size = (self.config.input_width, self.config.input_height)
        out: list[list[torch.Tensor]] = [[] for _ in self.nets]
        for i in range(0, len(images), batch_size):
            x = to_tensor(list(images[i : i + batch_size]), size)
            for per_net, net in zip(out, self.nets):
                per_net.append(net(x))
        return [torch.cat(v) if v else torch.zeros(0, self.config.dim) for v in out]

    def embed_images(self, images: Sequence[Image.Image], batch_size: int = 256) -> np.ndarray:
        """Crops or KB images → float32 [N, dim], L2-normalised."""
        return self._join(self._member_vectors(images, batch_size)).numpy()

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        raise TypeError("the learned image embedder has no text tower")

    def kb_vectors(self, images: Sequence[Image.Image],
                   rows: Sequence[int] | None = None) -> np.ndarray:
        """Index vectors of KB images: per member, clean embedding + prototype, normalised.

        `rows[i]` is the prototype row of image i (its position among the training images;
        -1: an image trained without, embedded alone). Without `rows`, `images` are the
        training images in training order."""
        parts = self._member_vectors(images, 256)
        if self.prototypes is None:
            return self._join(parts).numpy()
        n = len(images)
        if rows is None:
            if len(self.prototypes[0]) != n:
                raise ValueError(f"{n} images for {len(self.prototypes[0])} prototypes: "
                                 "pass the prototype row of each image")
            rows = range(n)
        idx = torch.as_tensor(list(rows), dtype=torch.long)
        has = idx >= 0
        for part, protos in zip(parts, self.prototypes):
            part[has] = part[has] + F.normalize(protos, dim=-1)[idx[has]]
        return self._join([F.normalize(part, dim=-1) for part in parts]).numpy()

    def train(self, images: Sequence[Image.Image], progress: bool = True,
              regions: tuple[torch.Tensor, torch.Tensor] | None = None) -> dict[str, float]:
        """Fit each member (and one prototype per image) on augmented views of `images`, and
        on `regions` when given: query crops [N, 3, H, W] at the input size and the prototype
        row of each (`regions.region_views`), `config.region_share` of every batch."""
        cfg = self.config
        if len(images) < 2:
            raise ValueError("training the image embedder needs at least 2 KB images")
        if regions is not None:
            assert regions[0].shape[1:] == (3, cfg.input_height, cfg.input_width), regions[0].shape
            assert int(regions[1].max()) < len(images), "a region's row is past the KB images"
        old_threads = torch.get_num_threads()
        if cfg.num_threads:
            torch.set_num_threads(cfg.num_threads)
        try:
            src = to_tensor(list(images), (cfg.source_width, round(cfg.source_width * 3 / 4)))
            fits = [self._fit(i, src, progress, regions) for i in range(cfg.members)]
        finally:
            torch.set_num_threads(old_threads)
        self.prototypes = [protos for protos, _ in fits]
        stats = [s for _, s in fits]
        return {"loss": float(np.mean([s["loss"] for s in stats])),
                "train_acc": float(np.mean([s["train_acc"] for s in stats])),
                "seconds": float(sum(s["seconds"] for s in stats)), "steps": cfg.steps,
                "members": cfg.members, "n_images": len(src),
                "n_region_crops": 0 if regions is None else len(regions[0])}

    def _batch(self, src: torch.Tensor, regions: tuple[torch.Tensor, torch.Tensor] | None,
               g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """One step's views and their prototype rows: KB views, then region crops."""
        cfg = self.config
        n_regions = round(cfg.region_share * cfg.batch_size) if regions is not None else 0
        idx = torch.randint(0, len(src), (cfg.batch_size - n_regions,), generator=g)
        views = random_views(src[idx], (cfg.input_height, cfg.input_width), cfg.augment, g)
        if not n_regions:
            return views, idx
        pick = torch.randint(0, len(regions[0]), (n_regions,), generator=g)
        crops = regions[0][pick]
        if cfg.region_photometric:
            crops = photometric(crops, cfg.augment, g).clamp(0, 1)
        return torch.cat([views, crops]), torch.cat([idx, regions[1][pick]])

    def _fit(self, member: int, src: torch.Tensor, progress: bool,
             regions: tuple[torch.Tensor, torch.Tensor] | None
             ) -> tuple[torch.Tensor, dict[str, float]]:
        """Train one member (seed `config.seed + member`); returns its prototypes and stats."""
        cfg, net = self.config, self.nets[member]
        g = torch.Generator().manual_seed(cfg.seed + member)
        torch.manual_seed(cfg.seed + member)
        protos = nn.Parameter(F.normalize(torch.randn(len(src), cfg.dim, generator=g), dim=-1))
        opt = torch.optim.AdamW(list(net.parameters()) + [protos], lr=cfg.lr,
                                weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=cfg.steps,
                                                    pct_start=0.1)
        net.train()
        t0, losses, accs = time.perf_counter(), [], []
        desc = "train image embedder" + (f" {member + 1}/{cfg.members}" if cfg.members > 1
                                         else "")
        bar = progress_bar(range(cfg.steps), desc=desc, disable=not progress)
        for _ in bar:
            views, rows = self._batch(src, regions, g)
            logits = cfg.scale * net(views) @ F.normalize(protos, dim=-1).T
            loss = F.cross_entropy(logits, rows)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
            accs.append((logits.argmax(-1) == rows).float().mean().item())
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}", acc=f"{np.mean(accs[-20:]):.2f}")
        net.eval()
        return protos.detach().clone(), {"loss": float(np.mean(losses[-20:])),
                                         "train_acc": float(np.mean(accs[-20:])),
                                         "seconds": time.perf_counter() - t0}

    def _prefixes(self) -> list[str]:
        # one member keeps the file layout indexes were saved in before ensembles
        return [""] if self.config.members == 1 else [f"member{i}." for i in
                                                      range(self.config.members)]

    def save(self, directory: str | Path) -> None:
        """Write weights + prototypes (safetensors) and config (JSON) into `directory`."""
        from safetensors.torch import save_file

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        tensors = {}
        for i, (pre, net) in enumerate(zip(self._prefixes(), self.nets)):
            tensors |= {f"{pre}net.{k}": v.contiguous() for k, v in net.state_dict().items()}
            if self.prototypes is not None:
                tensors[f"{pre}prototypes"] = self.prototypes[i].contiguous()
        save_file(tensors, str(d / WEIGHTS_FILE))
        (d / CONFIG_FILE).write_text(json.dumps(asdict(self.config), indent=2))

    @classmethod
    def load(cls, directory: str | Path) -> LearnedImageEmbedder:
        """Reload an embedder saved by `save`."""
        from safetensors.torch import load_file

        d = Path(directory)
        if not (d / WEIGHTS_FILE).is_file():
            raise FileNotFoundError(f"no trained image embedder in {d} ({WEIGHTS_FILE} missing)")
        config = from_dict(LearnedConfig, json.loads((d / CONFIG_FILE).read_text()))
        tensors = load_file(str(d / WEIGHTS_FILE))
        emb = cls.create(config)
        protos = []
        for pre, net in zip(emb._prefixes(), emb.nets):
            net.load_state_dict({k[len(pre) + 4:]: v for k, v in tensors.items()
                                 if k.startswith(f"{pre}net.")})
            protos.append(tensors.get(f"{pre}prototypes"))
        has = [p is not None for p in protos]
        assert all(has) or not any(has), f"prototypes of only some members in {d}"
        emb.prototypes = protos if all(has) else None
        return emb
