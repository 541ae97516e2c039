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
    "world": "150ef2cd388e5515929118d53c22b73ff69cfe571aabc2af4990e2f02129d0a8",
    "mini/records": "3a8780cdcf13d2189123d691c188804595f81df0de7f0716092ff73accd2c0ea",
    "mini/pools": "9533690e3833db0cbe13ddd6b350816eed754d3895725ed22ab894458dfef38e",
    "mini/reading": "7e8fd6ac13c54cb3054c6430626a56adf70134169b6a69cc0f5d418a1ac1ebfb",
    "tiny/records": "5220fb9351c81d90322825cb28f26d92039876cbe124de30573e200818facf7c",
    "tiny/pools": "0b96704461b85fef16a90057752b19ff7a117ec6ca756833953a36d2707b6787",
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
