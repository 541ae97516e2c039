"""Image ids → files in a user-given image folder (InfoSeek, OVEN, TextVQA, COCO).

The benchmarks name their images by id and ship them separately, in layouts that differ by
how the images were obtained. `ImageFolder.path(image_id)` looks, in order, for:

1. a mapping file in the folder, `id2image.jsonl` (`{"image_id": ..., "image_path": ...}` a
   line, what the official InfoSeek starter code reads) or `ovenid2impath.csv`
   (`oven_id,path`, the OVEN download scripts' map); relative paths are taken from the folder;
2. `<folder>/<id>.<ext>` (a flat folder: TextVQA's `train_images/`, COCO's `train2014/`);
3. `<folder>/<shard>/<id>.<ext>` with the OVEN snapshot's shard, the first two digits of the
   number in the id (`oven_04925844` → `04/oven_04925844.jpg`).

Extensions tried: .jpg, .jpeg, .png, .JPEG, .webp. A missing image is an error that names the
id and every place looked at.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

EXTENSIONS = (".jpg", ".jpeg", ".png", ".JPEG", ".webp")
ID_MAP_JSONL = "id2image.jsonl"
ID_MAP_CSV = "ovenid2impath.csv"


class ImageFolder:
    """Resolves image ids to existing files under `root` (see the module docstring)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise FileNotFoundError(f"image folder {self.root} does not exist")
        self._map = self._read_map()

    def _read_map(self) -> dict[str, Path]:
        out: dict[str, Path] = {}
        jsonl, table = self.root / ID_MAP_JSONL, self.root / ID_MAP_CSV
        if jsonl.is_file():
            with jsonl.open(encoding="utf-8") as f:
                for n, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    row = json.loads(line)
                    if "image_id" not in row or "image_path" not in row:
                        raise ValueError(f"{jsonl}:{n}: needs 'image_id' and 'image_path'")
                    out[str(row["image_id"])] = self.root / row["image_path"]
        elif table.is_file():
            with table.open(encoding="utf-8", newline="") as f:
                for row in csv.reader(f):
                    if len(row) >= 2:
                        out[row[0].strip()] = self.root / row[1].strip()
        return out

    def candidates(self, image_id: str) -> list[Path]:
        """Every path `path` tries for `image_id`, in order."""
        out = [self._map[image_id]] if image_id in self._map else []
        digits = "".join(c for c in image_id.rsplit("_", 1)[-1] if c.isdigit())
        shards = [digits[:2]] if len(digits) >= 2 else []
        for ext in EXTENSIONS:
            out.append(self.root / f"{image_id}{ext}")
            out += [self.root / shard / f"{image_id}{ext}" for shard in shards]
        return out

    def path(self, image_id: str) -> str:
        """The absolute path of the image `image_id` (FileNotFoundError naming where it
        looked when there is none)."""
        tried = self.candidates(str(image_id))
        for p in tried:
            if p.is_file():
                return str(p.resolve())
        shown = ", ".join(str(p.relative_to(self.root)) if p.is_relative_to(self.root)
                          else str(p) for p in tried[:4])
        raise FileNotFoundError(f"image {image_id!r} not found under {self.root} (looked for "
                                f"{shown}, ...); pass the folder that holds the benchmark's "
                                f"images with --images, or put an {ID_MAP_JSONL} there")
