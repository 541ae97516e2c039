"""Prompt files of the LLM annotator (`pixsearch.construct.prompts.load_prompt`).

One file per construction step (`select.md`, `decompose.md`, `respond.md`, `refine.md`,
`query_type.md`): instructions, in-context examples of the kinds the paper describes, then the
query block with `$name` fields (`string.Template`) that the step fills in. They are written as
completions (the model continues after the last line), which serves base models and, sent as
one user message, chat models alike. `--prompts DIR` replaces them with a user's own files.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from string import Template

STEPS = ("select", "decompose", "respond", "refine", "query_type")


def load_prompt(step: str, folder: str | Path | None = None) -> Template:
    """The prompt template of `step`, from `folder` when given, else the packaged one."""
    if step not in STEPS:
        raise ValueError(f"unknown construction step {step!r}; one of {', '.join(STEPS)}")
    if folder is not None:
        path = Path(folder) / f"{step}.md"
        if not path.is_file():
            raise FileNotFoundError(f"no prompt file for step {step!r} at {path}")
        return Template(path.read_text(encoding="utf-8"))
    text = resources.files(__name__).joinpath(f"{step}.md").read_text(encoding="utf-8")
    return Template(text)


def render(template: Template, **fields: str) -> str:
    """The prompt with its `$fields` filled in (KeyError names a missing field)."""
    return template.substitute(**fields).rstrip("\n")
