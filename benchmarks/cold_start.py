"""Cold starts of the `pixsearch` command, measured as whole processes (wall clock, best of N).

    python benchmarks/cold_start.py [-n 3] [--model gemma-270m] [--index DIR] [--image PATH] [-q TEXT]

`help`: `pixsearch --help` (parsing only: no torch, no model). `ask`: `pixsearch ask --json` on
one scene (default: the first test scene of the world at `$PIXSEARCH_HOME/world`), a new
process each time — imports, model load, index open, the answer. The answer's own time
(`trace.timings.total`, prefill + decoding + searches) is read from the JSON, so
`start = ask - answer` is the start-up cost the issue bounds (≤ 5 s on a quiet 2-core box).
"Cold" means a new process; the OS file cache stays warm, as it is for a user's second
command, and so does Python's bytecode cache — unless PYTHONDONTWRITEBYTECODE is set and the
sources were never compiled, which the benchmark points out (then every start compiles
pixsearch's ~70 modules, ~0.1-0.2 s that an installed copy does not pay). The machine's load
average is printed before and after: other jobs slow both numbers. Prints every run, then
the best of each; the last line is `help_s=<x> ask_s=<y> floor_s=<z>` (best wall times).

The floor is a bare interpreter importing torch and `transformers`' modelling base (which every
preset's LM and SAM mask decoder classes build on), best of N: the part of a start that no
setting of PixSearch's own moves, printed beside the start so the two can be compared.

`--compile` writes pixsearch's bytecode next to its sources first (`compileall`, what `pip
install` does for an installed copy; `__pycache__` is git-ignored), for machines where
PYTHONDONTWRITEBYTECODE keeps every start compiling them.

`--imports` first runs one more `ask` under `python -X importtime` and prints where its import
time goes, per top-level package (self time summed over the package's modules, in seconds;
importtime's own bookkeeping inflates it a little): the part of a start that no setting of
PixSearch's own moves.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from pixsearch.defaults import DEFAULT_MODEL


def pixsearch_command(script_ok: bool = True) -> list[str]:
    """The console script next to this interpreter, else the same entry point via `-c`."""
    script = Path(sys.executable).with_name("pixsearch")
    if script_ok and script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from pixsearch.cli import main; sys.exit(main())"]


def timed(argv: list[str]) -> tuple[float, float, str]:
    """Wall seconds and CPU seconds (user + system) of one process, and its stdout (a failure
    stops the benchmark). On a busy machine the CPU time is the steadier number: it is what
    the wall time tends to on a quiet one, for the mostly single-threaded start-up."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run(argv, capture_output=True, text=True, env=os.environ.copy())
    took = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({out.returncode}):\n{out.stderr[-2000:]}")
    return took, cpu, out.stdout


def bytecode_note() -> str | None:
    """A warning when pixsearch is compiled from source on every start (bytecode caching off
    and no cached bytecode next to the sources), else None."""
    import importlib.util

    if not os.environ.get("PYTHONDONTWRITEBYTECODE"):
        return None
    spec = importlib.util.find_spec("pixsearch.predictor")
    if spec is None or spec.cached is None or Path(spec.cached).exists():
        return None
    return ("note: PYTHONDONTWRITEBYTECODE is set and pixsearch has no cached bytecode: every "
            "start compiles its modules from source, which an installed copy does not")


def import_breakdown(argv: list[str], top: int = 12) -> list[tuple[str, float, int]]:
    """(package, self seconds, modules) of the imports of one run of `argv` (a Python
    command line) under `-X importtime`, largest first; `top` packages, the rest summed."""
    import re
    from collections import defaultdict

    out = subprocess.run([argv[0], "-X", "importtime", *argv[1:]], capture_output=True,
                         text=True, env=os.environ.copy())
    if out.returncode != 0:
        raise SystemExit(f"importtime run failed ({out.returncode}):\n{out.stderr[-2000:]}")
    seconds: dict[str, float] = defaultdict(float)
    count: dict[str, int] = defaultdict(int)
    for line in out.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+\d+ \|\s*(\S+)", line)
        if m:
            package = m[2].split(".")[0]
            seconds[package] += int(m[1]) / 1e6
            count[package] += 1
    ranked = sorted(seconds.items(), key=lambda kv: -kv[1])
    rows = [(name, sec, count[name]) for name, sec in ranked[:top]]
    rest = ranked[top:]
    if rest:
        rows.append((f"{len(rest)} others", sum(s for _, s in rest),
                     sum(count[n] for n, _ in rest)))
    return rows


