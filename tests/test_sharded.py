"""Training over several processes: the shipped accelerate launch configs, a run of `tiny` on
two CPU processes (gloo) that is interrupted and resumed and ends with the weights of the
uninterrupted run, and an FSDP2-sharded model writing an adapter checkpoint.

accelerate enables FSDP and DeepSpeed only on GPUs (on CPU the same launch is plain DDP over
gloo), so the two-process run checks what the trainer adds on top of them, the same for all
three: checkpoints written from the state dict `Accelerator.get_state_dict` gathers,
`Accelerator.save_state` / `load_state` of the resumable state, one sampler state per process,
barriers around the folder swap. FSDP2 itself runs on CPU, so the sharded gather → adapter
checkpoint path is run with `fully_shard` directly; the config test checks that accelerate
accepts the FSDP and ZeRO-3 files as shipped."""

import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file
from test_checkpoint_adapter import llava_base  # noqa: F401  (tiny LLaVA + SAM folders)
from test_train import world  # noqa: F401  (module fixture: a 4-scene world)

ROOT = Path(__file__).resolve().parents[1]
ACC = ROOT / "configs" / "accelerate"

RUN = {
    "model": "tiny", "max_train_records": 6, "max_val_records": 2, "eval_batches": 1,
    "save_every": 1, "num_threads": 1, "progress": False, "tracker": "none", "log_samples": 0,
    "num_workers": 1,
    "stages": [
        {"name": "s1", "steps": 1, "lr": 1e-3, "warmup": 0, "mixture": {"stage1": 1},
         "batch_size": 2},
        {"name": "s2", "steps": 3, "lr": 1e-3, "warmup": 0,
         "mixture": {"stage1": 7, "stage2": 9}, "batch_size": 2, "grad_accum": 2},
    ],
}


def _launch_env(name: str) -> tuple:
    """What `accelerate launch --config_file configs/accelerate/NAME.yaml` makes of a file:
    its parsed arguments and (FSDP) the environment it starts the processes with."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_multi_gpu_env

    args = launch_command_parser().parse_args(
        ["--config_file", str(ACC / f"{name}.yaml"), "-m", "pixsearch.cli.train"])
    args = _validate_launch_command(args)[0]
    return args, (prepare_multi_gpu_env(args) if args.use_fsdp else {})


def test_shipped_launch_configs_are_accepted_by_accelerate(monkeypatch):
    from accelerate.utils import DeepSpeedPlugin, FullyShardedDataParallelPlugin

    args, env = _launch_env("fsdp")
    assert args.use_fsdp and not args.cpu
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    plugin = FullyShardedDataParallelPlugin()  # reads the launch environment, as in training
    assert plugin.fsdp_version == 2 and plugin.state_dict_type.name == "SHARDED_STATE_DICT"
    # every class named for wrapping exists (a typo would leave the layers unwrapped)
    modules = [importlib.import_module(f"transformers.models.{m}.modeling_{m}")
               for m in ("llama", "clip", "sam")]
    for name in env["FSDP_TRANSFORMER_CLS_TO_WRAP"].split(","):
        assert any(hasattr(m, name) for m in modules), name

    args, _ = _launch_env("zero3")
    assert args.use_deepspeed and not args.cpu
    ds_file = ROOT / args.deepspeed_config_file
    ds = json.loads(ds_file.read_text())
    assert ds["zero_optimization"]["stage"] == 3
    # without it, Accelerator.get_state_dict cannot gather ZeRO-3 weights for a checkpoint
    assert ds["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] is True
    pytest.importorskip("deepspeed")
    plugin = DeepSpeedPlugin(hf_ds_config=str(ds_file), zero3_init_flag=False)
    assert plugin.zero_stage == 3 and plugin.is_auto("train_micro_batch_size_per_gpu")


def _launch(world_dir: Path, out: Path, config: Path, *overrides: str) -> None:  # noqa: F811
    """`pixsearch train` on two CPU processes over gloo. (`accelerate launch --cpu` starts
    several CPU processes only through mpirun; torchrun starts them, and accelerate picks the
    distributed setup up from its environment.)"""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
           "ACCELERATE_USE_CPU": "true"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_port", str(29500 + os.getpid() % 1000), "-m", "pixsearch.cli.train",
           "--config", str(config), f"world={world_dir}", f"out={out}",
           f"feature_cache={out.parent}/cache", *overrides]
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]


@pytest.mark.slow
def test_two_process_run_resumes_to_the_same_weights(world, tmp_path):  # noqa: F811
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(RUN))
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    _launch(world, straight, config)
    # the same run, stopped after the first step of stage s2, then resumed to its end
    _launch(world, resumed, config, "stages.1.steps=1")
    last = resumed / "checkpoint-last"
    assert sorted(p.name for p in last.glob("sampler-*.json")) == ["sampler-0.json",
                                                                  "sampler-1.json"]
    assert (last / "accelerate").is_dir()
    state = torch.load(last / "trainer_state.pt", weights_only=False)
    assert state["num_processes"] == 2 and state["progress"]["global_step"] == 2
    shutil.rmtree(resumed / "final")
    _launch(world, resumed, config)

    a = load_file(str(straight / "final" / "model.safetensors"))
    b = load_file(str(resumed / "final" / "model.safetensors"))
    assert a.keys() == b.keys()
    assert [k for k in a if not torch.equal(a[k], b[k])] == []
    rows = [json.loads(x) for x in (resumed / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss/total" in r] == [1, 2, 3, 4]


@pytest.mark.slow
def test_fsdp2_sharded_model_writes_an_adapter_checkpoint(llava_base, tmp_path):  # noqa: F811
    """FSDP2 itself runs on CPU over gloo (accelerate just does not enable it there): a
    sharded hub-preset model trains a step, its gathered state dict becomes an adapter
    checkpoint that reloads to the same weights (`tests/fsdp_checkpoint.py`)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_port", str(30500 + os.getpid() % 1000),
           str(ROOT / "tests" / "fsdp_checkpoint.py"), str(llava_base), str(tmp_path / "ckpt")]
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and "fsdp checkpoint ok" in res.stdout, res.stderr[-3000:]
