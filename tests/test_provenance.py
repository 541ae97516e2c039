"""Run provenance: what `provenance.json` holds, and that world, index and evaluation run
folders get one (training runs and model folders: tests/test_tracking.py)."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

from pixsearch import provenance
from pixsearch.cli import main
from pixsearch.provenance import PROVENANCE, collect, read_provenance, write_provenance

ROOT = Path(__file__).resolve().parents[1]
IN_CHECKOUT = (ROOT / ".git").exists()


def _check(prov: dict, kind: str) -> None:
    assert prov["kind"] == kind
    assert prov["pixsearch"] and prov["python"]
    for package in ("numpy", "pillow", "torch", "transformers"):
        assert package in prov["packages"], package
    machine = prov["machine"]
    assert machine["cpu_count"] >= 1 and machine["cpu"] and machine["os"]
    if IN_CHECKOUT:
        assert re.fullmatch(r"[0-9a-f]{40}", prov["git"]["commit"])
        assert isinstance(prov["git"]["dirty"], bool)
    assert prov["command"] and prov["cwd"]


def test_collect_records_versions_commit_command_machine_and_time(tmp_path):
    import torch  # loaded: its threads and GPUs are recorded too

    prov = collect("eval", wall_seconds=12.5, records=3)
    _check(prov, "eval")
    assert prov["records"] == 3 and prov["wall_seconds"] == 12.5
    assert prov["machine"]["torch_threads"] == torch.get_num_threads()
    assert prov["machine"]["gpus"] == ([torch.cuda.get_device_name(i) for i in
                                        range(torch.cuda.device_count())]
                                       if torch.cuda.is_available() else [])
    start, end = (dt.datetime.fromisoformat(prov[k]) for k in ("started_at", "finished_at"))
    assert 12 <= (end - start).total_seconds() <= 14
    path = write_provenance(tmp_path, "index", 1.0)
    assert path.name == PROVENANCE and read_provenance(tmp_path)["kind"] == "index"
    assert read_provenance(tmp_path / "nothing") is None


def test_the_cli_records_its_own_command_line(tmp_path, capsys):
    """Runs started in-process (notebooks, tests) record the `pixsearch` command, not the
    host's argv; afterwards the host's argv is back."""
    from pixsearch.eval.report import combine_runs

    run = tmp_path / "run"
    run.mkdir()
    scores = json.loads((ROOT / "docs/results/mini/test_full/scores.json").read_text())
    (run / "scores.json").write_text(json.dumps(scores))
    assert main(["eval", "report", str(run), "--out", str(tmp_path / "report")]) == 0
    prov = read_provenance(tmp_path / "report")
    _check(prov, "report")
    assert prov["command"] == ["pixsearch", "eval", "report", str(run), "--out",
                               str(tmp_path / "report")]
    assert provenance.command_line()[0] != "pixsearch"
    combine_runs([run], tmp_path / "again")
    assert read_provenance(tmp_path / "again")["runs"] == [str(run)]


def test_world_and_index_folders_record_provenance(small_world):
    _check(read_provenance(small_world), "world")
    assert read_provenance(small_world)["wall_seconds"] > 0
    # the index writes its own (inside its current version folder)
    found = [json.loads(p.read_text()) for p in (small_world / "index").rglob(PROVENANCE)]
    assert found and all(p["kind"] == "index" for p in found)
    _check(found[0], "index")
