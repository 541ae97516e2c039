"""An adapter checkpoint whose pretrained base has moved is pointed at it with
`model.lm.pretrained=DIR` through the Predictor and the CLI (`ask`), and answers exactly as
before the move; a full checkpoint (the shipped `mini`) still refuses overrides that would
change what it holds."""

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from test_checkpoint_adapter import _hub_model, _outputs, llava_base  # noqa: F401 (fixture)

from pixsearch.cli import main
from pixsearch.cli.options import check_model_overrides, split_model_overrides
from pixsearch.config import ConfigError
from pixsearch.decode.config import DecodeConfig
from pixsearch.model.checkpoint import CheckpointError, save_checkpoint
from pixsearch.predictor import Predictor, checkpoint_bases

QUESTION = "Which flag is on the left?"
DECODE = ["--max-searches", "0", "--max-new-tokens", "8"]


def _untimed(answer) -> dict:
    """The answer's trace without its wall-clock timings."""
    return {k: v for k, v in answer.trace.to_dict().items() if k != "timings"}


def _image_file(tmp_path):
    pixels = np.random.default_rng(3).integers(0, 255, (36, 60, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "wide.png")
    return tmp_path / "wide.png"


def test_moved_base_is_found_through_the_predictor_and_the_cli(llava_base, tmp_path,  # noqa: F811
                                                                capsys):
    torch.manual_seed(0)
    model = _hub_model(llava_base)
    ckpt = save_checkpoint(model, tmp_path / "ckpt")
    image = _image_file(tmp_path)
    cfg = DecodeConfig(max_searches=0, max_new_tokens=8)
    before = Predictor(model, None, cfg).ask(QUESTION, image)
    assert before.text  # something to compare: the tiny model writes a few tokens
    logits_before = _outputs(model)
    assert checkpoint_bases(ckpt) == {"lm.pretrained": str(llava_base / "llava"),
                                      "mask_decoder.sam_pretrained": str(llava_base / "sam")}

    moved = tmp_path / "elsewhere" / "llava"
    shutil.copytree(llava_base / "llava", moved)
    hidden = llava_base / "llava-hidden"  # the base is gone from where the checkpoint says
    (llava_base / "llava").rename(hidden)
    try:
        with pytest.raises(CheckpointError, match="pretrained"):
            Predictor.load(str(ckpt), cfg=cfg)
        # the CLI's option path: split, checked before loading, handed to the Predictor
        overrides, rest = split_model_overrides([f"model.lm.pretrained={moved}"])
        assert rest == [] and overrides == {"lm": {"pretrained": str(moved)}}
        check_model_overrides(str(ckpt), overrides)
        loaded = Predictor.load(str(ckpt), cfg=cfg, model_overrides=overrides)
        assert loaded.model.cfg.lm.pretrained == str(moved)
        a, b = model.state_dict(), loaded.model.state_dict()
        assert a.keys() == b.keys() and [k for k in a if not torch.equal(a[k], b[k])] == []
        for x, y in zip(logits_before, _outputs(loaded.model)):
            assert torch.equal(x, y)
        after = loaded.ask(QUESTION, image)
        assert after.text == before.text
        assert _untimed(after) == _untimed(before)

        capsys.readouterr()
        assert main(["ask", "--model", str(ckpt), "-q", QUESTION, "--image", str(image),
                     "--json", *DECODE, f"model.lm.pretrained={moved}"]) == 0
        assert json.loads(capsys.readouterr().out)["text"] == before.text
    finally:
        hidden.rename(llava_base / "llava")


def test_overrides_an_adapter_checkpoint_refuses(llava_base, tmp_path):  # noqa: F811
    ckpt = save_checkpoint(_hub_model(llava_base), tmp_path / "ckpt")
    # the base's locations and the dtype are taken (SAM by its short spelling too)
    ok, _ = split_model_overrides(["model.sam_pretrained=/sam", "model.lm.pretrained=/lm",
                                   "model.dtype=bf16"])
    check_model_overrides(str(ckpt), ok)
    # anything that would change what was trained is not, and the error says why
    bad, _ = split_model_overrides(["model.span_tagger.dim=8"])
    with pytest.raises(ConfigError, match=r"span_tagger\.dim.*adapter checkpoint.*"
                                          r"model\.lm\.pretrained"):
        check_model_overrides(str(ckpt), bad)
    empty, _ = split_model_overrides(["model.lm.pretrained="])
    with pytest.raises(ConfigError, match="folder"):
        check_model_overrides(str(ckpt), empty)


def test_full_checkpoints_still_take_only_the_dtype():
    assert checkpoint_bases(_shipped_mini()) == {}
    for item in ("model.lm.pretrained=/x", "model.sam_pretrained=/x"):
        overrides, _ = split_model_overrides([item])
        with pytest.raises(ConfigError, match="holding all its weights.*model.dtype$"):
            check_model_overrides("mini", overrides)
    check_model_overrides("mini", {"dtype": "bf16"})


def _shipped_mini():
    from pixsearch.predictor import trained_checkpoint

    path = trained_checkpoint("mini")
    assert path is not None
    return path
