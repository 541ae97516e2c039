"""Stage-2 data construction: turn any visual-question data into search-interleaved
training trajectories for your own knowledge base (`pixsearch construct`).

The pipeline (`pipeline.Constructor`) follows the paper's §4.3 / Fig. 3: question selection
(`selection.py`), decomposition (`decompose.py`), N candidate responses and self-refinement
(`responses.py`, plans in `plan.py`), query construction and type assignment (`queries.py`),
then real searches with evidence checks and repair (`execute.py`). Decisions come from an
annotator: rules (`rule.py`) or a language model (`llm_annotator.py` over `llm.py`'s
OpenAI-compatible client, cached by `cache.py`; `llm_local.py` serves Gemma 3 270M offline).
Region masks come from a segmentation back-end (`segmentation.py`, `seg_model.py`,
`seg_grounded_sam.py`). Statistics: `stats.py`.
"""
