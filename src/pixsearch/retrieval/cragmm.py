"""Adapter of CRAG-MM's search API (`cragmm-search-pipeline`) to PixSearch's `SearchAPI`.

CRAG-MM ships `cragmm_search.search.UnifiedSearchPipeline`: called with a PIL image it runs
image search and returns `[{"score", "url", "entities": [{"entity_name",
"entity_attributes": {...}}]}]`; called with a string it runs web search and returns
`[{"score", "page_name", "page_url", "page_snippet"}]`. Region queries are cropped first
(tight, background suppressed, as for the local index) and sent as image searches.

Tested against the real package (`tests/test_cragmm_real.py`, a local collection, no
download). Its version 0.5.1 needs transformers < 5 — it uses
`CLIPModel.get_image_features()` as a tensor, which transformers 5 wraps in an output object
— so it runs in its own virtualenv (`scripts/cragmm_venv.sh`); this adapter needs only
numpy and Pillow there. The pipeline loads its models with `from_pretrained` and its
collections with `huggingface_hub.snapshot_download`, so offline it needs local model folders
and the collections in the Hugging Face cache (`HF_HUB_OFFLINE=1`, `HF_HUB_CACHE`).
"""

from __future__ import annotations

from typing import Any

from pixsearch.retrieval.api import QueryLike
from pixsearch.retrieval.crop import crop
from pixsearch.types import Hit, Query

INSTALL_HINT = "pip install cragmm-search-pipeline (CRAG-MM's search API package)"


def _attributes_text(attrs: Any) -> str:
    if isinstance(attrs, dict):
        return "; ".join(f"{k}: {v}" for k, v in attrs.items() if v not in (None, "", []))
    return "" if attrs is None else str(attrs)


def image_hits(results: list[dict]) -> list[Hit]:
    """Image-search results → one hit per entity (best image first, entities deduplicated)."""
    hits: list[Hit] = []
    seen: set[str] = set()
    for r in results:
        for ent in r.get("entities") or []:
            name = str(ent.get("entity_name") or r.get("url") or "")
            if not name or name in seen:
                continue
            seen.add(name)
            hits.append(Hit(doc_id=name, title=name, score=float(r.get("score", 0.0)),
                            text=_attributes_text(ent.get("entity_attributes")), entity=name,
                            via=str(r.get("url") or r.get("index") or "image")))
    return hits


def web_hits(results: list[dict]) -> list[Hit]:
    """Web-search results → one hit per page."""
    return [Hit(doc_id=str(r.get("page_url") or r.get("page_name") or i),
                title=str(r.get("page_name") or ""), score=float(r.get("score", 0.0)),
                text=str(r.get("page_snippet") or ""), via="text")
            for i, r in enumerate(results)]


class CragMMSearch:
    """`SearchAPI` over a CRAG-MM `UnifiedSearchPipeline` (or any object called the same way).

    Args:
        pipeline: a ready pipeline; if None one is built with `pipeline_kwargs`
            (e.g. `image_model_name`, `image_hf_dataset_id`, `text_model_name`,
            `web_hf_dataset_id`).
    """

    def __init__(self, pipeline: Any | None = None, **pipeline_kwargs: Any) -> None:
        if pipeline is None:
            try:
                from cragmm_search.search import UnifiedSearchPipeline
            except ImportError as e:
                raise ImportError(f"the CRAG-MM adapter needs cragmm_search: {INSTALL_HINT}") from e
            pipeline = UnifiedSearchPipeline(**pipeline_kwargs)
        if not callable(pipeline):
            raise TypeError("pipeline must be callable as pipeline(image_or_text, k=...)")
        self.pipeline = pipeline

    def search(self, query: QueryLike, k: int = 5) -> list[Hit]:
        q = Query.of(query)
        if q.modality == "text":
            return web_hits(self.pipeline(q.text, k=k) or [])[:k]
        image = crop(q.image, q.mask)[0] if q.modality == "region" else q.image
        return image_hits(self.pipeline(image, k=k) or [])[:k]
