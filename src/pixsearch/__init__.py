"""PixSearch: pixel-grounded retrieval for knowledgeable large multimodal models.

The library: contracts (`types`, `tokens`, `render`, `config`), the segmenting LMM (`model`),
search-interleaved decoding (`decode`), retrieval (`retrieval`), data (`data`), training
(`train`), evaluation (`eval`) and serving (`serve`). Applications (the `pixsearch` CLI,
benchmarks) import the library; the library never imports them.
"""

__version__ = "0.1.0"
