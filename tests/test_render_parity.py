"""Renderer parity: the ids, loss masks, BIO span tags and region slots of every sample of the
small world are the ones the renderer produced before turns became typed parts (issue #11).

`parity_hashes(world)` renders, with the shipped `mini` tokenizer and the `tiny` preset's,
every record of every split, the Stage-1 / Stage-2 pools of train and val (`build_pools`) and
the Stage-0 reading samples (`reading_samples`), and hashes what the renderer returned. The
hashes below were computed by running this file as a script on the code before the change
(`python tests/test_render_parity.py WORLD`, WORLD built with the `small` preset), and again
after it: equal. The `world` hash covers the records and `kb/docs.jsonl` (the small build is
deterministic: two builds gave identical files apart from `world.json`, whose config changed
shape), so a mismatch there means the world changed, not the renderer.

Stage-0 reading samples were to change on purpose with the one evidence budget (their evidence
is now cut to `EvidenceConfig.max_words` = 70 words instead of being unlimited); on the small
world no reading sample's evidence is longer than 58 words, so their hash is unchanged too. On
the full world the few entities whose three passages exceed 70 words (at most 81) are cut.

The hashes were recomputed (same command) when the world changed on purpose (paraphrased
questions and referring expressions, more training backgrounds, issue #12) and `mini` was
retrained with a new tokenizer; the renderer did not change then: `tiny/reading`, whose inputs
(the KB documents and the `tiny` tokenizer) stayed the same, kept its hash.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

from pixsearch.data.records import SPLITS, read_records
from pixsearch.render import Rendered, Renderer

MINI = Path(__file__).resolve().parents[1] / "src" / "pixsearch" / "weights" / "mini"

EXPECTED = {
    "world": "49b4372f3f4be0b1a07a8f664623d7a9e7876b02331cf41e0db9d08e5df3144f",
    "mini/records": "eb8bf51d1e3698c3bc5415faab6802e268123f838ae96d7d8de7c383ae3d950c",
    "mini/pools": "f8fd97cfe27961d92ea8a8910eca9d5cd4cf02a95bf38b2935f6a3c504e682ab",
    "mini/reading": "ab6f78d4d0ac7a9ea9e75768419c2461e4ff1381f4222cf7244cbe8866fb00c3",
    "tiny/records": "d667779f257a191bcd8e703bc8eccd2f0141fd14149db6c6788e3e2027273bed",
    "tiny/pools": "e699254c371935c055998e411254806c805cfa542f67d6da6c93982ebb69ef6b",
    "tiny/reading": "ef7c9326f888e1cb423f1ef3e22f22b080150dcf54db1961f2121c9b69250ec5",
}


def renderers() -> dict[str, Renderer]:
    """The shipped `mini` model's renderer (its tokenizer and token table, the native chat
    layout, 1 + 8² image slots) and the `tiny` preset's."""
    from transformers import AutoTokenizer

    from pixsearch.model.build import build_model
    from pixsearch.model.presets import get_preset
    from pixsearch.render import ChatFormat
    from pixsearch.tokens import TokenTable

    tok = AutoTokenizer.from_pretrained(str(MINI / "tokenizer"))
    table = TokenTable.from_dict(json.loads((MINI / "special_tokens.json").read_text()))
    mini = Renderer(tok, table, ChatFormat(), n_image_tokens=65)
    assert mini.tokens.resolve(tok).ids == table.ids
    return {"mini": mini, "tiny": build_model(get_preset("tiny")).renderer}


def _update(h, r: Rendered) -> None:
    h.update(json.dumps([r.input_ids, r.loss_mask, r.span_labels, r.region_positions,
                         r.prompt_len, list(r.image_slice or ()), r.text]).encode())
    h.update(b"\n")


def _render(renderer: Renderer, sample) -> Rendered:
    """Typed parts → ids (records were read into parts by `parse_display`)."""
    return renderer.render(sample.question, sample.parts, bool(sample.image))


def world_hash(world: Path) -> str:
    """Hash of the records and knowledge-base files (is the world build deterministic?)."""
    h = hashlib.sha256()
    for name in [f"{s}.jsonl" for s in SPLITS] + ["kb/docs.jsonl"]:
        h.update(name.encode())
        h.update((world / name).read_bytes())
    return h.hexdigest()


def parity_hashes(world: Path) -> dict[str, str]:
    """sha256 of the rendered samples of `world`, per renderer and sample group."""
    from pixsearch.train.data import build_pools, trajectory_sample
    from pixsearch.train.reading import reading_samples

    records = {s: read_records(world / f"{s}.jsonl") for s in SPLITS}
    groups = {
        "records": [trajectory_sample(r) for s in SPLITS for r in records[s]],
        "pools": [x for s in ("train", "val") for pool in build_pools(records[s]).values()
                  for x in pool],
        "reading": reading_samples(world, records["train"]),
    }
    out = {"world": world_hash(world)}
    for name, renderer in renderers().items():
        for group, samples in groups.items():
            h = hashlib.sha256()
            for s in samples:
                _update(h, _render(renderer, s))
            out[f"{name}/{group}"] = h.hexdigest()
    return out


def test_rendered_samples_are_unchanged(small_world):
    got = parity_hashes(small_world)
    assert got["world"] == EXPECTED["world"], "the small world build changed; parity is moot"
    assert got == EXPECTED


if __name__ == "__main__":
    print(json.dumps(parity_hashes(Path(sys.argv[1])), indent=1))
