"""PixSearch retrieval: embedders, vector stores, the knowledge index, crops, evidence, serving.

The search API is `search(query, k) -> list[Hit]` (`SearchAPI`); `KnowledgeIndex` is the
in-process implementation, `HTTPSearch` the HTTP client, `CragMMSearch` the CRAG-MM adapter,
`CachedSearch` a record/replay wrapper of any of them. Index builds at corpus scale:
`IndexBuilder` (`builder.py`: streamed `sources`, per-chunk work in `chunks`, checkpointed
`shards`, `assemble`d versions published atomically by `layout`, the Ray engine in
`ray_build`); vector indexes by size in `vector_index` / `store`, or on Milvus
(`milvus_store`, `milvus_backend`, `milvus_server`).
Heavy dependencies (faiss, the encoders, torch) load only when the submodules that need them
are imported.
"""

from pixsearch.retrieval.api import QueryLike, SearchAPI
from pixsearch.retrieval.crop import crop
from pixsearch.retrieval.evidence import format_evidence

__all__ = ["QueryLike", "SearchAPI", "crop", "format_evidence"]
