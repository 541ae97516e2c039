"""Run by tests/test_sharded.py under torchrun (2 CPU processes, gloo): a hub-preset model
sharded with FSDP2 (`fully_shard`, what accelerate's FSDP plugin applies) takes a training
step; its full state dict is gathered as `Accelerator.get_state_dict` gathers it under FSDP2,
and the main process writes an adapter checkpoint from it and checks that it reloads to the
gathered weights. Usage: fsdp_checkpoint.py BASE_DIR OUT_DIR."""

import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
from torch.distributed.fsdp import fully_shard

from pixsearch.model.batch import collate
from pixsearch.model.build import build_model
from pixsearch.model.checkpoint import load_checkpoint, read_metadata, save_checkpoint
from pixsearch.model.presets import get_preset


def main(base: Path, out: Path) -> None:
    dist.init_process_group("gloo")
    torch.set_num_threads(1)
    cfg = get_preset("llava-tiny", {"lm": {"pretrained": str(base / "llava")},
                                    "mask_decoder": {"sam_pretrained": str(base / "sam")}})
    model = build_model(cfg)
    for layer in model.backbone.language_model().layers:
        fully_shard(layer)
    fully_shard(model)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    r = model.renderer.trajectory("Which flag?", "The red flag <search><region></search> .",
                                  spans=[(4, 12)])
    from PIL import Image

    img = Image.new("RGB", (40, 30), (200, 20, 20))
    mask = torch.zeros(30, 40, dtype=torch.bool)
    mask[5:20, 10:30] = True
    out_ = model(collate(model, [r], [img], [[mask.numpy()]]))
    (out_.logits.float().mean() + out_.mask_logits.float().mean()).backward()
    opt.step()
    state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True,
                                                                 cpu_offload=True))
    if dist.get_rank() == 0:
        path = save_checkpoint(model, out, state)
        assert read_metadata(path)["format"] == "adapter"
        loaded = load_checkpoint(path).state_dict()
        assert loaded.keys() == state.keys(), sorted(set(loaded) ^ set(state))[:5]
        bad = [k for k in state if not torch.equal(loaded[k], state[k])]
        assert not bad, bad[:5]
        print("fsdp checkpoint ok", len(state), flush=True)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