# what any start of a model must import, before PixSearch runs a line of its own: torch, and the
# `transformers` modelling base that every preset's LM and mask decoder classes build on
FLOOR = {"python + torch": "import torch",
         "python + torch + transformers": "import torch, transformers.modeling_utils"}


def import_floor(n: int) -> dict[str, float]:
    """Best-of-`n` wall seconds of a bare interpreter importing each of `FLOOR`: the part of
    a cold `ask` that no setting of PixSearch's own can move."""
    return {name: min(timed([sys.executable, "-c", code])[0] for _ in range(n))
            for name, code in FLOOR.items()}


def compile_pixsearch() -> Path:
    """Write the bytecode of the pixsearch package next to its sources; returns its folder."""
    import compileall
    import importlib.util

    spec = importlib.util.find_spec("pixsearch")
    assert spec is not None and spec.submodule_search_locations, "pixsearch is not installed"
    folder = Path(next(iter(spec.submodule_search_locations)))
    if not compileall.compile_dir(str(folder), quiet=1):
        raise SystemExit(f"compiling {folder} failed")
    return folder


def default_scene() -> tuple[str, str]:
    """(image path, question) of the world's first test record."""
    from pixsearch import paths
    from pixsearch.data.records import read_records

    world = paths.world_dir()
    rec = read_records(world / "test.jsonl")[0]
    return str(world / rec.image), rec.question


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=3, help="runs of each command (best is kept)")
    ap.add_argument("--model", default=DEFAULT_MODEL, help="default: the default model")
    ap.add_argument("--index", default=None, help="default: the world's index")
    ap.add_argument("--image", default=None)
    ap.add_argument("-q", "--question", default=None)
    ap.add_argument("--compile", action="store_true",
                    help="write pixsearch's bytecode first (as an installed copy has it)")
    ap.add_argument("--imports", action="store_true",
                    help="first print the import time of one `ask` per top-level package")
    ap.add_argument("--no-script", action="store_true",
                    help="run `python -c` instead of the console script (to time another "
                         "checkout through PYTHONPATH)")
    args = ap.parse_args()
    cmd = pixsearch_command(not args.no_script)
    image, question = args.image, args.question
    if image is None or question is None:
        scene_image, scene_question = default_scene()
        image, question = image or scene_image, question or scene_question
    ask = [*cmd, "ask", "--model", args.model, "--image", image, "-q", question, "--json"]
    if args.index:
        ask += ["--index", args.index]
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores "
          "(other jobs slow both numbers)")
    if args.compile:
        print(f"compiled the bytecode of {compile_pixsearch()}")
    note = bytecode_note()
    if note:
        print(note)
    if args.imports:
        python = [sys.executable, "-c", pixsearch_command(False)[-1], *ask[len(cmd):]]
        rows = import_breakdown(python)
        print(f"imports of one `ask` (-X importtime, self time per package): "
              f"{sum(r[1] for r in rows):.2f} s in {sum(r[2] for r in rows)} modules")
        for name, sec, n in rows:
            print(f"  {name:24s} {sec:6.2f} s  {n:5d} modules")
    floor = import_floor(args.n)
    for name, took in floor.items():
        print(f"floor: {name:30s} {took:.2f} s")
    helps, asks = [], []
    for i in range(args.n):
        took, cpu, _ = timed([*cmd, "--help"])
        helps.append((took, cpu))
        print(f"help run {i + 1}: {took:.2f} s (cpu {cpu:.2f} s)")
    for i in range(args.n):
        took, cpu, out = timed(ask)
        answer = json.loads(out)
        total = answer["trace"]["timings"].get("total", 0.0)
        asks.append((took, total, cpu))
        print(f"ask  run {i + 1}: {took:.2f} s (answer {total:.2f} s, start {took - total:.2f} s;"
              f" cpu {cpu:.2f} s)  -> {answer['text']!r}")
    best_help, best_ask = min(helps), min(asks)
    print(f"best: help {best_help[0]:.2f} s (cpu {min(c for _, c in helps):.2f} s); ask "
          f"{best_ask[0]:.2f} s = start {best_ask[0] - best_ask[1]:.2f} s + answer "
          f"{best_ask[1]:.2f} s (cpu {min(c for *_, c in asks):.2f} s)")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print(f"help_s={best_help[0]:.2f} ask_s={best_ask[0]:.2f} "
          f"floor_s={max(floor.values()):.2f}")


if __name__ == "__main__":
    main()
