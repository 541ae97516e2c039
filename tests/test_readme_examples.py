"""The README's "Use" examples run: every `pixsearch` command of its shell block and its Python
block, from a folder laid out like the repository (`src/` for the shipped sample scene) with
the files the examples assume (`docs.jsonl`, `kb_images/`) and the default world index in
place. The fast test swaps in the `tiny` model and a quick image embedder and says so; the
slow one runs them exactly as written, with the shipped default model."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
from PIL import Image

from pixsearch.assets import sample_scene
from pixsearch.cli import main

ROOT = Path(__file__).resolve().parents[1]


def readme_examples() -> tuple[list[list[str]], str]:
    """(argv of each `pixsearch` command, the Python code) of the README's "Use" section."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    use = text.split("\n## Use", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```(bash|python)\n(.*?)```", use, re.S)
    commands = [shlex.split(line)[1:] for lang, body in blocks if lang == "bash"
                for line in body.splitlines() if line.startswith("pixsearch ")]
    python = [body for lang, body in blocks if lang == "python"]
    assert commands and len(python) == 1, "the README's Use section changed shape"
    return commands, python[0]


def test_readme_points_at_the_shipped_scene():
    commands, python = readme_examples()
    images = [argv[argv.index("--image") + 1] for argv in commands if "--image" in argv]
    assert images and all((ROOT / p).is_file() for p in images), images
    assert "sample_scene()" in python and sample_scene().is_file()
    Image.open(sample_scene()).verify()


@pytest.fixture
def workspace(tmp_path, monkeypatch, colour_index):
    """A working folder like the repository root, with the user's files the examples name
    and $PIXSEARCH_HOME whose world index is a real (small) knowledge index."""
    (tmp_path / "src").symlink_to(ROOT / "src", target_is_directory=True)
    docs = [{"id": "ca", "title": "Canada", "text": "Canada's flag is red and white with a "
             "maple leaf. Its capital is Ottawa.", "entity": "CA", "kind": "card"},
            {"id": "ch", "title": "Switzerland", "text": "Switzerland's flag is a white cross "
             "on red. Its capital is Bern.", "entity": "CH", "kind": "card"}]
    (tmp_path / "docs.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    kb = tmp_path / "kb_images"
    kb.mkdir()
    for d, rgb in zip(docs, ((220, 30, 30), (200, 20, 40))):
        Image.new("RGB", (64, 48), rgb).save(kb / f"{d['id']}.png")
    (kb / "images.jsonl").write_text("".join(
        json.dumps({"id": f"img-{d['id']}", "path": f"{d['id']}.png", "doc_id": d["id"]}) + "\n"
        for d in docs))
    home = tmp_path / "home"
    (home / "world").mkdir(parents=True)
    (home / "world" / "index").symlink_to(colour_index.root, target_is_directory=True)
    monkeypatch.setenv("PIXSEARCH_HOME", str(home))
    monkeypatch.chdir(tmp_path)
    return tmp_path, home / "world" / "index"


def _run_examples(capsys, fast: bool) -> None:
    commands, python = readme_examples()
    for argv in commands:
        if fast and argv[0] == "ask" and "--model" not in argv:
            argv = [*argv, "--model", "tiny"]  # seconds instead of loading the default each time
        if fast and argv[:2] == ["index", "build"]:
            argv = [*argv, "image_embedder=thumbnail-16x12"]  # no embedder training
        assert main(argv) == 0, argv
        out = capsys.readouterr().out
        if "--json" in argv:
            json.loads(out)  # --json prints the answer and its trace as one JSON document
        else:
            assert out.strip(), argv
    code = python.replace("~/.cache/pixsearch/world/index", str(Path("home/world/index")))
    if fast:
        code = re.sub(r'Predictor\.load\("[^"]+"', 'Predictor.load("tiny"', code)
    exec(compile(code, "README.md (Use)", "exec"), {})
    assert capsys.readouterr().out.strip()  # it printed the answer and its trace


def test_readme_examples_run(workspace, capsys):
    _run_examples(capsys, fast=True)
    assert (workspace[0] / "my_index").is_dir()  # the index the README builds and then uses


@pytest.mark.slow
def test_readme_examples_run_as_written(workspace, capsys):
    _run_examples(capsys, fast=False)


def test_sample_scene_and_type_marker_ship_in_the_wheel():
    tomllib = pytest.importorskip("tomllib")
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"]["pixsearch"]
    package = ROOT / "src" / "pixsearch"
    shipped = {p for pattern in patterns for p in package.glob(pattern)}
    assert package / "py.typed" in shipped and sample_scene() in shipped
