"""One home for paths: every default folder follows `$PIXSEARCH_HOME` (default
~/.cache/pixsearch), the flag reader looks where setup installs, and no other module reads the
environment for paths. HOME is monkeypatched, so nothing here needs ~/.cache/pixsearch."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from pixsearch import paths
from pixsearch.train.config import TrainConfig, resolve_path, world_dir
from pixsearch.world import flags

SRC = Path(__file__).parents[1] / "src" / "pixsearch"
SCRIPTS = Path(__file__).parents[1] / "scripts"


@pytest.fixture
def fake_home(monkeypatch, tmp_path) -> Path:
    """HOME is an empty folder; no PIXSEARCH_* variable is set."""
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    for name in (paths.HOME_ENV, paths.FLAGS_DIR_ENV, "PIXSEARCH_CACHE"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def test_default_home_is_under_the_user_cache(fake_home):
    home = fake_home / "user" / ".cache" / "pixsearch"
    assert paths.pixsearch_home() == home
    assert paths.world_dir() == home / "world"
    assert paths.model_dir("mini") == home / "models" / "mini"
    assert world_dir(TrainConfig()) == home / "world"


def test_every_folder_follows_pixsearch_home(fake_home, monkeypatch):
    home = fake_home / "ph"
    monkeypatch.setenv(paths.HOME_ENV, str(home))
    assert paths.pixsearch_home() == home
    assert {paths.world_dir(), paths.models_dir(), paths.cache_dir(), paths.npm_prefix(),
            paths.flag_rasters_dir()} == {home / n for n in
                                          ("world", "models", "cache", "npm", "flag_rasters")}
    assert paths.flags_dir() == home / "npm" / "node_modules" / "flag-icons" / "flags" / "4x3"
    assert flags._raster_cache_dir().parent == home / "flag_rasters"
    assert f"--prefix {home / 'npm'} flag-icons@{paths.FLAG_ICONS_VERSION}" in flags.install_hint()
    # configured paths: $PIXSEARCH_HOME / ${PIXSEARCH_HOME}, other variables and ~
    monkeypatch.setenv("RUNS", "/r")
    assert resolve_path("$PIXSEARCH_HOME/runs/x") == home / "runs" / "x"
    assert resolve_path("${PIXSEARCH_HOME}/w") == home / "w"
    assert resolve_path("$RUNS/a") == Path("/r/a")
    assert resolve_path("~/b") == fake_home / "user" / "b"
    assert world_dir(TrainConfig(world="$PIXSEARCH_HOME/other")) == home / "other"
    # the old second variable is gone: it moves nothing
    monkeypatch.setenv("PIXSEARCH_CACHE", str(fake_home / "elsewhere"))
    assert paths.cache_dir() == home / "cache"


def test_the_flag_reader_looks_where_setup_installs(fake_home, monkeypatch):
    """The bug of issue #11: with PIXSEARCH_HOME set, the flags were still looked for in
    ~/.cache/pixsearch/npm."""
    home = fake_home / "ph"
    monkeypatch.setenv(paths.HOME_ENV, str(home))
    with pytest.raises(FileNotFoundError, match=re.escape(str(home / "npm"))):
        flags.flags_dir()
    svgs = home / "npm" / "node_modules" / "flag-icons" / "flags" / "4x3"
    svgs.mkdir(parents=True)
    (svgs / "pe.svg").write_text("<svg/>")
    (svgs / "gb-eng.svg").write_text("<svg/>")
    assert flags.flags_dir() == svgs and flags.flag_codes() == ["PE"]
    other = fake_home / "mine"
    other.mkdir()
    (other / "fr.svg").write_text("<svg/>")
    monkeypatch.setenv(paths.FLAGS_DIR_ENV, str(other))
    assert flags.flag_codes() == ["FR"]


def test_setup_takes_the_prefix_and_version_from_python(fake_home, monkeypatch):
    """scripts/setup.sh asks `pixsearch.paths` (no second copy of the version or the home)."""
    setup = (SCRIPTS / "setup.sh").read_text()
    assert paths.FLAG_ICONS_VERSION not in setup and ".cache/pixsearch" not in setup
    line = next(x for x in setup.splitlines() if "from pixsearch.paths import" in x)
    code = line.split('"')[1]
    home = fake_home / "ph"
    env = {"HOME": str(fake_home / "user"), paths.HOME_ENV: str(home), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env=env)
    assert out.stdout.split() == [str(home / "npm"), paths.FLAG_ICONS_VERSION]


def test_only_paths_py_reads_the_environment_for_paths():
    pattern = re.compile(r"(environ|getenv)\b.*PIXSEARCH|Path\.home\(\)|[\"']\.cache[\"']")
    offenders = [f"{p.relative_to(SRC)}:{i}" for p in SRC.rglob("*.py") if p.name != "paths.py"
                 for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert offenders == []
