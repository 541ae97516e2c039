"""What a user gets without naming it: the default model of every entry point.

`pixsearch ask`, `serve`, `demo`, `eval run` and `Predictor.load()` start from `DEFAULT_MODEL`
(a preset name whose trained weights ship in `pixsearch/weights/<name>`). Kept in a module of
its own, with no imports, so the command-line parsers can show it without loading the library.
"""

# the better answers (issue #12: truthfulness +28.7 vs `mini`'s +17.1 on the world's test split,
# +26.9 vs +12.7 on entities never trained on); `mini` starts faster (no 1 GB base to read)
DEFAULT_MODEL = "gemma-270m"
