"""CLIP-family image embedders for the index: tiny random CLIP and SigLIP checkpoints saved as
published (model + image processor), indexed and searched with real FAISS."""

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import (
    CLIPConfig,
    CLIPImageProcessor,
    CLIPModel,
    SiglipConfig,
    SiglipImageProcessor,
    SiglipModel,
)

from pixsearch.retrieval.embedders import LazyEmbedder, make_image_embedder
from pixsearch.retrieval.index import IndexConfig, KnowledgeIndex
from pixsearch.types import Document, KBImage

VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
              image_size=32, patch_size=8)
TEXT = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
            vocab_size=99, max_position_embeddings=16)


def _save(kind: str, root):
    torch.manual_seed(0)
    if kind == "clip":
        model = CLIPModel(CLIPConfig(vision_config=VISION, text_config=TEXT, projection_dim=24))
        proc = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32,
                                                                          "width": 32})
        dim = 24
    else:
        model = SiglipModel(SiglipConfig(vision_config=VISION, text_config=TEXT))
        proc = SiglipImageProcessor(size={"height": 32, "width": 32})
        dim = 32
    path = root / kind
    model.save_pretrained(path)
    proc.save_pretrained(path)
    return path, dim


def _scenes(root, n=6):
    """Distinct textured images (stripes of random colours), one KB document each."""
    rng = np.random.default_rng(0)
    docs, images, pics = [], [], []
    for i in range(n):
        arr = np.repeat(rng.integers(0, 255, (4, 1, 3), dtype=np.uint8), 16, axis=0)
        pic = Image.fromarray(np.repeat(arr, 80, axis=1))
        pic.save(root / f"img{i}.png")
        pics.append(pic)
        docs.append(Document(id=f"d{i}", title=f"Entity {i}", text=f"Entity {i} has stripes.",
                             entity=f"e{i}", kind="card"))
        images.append(KBImage(id=f"img{i}", path=f"img{i}.png", doc_id=f"d{i}"))
    return docs, images, pics


@pytest.mark.parametrize("kind", ["clip", "siglip"])
def test_clip_family_embedder_indexes_and_finds_each_image(tmp_path, kind):
    torch.set_num_threads(1)
    path, dim = _save(kind, tmp_path)
    name = f"clip:{path}"
    emb = make_image_embedder(name, lazy=True)
    assert isinstance(emb, LazyEmbedder) and emb.dim == dim and not emb.loaded
    docs, images, pics = _scenes(tmp_path)
    vec = make_image_embedder(name).embed_images(pics[:2])
    assert vec.shape == (2, dim) and np.allclose(np.linalg.norm(vec, axis=1), 1, atol=1e-5)

    cfg = IndexConfig(image_embedder=name, store="flat")
    KnowledgeIndex.build(docs, images, tmp_path, tmp_path / "index", cfg)
    index = KnowledgeIndex.open(tmp_path / "index")  # the embedder comes back from its name
    assert index.image_embedder.name == name and index.image_embedder.dim == dim
    for i, pic in enumerate(pics):
        hits = index.search(pic, k=3)
        assert hits[0].doc_id == f"d{i}" and hits[0].score == pytest.approx(1.0, abs=1e-4)


def test_clip_embedder_errors_name_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="save_pretrained"):
        make_image_embedder(f"clip:{tmp_path / 'missing'}", lazy=True)
    with pytest.raises(ValueError, match="clip:"):
        make_image_embedder("clip:")
