"""The two-stage SFT trainer: stages × mixtures, AdamW + warm-up/decay, accumulation, clipping,
bf16 where supported, validation, best/last checkpoints, resumption — on `accelerate`.

One program for one CPU process and for `accelerate launch` over several GPUs: the
`Accelerator` places the model, wraps it for data parallelism (DDP, or FSDP / DeepSpeed ZeRO-3
from an accelerate config file, e.g. `configs/accelerate/`), autocasts to bf16 when the device
supports it (to the model's dtype for a `model.dtype=bf16|fp16` model, whose trainable
parameters are kept in float32: `train/precision.py`) and accumulates gradients. Each process
draws its own batches (seed + process index), made by DataLoader workers (`train/loader.py`).
Every save gathers the model's full state dict (`Accelerator.get_state_dict`, collective under
FSDP / ZeRO-3) and the main process writes it as a checkpoint (adapter-only for hub presets,
`model/checkpoint.py`); the resumable state of a run over several processes goes through
`Accelerator.save_state` (`train/state.py`). The main process writes the log and the feature
cache.

Layout of `out/`: `log.jsonl` (one line per step: loss per term, lr, throughput; one per
evaluation), `checkpoint-last/` (resumable), `checkpoint-best/` (best validation value of the
current stage), `stage-<name>/` (each stage's final model + metrics), `final/` or `final_dir`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from pixsearch.abstention import AbstentionConfig
from pixsearch.config import to_dict
from pixsearch.logs import progress_bar
from pixsearch.model.checkpoint import load_checkpoint, save_checkpoint
from pixsearch.model.pixsearch_model import PixSearchModel
from pixsearch.provenance import write_provenance
from pixsearch.retrieval.index import KnowledgeIndex
from pixsearch.train.config import StageConfig, TrainConfig, resolve_path, world_dir
from pixsearch.train.curves import plot_training_curves
from pixsearch.train.data import (
    build_pools,
    drop_long,
    load_split,
    tokenizer_corpus,
    world_evidence,
)
from pixsearch.train.features import FeatureCache
from pixsearch.train.loader import BatchLoader
from pixsearch.train.mixture import MixtureSampler
from pixsearch.train.optim import adamw_groups, lr_factor, micro_step, stage_parameters
from pixsearch.train.precision import (
    keep_master_weights,
    mixed_precision,
    restore_master_weights,
    run_model_dtype,
)
from pixsearch.train.reading import reading_samples
from pixsearch.train.renaming import RENAMED, rename_pools, world_names
from pixsearch.train.state import (
    Progress,
    check_processes,
    find_resumable,
    load_distributed_state,
    load_training_state,
    save_distributed_state,
    save_training_state,
    set_rng_state,
    write_dir,
)
from pixsearch.train.tracking import RunTracker
from pixsearch.train.transplant import transplant
from pixsearch.train.validation import evaluate
from pixsearch.train.whole_image import POOL as WHOLE_IMAGE
from pixsearch.train.whole_image import model_counts, whole_image_samples

log = logging.getLogger(__name__)


class Trainer:
    """Runs a `TrainConfig` to the end, resuming from `out/checkpoint-last` if it exists."""

    def __init__(self, cfg: TrainConfig) -> None:
        from accelerate import Accelerator
        from accelerate.utils import DistributedDataParallelKwargs, set_seed

        self.cfg = cfg
        if cfg.num_threads:
            torch.set_num_threads(cfg.num_threads)
        # a half-precision model trains float32 masters under autocast (`train/precision.py`)
        self.out = resolve_path(cfg.out)
        self.model_dtype = run_model_dtype(cfg, find_resumable(self.out / "checkpoint-last"))
        bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        precision = mixed_precision(cfg.precision, self.model_dtype, bf16)
        # a batch without region searches leaves the mask decoder unused: DDP must allow it
        ddp = DistributedDataParallelKwargs(find_unused_parameters=True)
        self.started = time.perf_counter()
        self.tracker = RunTracker(cfg.tracker, resolve_path(cfg.out), cfg.tracker_project,
                                  cfg.log_samples)
        self.acc = Accelerator(mixed_precision=precision, gradient_accumulation_steps=1,
                               kwargs_handlers=[ddp], **self.tracker.accelerator_kwargs())
        set_seed(cfg.seed)
        self.world = world_dir(cfg)
        self.is_main = self.acc.is_main_process
        # FSDP / ZeRO-3 shard the parameters: a forward pass is collective
        self.sharded = self.acc.distributed_type.value in ("FSDP", "DEEPSPEED")

    # ---- setup ----------------------------------------------------------------------------
    def _model_and_state(self, train_records) -> tuple[PixSearchModel, dict[str, Any] | None]:
        from pixsearch.model.build import build_model
        from pixsearch.model.presets import get_preset

        resumable = find_resumable(self.out / "checkpoint-last")
        if resumable is not None:
            self._check_same_run()
            self.log_print(f"resuming from {resumable}")
            model, state = load_training_state(resumable)
            restore_master_weights(model, resumable)  # not rounded to the model's dtype
            check_processes(state, self.acc.num_processes, resumable)
            return model, state
        if self.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "run_identity.json").write_text(json.dumps(self._identity(), indent=1))
        if self.cfg.init_from:
            return load_checkpoint(resolve_path(self.cfg.init_from)), None
        mcfg = get_preset(self.cfg.model, self.cfg.model_overrides)
        model = build_model(mcfg, corpus=tokenizer_corpus(train_records))
        if self.cfg.transplant_from:
            donor = load_checkpoint(resolve_path(self.cfg.transplant_from))
            copied = transplant(model, donor, self.cfg.transplant)
            self.log_print(f"transplanted {len(copied)} tensors ({', '.join(self.cfg.transplant)})"
                           f" from {self.cfg.transplant_from}")
        return model, None

    def _identity(self) -> dict[str, Any]:
        """What makes a run this run: its model and data. Budgets (steps, minutes, threads, …)
        may change between a run and its resumption; these may not."""
        cfg = to_dict(self.cfg)
        ident = {k: cfg[k] for k in ("model", "model_overrides", "init_from", "world",
                                     "train_split", "seed")}
        if self.cfg.transplant_from:  # absent otherwise: runs from before it still resume
            ident["transplant_from"] = cfg["transplant_from"]
        ident["stages"] = [s["name"] for s in cfg["stages"]]
        if self.cfg.init_from:  # the same path may hold another model by now
            weights = resolve_path(self.cfg.init_from) / "model.safetensors"
            ident["init_sha256"] = hashlib.sha256(weights.read_bytes()).hexdigest()
        return ident

    def _check_same_run(self) -> None:
        """Refuse to resume a run in `out/` that started from another model or data."""
        saved = self.out / "run_identity.json"
        if not saved.exists():
            return
        old, new = json.loads(saved.read_text()), self._identity()
        diff = [k for k in new if old.get(k) != new[k]]
        if diff:
            raise ValueError(f"{self.out} holds a run with other {', '.join(diff)}; resuming it "
                             "would continue that run. Use another `out=` or delete the folder.")

    def _features(self, model: PixSearchModel, images: list[str]) -> FeatureCache:
        cache_dir = resolve_path(self.cfg.feature_cache) if self.cfg.feature_cache \
            else self.world / "cache"
        fc = FeatureCache(model, self.world, cache_dir, self.cfg.progress and self.is_main)
        if self.is_main:
            n = fc.precompute(images)
            if n:
                self.log_print(f"cached image features of {n} images in {fc.file}")
        self.acc.wait_for_everyone()
        if not self.is_main:
            fc.reload()
        return fc

    def log_print(self, msg: str) -> None:
        if self.is_main:
            log.info(msg)

    def _log(self, row: dict[str, Any]) -> None:
        if self.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            with (self.out / "log.jsonl").open("a") as f:
                f.write(json.dumps(row) + "\n")
            self.tracker.log_row(row)

    def _truncate_log(self, step: int) -> None:
        """Drop log rows past the checkpoint a run resumes from (they are trained again)."""
        log = self.out / "log.jsonl"
        if log.exists():
            rows = [r for r in log.read_text().splitlines() if json.loads(r)["step"] <= step]
            log.write_text("".join(r + "\n" for r in rows))

    # ---- the run --------------------------------------------------------------------------
    def run(self) -> Path:
        """Train every stage (resuming where a previous run stopped); returns the final model."""
        cfg = self.cfg
        train_recs = load_split(self.world, cfg.train_split, cfg.max_train_records)
        val_recs = load_split(self.world, cfg.val_split, cfg.max_val_records)
        model, state = self._model_and_state(train_recs)
        evidence = world_evidence(self.world)
        if evidence is not None and evidence != model.cfg.evidence:
            # the model is served the evidence layout it is trained on: the world's
            self.log_print(f"evidence budget of the world {evidence} replaces the model's "
                           f"{model.cfg.evidence}")
            model.cfg.evidence = evidence
        if model.cfg.abstention.weights:
            # a policy is calibrated for the weights it was fitted on; new weights need a new one
            self.log_print("the abstention policy of the initial checkpoint is dropped: "
                           "calibrate the trained model with `pixsearch eval calibrate`")
            model.cfg.abstention = AbstentionConfig()
        model.train()
        features = self._features(model, [r.image for r in train_recs + val_recs if r.image])
        pools, val_pools = build_pools(train_recs), build_pools(val_recs)
        if any(float(st.mixture.get("text", 0)) > 0 for st in cfg.stages):
            pools["text"] = reading_samples(self.world, train_recs, model.cfg.evidence,
                                            seed=cfg.seed)
        if any(float(st.mixture.get(WHOLE_IMAGE, 0)) > 0 for st in cfg.stages):
            counts = (model_counts(model, [r.image for r in train_recs if r.image],
                                   features.get, cfg.progress and self.is_main)
                      if cfg.whole_image_counts == "model" else None)
            pools[WHOLE_IMAGE] = whole_image_samples(
                train_recs, KnowledgeIndex.open(self.world / "index"), model.cfg.evidence,
                self.world, cfg.progress and self.is_main, counts, cfg.whole_image_idk)
            self.log_print(f"{len(pools[WHOLE_IMAGE])} samples after a whole-image search")
        if cfg.rename:
            pools = rename_pools(pools, cfg.rename, world_names(self.world), seed=cfg.seed)
            renamed = sum(s.record_id.endswith(RENAMED) for p in pools.values() for s in p)
            self.log_print(f"renamed the entities of {renamed} search trajectories "
                           f"(rename={cfg.rename})")
        if cfg.max_seq_len:
            pools, dropped = drop_long(model, pools, cfg.max_seq_len)
            val_pools, dropped_val = drop_long(model, val_pools, cfg.max_seq_len)
            self.log_print(f"skipped {dropped} train / {dropped_val} val samples longer than "
                           f"{cfg.max_seq_len} tokens")
        progress = Progress(**state["progress"]) if state else Progress()
        if state and self.is_main:
            self._truncate_log(progress.global_step)
        if self.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "train_config.json").write_text(json.dumps(to_dict(cfg), indent=1))
        self.tracker.start(self.acc, to_dict(cfg))
        bar = progress_bar(total=cfg.total_steps, initial=progress.global_step, desc="train",
                           disable=not (cfg.progress and self.is_main), dynamic_ncols=True)
        while progress.stage < len(cfg.stages):
            stage = cfg.stages[progress.stage]
            self._run_stage(model, stage, pools, val_pools, features, progress, state, bar)
            state = None  # only the first stage after resuming restores optimiser state
            progress.stage += 1
            progress.stage_step, progress.best, progress.stage_seconds = 0, None, 0.0
        bar.close()
        last = self.out / f"stage-{cfg.stages[-1].name}"
        final = resolve_path(cfg.final_dir) if cfg.final_dir else self.out / "final"
        if self.is_main:
            write_dir(final, lambda tmp: (shutil.copytree(last, tmp, dirs_exist_ok=True),
                                          self._write_provenance(tmp, progress)))
            self.log_print(f"final model: {final} ({progress.elapsed / 60:.1f} min of training)")
            self._finish_run(model, final)
        self.tracker.finish()
        self.acc.wait_for_everyone()
        return final

    def _finish_run(self, model: PixSearchModel, final: Path) -> None:
        """The run folder's curves and provenance; a model card in every model folder."""
        from pixsearch.model_card import write_model_card

        plot_training_curves(self.out)
        write_provenance(self.out, "train", time.perf_counter() - self.started)
        stages = [self.out / f"stage-{st.name}" for st in self.cfg.stages]
        for folder in [final, *(d for d in stages if d.is_dir())]:
            write_model_card(folder, model, training_from=final)

    def _write_provenance(self, folder: Path, progress: Progress) -> None:
        (folder / "training.json").write_text(json.dumps({
            "train_config": to_dict(self.cfg), "world": str(self.world),
            "train_minutes": round(progress.elapsed / 60, 2), "stages": progress.history,
        }, indent=1))
        write_provenance(folder, "train", time.perf_counter() - self.started)

    def _run_stage(self, model: PixSearchModel, stage: StageConfig, pools, val_pools,
                   features: FeatureCache, progress: Progress, state: dict | None,
                   bar: tqdm) -> None:
        cfg, acc = self.cfg, self.acc
        # the previous stage's prepared model and optimiser are forgotten: `save_state` /
        # `load_state` index what was prepared, which must be this stage's alone
        acc.free_memory()
        groups = stage_parameters(model, stage)
        params = [p for g in groups for p in g]
        keep_master_weights(params)  # float32 whatever the model's dtype
        opt = torch.optim.AdamW(adamw_groups(params), lr=stage.lr,
                                betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)
        seed = cfg.seed + 1000 * (progress.stage + 1) + acc.process_index
        sampler = MixtureSampler(pools, stage.mixture, seed)
        one_process = state is not None and "optimizer" in state
        if one_process:
            opt.load_state_dict(state["optimizer"])
            sampler.load_state_dict(state["sampler"])
            set_rng_state(state["rng"])
        teacher = self._teacher(stage, progress)
        acc.gradient_accumulation_steps = stage.grad_accum
        self._configure_deepspeed(model, stage)
        acc.step = 0  # accumulation windows start at this stage's first micro-batch
        wrapped, opt = acc.prepare(model, opt)
        if state is not None and not one_process:
            sampler.load_state_dict(load_distributed_state(acc, Path(state["dir"])))
        loader = BatchLoader(model, sampler, stage.batch_size, features, cfg.num_workers,
                             cfg.pin_memory and acc.device.type == "cuda", seed)
        self.log_print(f"stage {stage.name}: {stage.steps} steps, mixture {stage.mixture}, "
                       f"{sum(p.numel() for p in params) / 1e6:.2f} M trainable parameters")
        started = time.perf_counter() - progress.stage_seconds
        while progress.stage_step < stage.steps and not self._out_of_time(stage, started):
            t0 = time.perf_counter()
            budget = 60 * stage.max_minutes
            lr = stage.lr * lr_factor(progress.stage_step, stage.warmup, stage.steps,
                                      cfg.schedule, cfg.min_lr_ratio,
                                      progress.stage_seconds / budget if budget else 0.0)
            for group in opt.param_groups:
                group["lr"] = lr
            parts, n_tok = self._step(wrapped, opt, groups, loader, stage, teacher)
            dt = time.perf_counter() - t0
            progress.stage_step += 1
            progress.global_step += 1
            progress.elapsed += dt
            progress.stage_seconds = time.perf_counter() - started
            n = stage.batch_size * stage.grad_accum
            row = {"step": progress.global_step, "stage": stage.name,
                   "stage_step": progress.stage_step, "lr": lr,
                   **{f"loss/{k}": v for k, v in parts.items()},
                   "samples_per_s": n / dt, "tokens_per_s": n_tok / dt}
            self._log(row)
            bar.update(1)
            bar.set_postfix(stage=stage.name, loss=f"{parts['total']:.3f}")
            done = progress.stage_step == stage.steps or self._out_of_time(stage, started)
            if done or (cfg.eval_every and progress.stage_step % cfg.eval_every == 0):
                self._evaluate(model, wrapped, stage, val_pools, features, progress)
            if done or progress.stage_step % cfg.save_every == 0:
                self._save_last(model, wrapped, opt, loader, progress)
        loader.close()
        if progress.stage_step < stage.steps:
            self.log_print(f"stage {stage.name} used its {stage.max_minutes} min budget after "
                           f"{progress.stage_step}/{stage.steps} steps")
            self._log({"step": progress.global_step, "stage": stage.name,
                       "budget_spent_at": progress.stage_step})
        self._finish_stage(model, wrapped, stage, progress)

    def _configure_deepspeed(self, model: PixSearchModel, stage: StageConfig) -> None:
        """DeepSpeed fixes batch size and accumulation when the engine is made: give it this
        stage's (no DataLoader is prepared for it to read them from), and the ZeRO-3 bucket
        sizes left "auto", from the LM's width (accelerate's rule, which looks for a
        `model.config` our composed model does not have)."""
        plugin = getattr(self.acc.state, "deepspeed_plugin", None)
        if plugin is None:
            return
        ds = plugin.deepspeed_config
        ds["train_micro_batch_size_per_gpu"] = stage.batch_size
        ds["gradient_accumulation_steps"] = stage.grad_accum
        ds.pop("train_batch_size", None)
        h = model.backbone.input_embeddings().weight.shape[1]
        zero = ds.get("zero_optimization", {})
        for key, value in (("reduce_bucket_size", h * h),
                           ("stage3_prefetch_bucket_size", int(0.9 * h * h)),
                           ("stage3_param_persistence_threshold", 10 * h)):
            if zero.get(key) == "auto":
                zero[key] = value

    @staticmethod
    def _out_of_time(stage: StageConfig, started: float) -> bool:
        return bool(stage.max_minutes) and time.perf_counter() - started > 60 * stage.max_minutes

    def _teacher(self, stage: StageConfig, progress: Progress) -> PixSearchModel | None:
        """The frozen model whose span embeddings L_KL keeps close: the previous stage's, or
        for the first stage of a run that continues a checkpoint, that checkpoint (heads
        trained on its span embeddings, like a referent selector, keep working)."""
        if not (stage.kl_teacher and self.cfg.loss.kl > 0):
            return None
        if progress.stage > 0:
            prev = self.out / f"stage-{self.cfg.stages[progress.stage - 1].name}"
        elif self.cfg.init_from:
            prev = resolve_path(self.cfg.init_from)
        else:
            raise ValueError(f"stage {stage.name}: kl_teacher needs a previous stage or "
                             "init_from (a checkpoint to stay near)")
        teacher = load_checkpoint(prev, device=self.acc.device).eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
        return teacher

    def _step(self, wrapped, opt, groups, loader: BatchLoader, stage, teacher
              ) -> tuple[dict[str, float], int]:
        """One optimiser step over `grad_accum` micro-batches; returns mean loss terms."""
        acc, sums, n_tok = self.acc, {}, 0
        for _ in range(stage.grad_accum):
            batch = loader.next()
            n_tok += int(batch.attention_mask.sum())
            try:
                total, parts = micro_step(acc, wrapped, opt, groups, batch, self.cfg, teacher)
            except FloatingPointError as e:
                raise FloatingPointError(f"stage {stage.name}: {e}") from e
            for k, v in {"total": float(total.detach()), **parts}.items():
                sums[k] = sums.get(k, 0.0) + v / stage.grad_accum
        return sums, n_tok

    def _evaluate(self, model, wrapped, stage, val_pools, features, progress: Progress) -> None:
        metrics = evaluate(model, val_pools, features, stage.batch_size, self.cfg.loss,
                           self.cfg.eval_batches)
        self._log({"step": progress.global_step, "stage": stage.name, "eval": metrics})
        if self.is_main:  # what the numbers look like: sample masks and the curves so far
            if not self.sharded:  # decoding on one process would wait on the others' shards
                self.tracker.log_predictions(model, val_pools, features, self.world,
                                             progress.global_step)
            plot_training_curves(self.out)
        key = self.cfg.best_metric
        value = metrics.get(key)
        self.log_print(f"step {progress.global_step} ({stage.name}) val: " + ", ".join(
            f"{k}={v:.4f}" for k, v in sorted(metrics.items()) if "/" not in k or "iou" in k))
        if value is None:
            return
        higher = not key.endswith("loss")
        better = progress.best is None or (value > progress.best if higher
                                           else value < progress.best)
        if self._agree(better):
            progress.best = value
            state = self.acc.get_state_dict(wrapped)  # collective under FSDP / ZeRO-3
            if self.is_main:
                write_dir(self.out / "checkpoint-best", lambda tmp: (
                    save_checkpoint(model, tmp, state), (tmp / "metrics.json").write_text(
                        json.dumps({"step": progress.global_step, "stage": stage.name,
                                    **metrics}))))
        progress.history = [h for h in progress.history if h.get("stage") != stage.name]
        progress.history.append({"stage": stage.name, "step": progress.global_step, **metrics})

    def _agree(self, flag: bool) -> bool:
        """The main process's `flag` on every process (a save all of them must join)."""
        if self.acc.num_processes == 1:
            return flag
        from accelerate.utils import broadcast_object_list

        return bool(broadcast_object_list([flag])[0])

    def _save_last(self, model, wrapped, opt, loader: BatchLoader, progress: Progress) -> None:
        state = self.acc.get_state_dict(wrapped)  # collective under FSDP / ZeRO-3
        path = self.out / "checkpoint-last"
        if self.acc.num_processes > 1:
            save_distributed_state(self.acc, path, model, progress, loader.state_dict(), state)
            return
        save_training_state(path, model, progress, opt, loader.state_dict(), state)

    def _finish_stage(self, model, wrapped, stage: StageConfig, progress: Progress) -> None:
        state = self.acc.get_state_dict(wrapped)
        if self.is_main:
            metrics = progress.history[-1] if progress.history else {}
            write_dir(self.out / f"stage-{stage.name}", lambda tmp: (
                save_checkpoint(model, tmp, state),
                (tmp / "metrics.json").write_text(json.dumps(
                    {**metrics, "progress": asdict(progress) | {"history": []}}))))
        self.acc.wait_for_everyone()
