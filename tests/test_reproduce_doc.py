"""The commands of docs/reproduce.md, on the benchmark fixtures (same folder layout, `tiny`).

The default suite parses every command with the real CLI parser and reads the data it names
(format, paths, split); the slow test runs them all, in the document's order, and checks that
the reports hold the paper's tables."""

from __future__ import annotations

import glob
import re
import shlex
from pathlib import Path

import pytest
from benchmark_fixtures import write_all

from pixsearch.cli import build_parser, main

DOC = Path(__file__).resolve().parents[1] / "docs" / "reproduce.md"
_LOOP = re.compile(r"^for (\w+) in ([^;]+); do (.+); done$")


def doc_commands() -> list[str]:
    """Every `pixsearch` command line of the document's bash blocks, loops unrolled."""
    blocks = re.findall(r"```bash\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    out = []
    for line in (raw.strip() for block in blocks for raw in block.splitlines()):
        loop = _LOOP.match(line)
        if loop:
            var, values, body = loop.groups()
            out += [body.replace(f"${var}", v) for v in values.split()]
        elif line.startswith("pixsearch "):
            out.append(line)
    return out


def argv(command: str, env: dict[str, str], expand: bool = True) -> list[str]:
    """The command's arguments with the document's variables set to `env` and (`expand`)
    globs expanded."""
    for key, value in env.items():
        command = command.replace(f"${key}", value)
    assert "$" not in command, f"unknown variable in {command}"
    args = shlex.split(command)[1:]
    return [x for a in args for x in (sorted(glob.glob(a)) if expand and "*" in a else [a])]


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    write_all(tmp_path / "data")
    return {"DATA": str(tmp_path / "data"), "MODEL": "tiny", "INDEX": str(tmp_path / "kb"),
            "RUNS": str(tmp_path / "runs"), "DEVICE": "cpu"}


def test_the_document_covers_every_table_and_format():
    commands = doc_commands()
    text = " ".join(commands)
    for fmt in ("crag-mm", "infoseek", "oven", "textvqa", "hotpotqa", "nq-open", "popqa",
                "musique", "refcoco", "refcoco+", "refcocog", "ade20k", "coco-stuff"):
        assert f"--format {fmt} " in text
    assert sum("--split testB" in c for c in commands) == 2  # RefCOCO, RefCOCO+
    assert any(c.startswith("pixsearch index build --from wiki6m") for c in commands)
    assert any(c.startswith("pixsearch eval report") for c in commands)


def test_every_command_parses_and_reads_its_fixture(env):
    from pixsearch.cli.eval import eval_config
    from pixsearch.data.formats.wiki6m import Wiki6MSource
    from pixsearch.eval.runner import load_eval_records

    parser = build_parser()
    for command in doc_commands():
        args = parser.parse_args(argv(command, env, expand=False))  # no runs yet
        if args.verb == "eval" and args.eval_cmd in ("run", "sweep"):
            records = load_eval_records(eval_config(args))
            assert records, command
        elif args.verb == "index":
            assert args.source == "wiki6m"
            assert next(Wiki6MSource(args.docs, args.images).documents()).id == "Q1"


@pytest.mark.slow
def test_every_command_runs_end_to_end(env):
    for command in doc_commands():
        assert main(argv(command, env)) == 0, command
    runs = Path(env["RUNS"])
    report = (runs / "report" / "report.md").read_text()
    for n in (2, 3, 4, 5):
        assert f"## Table {n}:" in report
    assert "| – |" not in next(line for line in report.splitlines()
                               if line.startswith("| segment (no search) | "))  # Table 4 full
    sweep = (runs / "crag-mm" / "report" / "report.md").read_text()
    assert "## Table 1:" in sweep and "## Table 7:" in sweep
