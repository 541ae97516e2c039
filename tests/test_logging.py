"""Output conventions: the library speaks through `logging` and `pixsearch.logs.progress_bar`
only; the CLI's `-q` leaves nothing on stderr (library messages, progress bars, transformers'
warnings and bars), `-v` shows debug messages; `pixsearch --version` names the dependencies."""

from __future__ import annotations

import ast
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
from eval_fixture import scene

from pixsearch.cli import configure_logging, main
from pixsearch.logs import progress_bar, progress_bars_enabled
from pixsearch.masks import mask_to_rle
from pixsearch.provenance import read_provenance

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "pixsearch"


def _calls(tree: ast.AST) -> list[str]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.id if isinstance(f, ast.Name) else (
                f"{getattr(f.value, 'id', '?')}.{f.attr}" if isinstance(f, ast.Attribute) else "")
            out.append(name)
    return out


def test_library_never_prints_and_makes_bars_through_progress_bar():
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] == "cli":  # the CLI's own output is what it is for
            continue
        for name in _calls(ast.parse(path.read_text(encoding="utf-8"))):
            if name in ("print", "tqdm", "trange", "tqdm.tqdm", "tqdm.write", "sys.stdout.write",
                        "sys.stderr.write") and rel != Path("logs.py"):
                bad.append(f"{rel}: {name}(...)")
    assert not bad, "use logging.getLogger(__name__) / pixsearch.logs.progress_bar:\n" + \
        "\n".join(bad)


def _records(root: Path) -> Path:
    """Two questions about a drawn scene, in the project's record format."""
    img, masks = scene(["RED", "GRN"], ego=True)
    img.save(root / "s.png")
    rec = {"image": "s.png", "question": "Which country's flag is on the left?",
           "answer": "Redland", "ego": True, "split": "test", "needs_search": True,
           "entities": [{"code": "RED"}, {"code": "GRN"}], "target": 0,
           "masks": [mask_to_rle(m) for m in masks]}
    path = root / "records.jsonl"
    path.write_text("".join(json.dumps({**rec, "id": f"r{i}"}) + "\n" for i in range(2)))
    return path


def test_quiet_cli_prints_no_library_output(colour_index, tmp_path, capfd):
    argv = ["eval", "run", "--data", str(_records(tmp_path)), "--index",
            str(colour_index.root), "--model", "tiny", "--max-new-tokens", "4"]
    assert main([*argv, "--out", str(tmp_path / "loud")]) == 0
    loud = capfd.readouterr()
    assert "eval full" in loud.err  # the progress bar: there is library output to silence
    assert main(["-q", *argv, "--out", str(tmp_path / "quiet")]) == 0
    quiet = capfd.readouterr()
    assert quiet.err == "", quiet.err
    assert "2 records" in quiet.out  # the verb's own result still prints
    assert progress_bars_enabled()  # -q lasts for its command only
    prov = read_provenance(tmp_path / "quiet")  # the run folder says how it was made
    assert prov["kind"] == "eval" and prov["command"][:4] == ["pixsearch", "-q", "eval", "run"]
    assert "torch" in prov["packages"] and prov["wall_seconds"] > 0


def test_quiet_silences_transformers_warnings_and_bars():
    """Through transformers' own settings: after it is imported (its logging utilities) and
    before (the environment it reads, which worker processes inherit too)."""
    probe = ("hf.get_logger('transformers.probe').warning('{}'); "
             "print('bars', hf.is_progress_bar_enabled())")
    quiet = "from pixsearch.cli import configure_logging; configure_logging(quiet=True); "
    after = ("from transformers.utils import logging as hf; " + probe.format("LOUD BEFORE -q")
             + "; " + quiet + probe.format("LOUD AFTER -q"))
    before = quiet + "from transformers.utils import logging as hf; " + probe.format("LOUD")
    for code, expected_bars in ((after, ["bars True", "bars False"]), (before, ["bars False"])):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == 0, out.stderr
        assert out.stdout.split("\n")[:-1] == expected_bars, out.stdout
        # the probe is heard when not quiet (so silence below is -q's doing)
        assert ("LOUD BEFORE -q" in out.stderr) is (code == after), out.stderr
        assert "LOUD AFTER -q" not in out.stderr and "LOUD\n" not in out.stderr, out.stderr


def test_verbosity_levels_and_progress_bars():
    try:
        configure_logging(verbose=1)
        assert logging.getLogger("pixsearch").getEffectiveLevel() == logging.DEBUG
        configure_logging(quiet=True)
        assert logging.getLogger("pixsearch").getEffectiveLevel() == logging.ERROR
        assert not progress_bars_enabled() and progress_bar(range(3)).disable
    finally:
        configure_logging()
        from pixsearch.logs import enable_progress_bars

        enable_progress_bars()
    assert logging.getLogger("pixsearch").getEffectiveLevel() == logging.INFO
    assert not progress_bar(range(3), disable=False).disable


def test_version_names_the_key_dependencies(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    import pixsearch

    assert out.startswith(f"pixsearch {pixsearch.__version__}")
    for package in ("torch", "transformers", "accelerate", "faiss-cpu", "numpy"):
        assert f"\n{package} " in out, package
