"""What a user gets without naming it: the default model of every entry point.

`pixsearch ask`, `serve`, `demo`, `eval run`, `Predictor.load()` and the recipes that extend a
trained model all start from `DEFAULT_MODEL` (a preset name whose trained weights ship in
`pixsearch/weights/<name>`). Kept in a module of its own, with no imports, so the command-line
parsers can show it without loading the library.
"""

DEFAULT_MODEL = "mini"
