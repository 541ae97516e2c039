"""The decode shorthands shared by `ask`, `serve` and `eval`: one mapping of flags to
`DecodeConfig` fields (eval writes them into `EvalConfig.decode`), YAML ← flags ← overrides,
and `pixsearch ask` end to end with the tiny model on the small colour index."""

from __future__ import annotations

import json

import pytest

from pixsearch.cli import build_parser, main
from pixsearch.cli.eval import eval_config
from pixsearch.cli.options import decode_config
from pixsearch.decode.config import DecodeConfig

FLAGS = ["--max-new-tokens", "7", "--max-searches", "2", "--modalities", "region,text",
         "--top-k", "5", "--temperature", "0.5"]
EXPECTED = {"max_new_tokens": 7, "max_searches": 2, "modalities": ("region", "text"),
            "top_k": 5, "temperature": 0.5}


def _fields(cfg: DecodeConfig) -> dict:
    return {k: getattr(cfg, k) for k in EXPECTED}


@pytest.mark.parametrize("verb", [["ask", "-q", "x"], ["serve"]])
def test_ask_and_serve_map_the_flags_to_decode_fields(verb):
    args = build_parser().parse_args([*verb, *FLAGS])
    assert _fields(decode_config(args, args.overrides)) == EXPECTED
    # absent flags leave the config's own defaults
    args = build_parser().parse_args(verb)
    assert decode_config(args, args.overrides) == DecodeConfig()


def test_eval_writes_the_same_flags_into_its_decode_config(tmp_path):
    args = build_parser().parse_args(["eval", "run", "--data", "x.jsonl", "--out", str(tmp_path),
                                      *FLAGS, "decode.evidence_max_words=60", "limit=3"])
    cfg = eval_config(args)
    assert _fields(cfg.decode) == EXPECTED and cfg.decode.evidence_max_words == 60
    assert cfg.limit == 3


def test_yaml_then_flags_then_overrides(tmp_path):
    yaml_file = tmp_path / "decode.yaml"
    yaml_file.write_text("max_searches: 2\ntop_k: 4\ntemperature: 0.2\n")
    args = build_parser().parse_args(["ask", "-q", "x", "--decode-config", str(yaml_file),
                                      "--max-searches", "unbounded", "--top-k", "6",
                                      "top_k=1"])
    cfg = decode_config(args, args.overrides)
    # a given "unbounded" budget overrides the YAML's 2 (it is not "flag absent")
    assert (cfg.max_searches, cfg.top_k, cfg.temperature) == (None, 1, 0.2)


def test_pixsearch_ask_end_to_end(colour_index, tmp_path, capsys):
    from scripted import colour_scene

    image = tmp_path / "scene.png"
    colour_scene().save(image)
    assert main(["ask", "--image", str(image), "-q", "Which flag is this?", "--model", "tiny",
                 "--index", str(colour_index.directory), "--max-new-tokens", "6",
                 "--max-searches", "0", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["trace"]["steps"] == [] and answer["trace"]["n_generated"] <= 6
