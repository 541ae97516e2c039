"""The trained image embedder: augmented views, a few training steps, save/load round trip."""

import dataclasses

import numpy as np
import pytest
import torch

from pixsearch.retrieval.augment import AugmentConfig, random_views, to_tensor
from pixsearch.retrieval.embedders import ThumbnailEmbedder
from pixsearch.retrieval.learned import LearnedConfig, LearnedImageEmbedder
from pixsearch.world.flags import render_flag

CODES = ("FR", "DE", "JP", "BR", "CA", "IN", "ZA", "SE")


@pytest.fixture(scope="module")
def flags():
    return [render_flag(c, 128, 96) for c in CODES]


def test_views_are_deterministic_and_in_range(flags):
    src = to_tensor(flags, (128, 96))
    a = random_views(src, (48, 64), AugmentConfig(), torch.Generator().manual_seed(3))
    b = random_views(src, (48, 64), AugmentConfig(), torch.Generator().manual_seed(3))
    assert a.shape == (len(flags), 3, 48, 64)
    assert torch.equal(a, b)
    assert a.min() >= 0 and a.max() <= 1
    assert not torch.allclose(a, torch.nn.functional.interpolate(src, (48, 64)), atol=0.05)


def test_trains_and_round_trips(flags, tmp_path):
    torch.set_num_threads(1)
    cfg = LearnedConfig(steps=40, batch_size=32, channels=8, dim=32, seed=1)
    emb = LearnedImageEmbedder.create(cfg)
    stats = emb.train(flags, progress=False)
    assert stats["steps"] == 40 and np.isfinite(stats["loss"])
    assert stats["loss"] < np.log(len(flags))  # better than chance
    kb = emb.kb_vectors(flags)
    assert kb.shape == (len(flags), 32)
    assert np.allclose(np.linalg.norm(kb, axis=1), 1, atol=1e-5)
    # clean flags find themselves
    assert (emb.embed_images(flags) @ kb.T).argmax(axis=1).tolist() == list(range(len(flags)))
    emb.save(tmp_path)
    again = LearnedImageEmbedder.load(tmp_path)
    assert again.config == cfg
    assert np.array_equal(again.embed_images(flags), emb.embed_images(flags))
    assert np.array_equal(again.kb_vectors(flags), kb)


def test_members_average_their_cosines_and_round_trip(flags, tmp_path):
    torch.set_num_threads(1)
    cfg = LearnedConfig(steps=20, batch_size=16, channels=8, dim=16, seed=1, members=2)
    emb = LearnedImageEmbedder.create(cfg)
    stats = emb.train(flags, progress=False)
    assert stats["members"] == 2 and np.isfinite(stats["loss"])
    kb, q = emb.kb_vectors(flags), emb.embed_images(flags[:3])
    assert kb.shape == (len(flags), 32) and emb.dim == 32
    assert np.allclose(np.linalg.norm(kb, axis=1), 1, atol=1e-5)
    # each member alone is the one-network embedder of its seed; the ensemble's similarity
    # is their mean cosine
    alone = []
    for i, net in enumerate(emb.nets):
        one = LearnedImageEmbedder(dataclasses.replace(cfg, members=1, seed=cfg.seed + i),
                                   [net], [emb.prototypes[i]])
        alone.append(one.embed_images(flags[:3]) @ one.kb_vectors(flags).T)
    assert np.allclose(q @ kb.T, np.mean(alone, axis=0), atol=1e-5)
    # member 0 trained exactly as a one-network embedder of the same seed
    single = LearnedImageEmbedder.create(dataclasses.replace(cfg, members=1))
    single.train(flags, progress=False)
    assert torch.equal(single.prototypes[0], emb.prototypes[0])
    emb.save(tmp_path)
    again = LearnedImageEmbedder.load(tmp_path)
    assert again.config == cfg and np.array_equal(again.kb_vectors(flags), kb)
    with pytest.raises(ValueError, match="members"):
        LearnedConfig(members=0)


def test_one_member_keeps_the_file_layout(flags, tmp_path):
    from safetensors.torch import load_file

    emb = LearnedImageEmbedder.create(LearnedConfig(steps=2, batch_size=8, channels=8, dim=16))
    emb.train(flags, progress=False)
    emb.save(tmp_path)
    names = set(load_file(str(tmp_path / "image_embedder.safetensors")))
    assert "prototypes" in names and all(n == "prototypes" or n.startswith("net.")
                                         for n in names)


def test_load_missing_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="image_embedder"):
        LearnedImageEmbedder.load(tmp_path)


def test_thumbnail_baseline(flags):
    emb = ThumbnailEmbedder()
    v = emb.embed_images(flags)
    assert v.shape == (len(flags), 16 * 12 * 3)
    assert (v @ v.T).argmax(axis=1).tolist() == list(range(len(flags)))
