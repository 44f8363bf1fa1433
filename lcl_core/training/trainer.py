"""The one training loop for LCL and the paper's baselines (the objective is a parameter).

One optimiser step = ``grad_accum_steps`` micro-batches per rank. Each micro-batch loss is already a
global mean over ranks (:mod:`lcl_core.objectives`), so DDP's gradient averaging reproduces the
single-process gradient on the union batch. With accumulation, the contrastive objectives whose
pairs come from the causal forward (lcl, CLIP, CoCa, the Emu-style regression) see every
micro-batch's pairs as one contrastive batch, as open_clip's ``accum_freq``: k micro-batches of b rows
give the losses and gradient of one batch of k·b rows, for one extra forward per micro-batch
(:meth:`Trainer._optimizer_step`). BLIP-2-style hard negatives and the masked forward stay per
micro-batch, the step's gradient the mean over micro-batches.

The data object is anything that yields collated batches ``{"images", "input_ids", ...}`` and offers
``state()`` (this rank's position after the last batch it yielded) and ``resume_from(states)`` (every
rank's saved states: a run may resume on another number of ranks), and optionally ``batch_sizes``
(rows per batch of each stream; default ``[config.batch_size]``); see :mod:`lcl_core.training.data`
and :mod:`lcl_core.training.synthetic`.

Elastic resume: a checkpoint written by N ranks resumes on M when the rows per optimiser step stay
(ranks × ``grad_accum_steps`` × each stream's batch size); the data streams hand the unread
documents over (each still read once per epoch), the counts seen carry over, and each rank's RNG
restarts from ``(seed, rank, step)`` (the exact RNG streams exist only for the saved layout).
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from ..diagnostics import effective_rank, latent_variance
from ..distributed import gather_rows, global_count, mean_over_ranks
from ..model import LCLModel
from ..objectives import LOSS_TERMS, objective_spec
from .callbacks import CallbackList, JsonLinesWriter, ProgressBar, TensorBoardWriter
from .checkpointing import (capture_rng_state, load_latest_checkpoint, read_checkpoint, restore_rng_state,
                            save_checkpoint)
from .config import TrainConfig
from .optim import CosineWithWarmup, build_optimizer
from .preemption import stop_on_preemption_signals
from .runtime import Runtime, init_runtime
from .sharding import (average_replicated_gradients, clip_gradients, full_state, full_weights, load_full_state,
                       shard_model)

log = logging.getLogger(__name__)

LOSS_KEYS = ("loss", *(f"{term}_loss" for term in LOSS_TERMS))
PAIR_KEYS = ("pair_latents", "pair_context", "pair_mask")  # what a shared contrastive batch splices together
METRICS_FILE, CHECKPOINT_DIR, TENSORBOARD_DIR = "metrics.jsonl", "checkpoints", "tensorboard"


class BadStepsError(RuntimeError):
    """``max_bad_steps`` non-finite steps in a row, with nothing (or nothing new) to restore."""


class Trainer:
    """``Trainer(model=..., config=..., data=..., run_dir=...)``, then ``resume()`` (optional) and
    ``run()``. Without ``run_dir`` nothing is written (notebook use); with it, rank 0 writes
    ``metrics.jsonl``, ``checkpoints/`` and ``tensorboard/`` (when installed) there."""

    def __init__(self, *, model: LCLModel, config: TrainConfig, data, run_dir: str | Path | None = None,
                 runtime: Runtime | None = None) -> None:
        self.config = config
        self.runtime = runtime or init_runtime(precision=config.precision)
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.data = data
        self.model = model.to(self.runtime.device)
        if config.grad_checkpointing:  # models are built without it
            self.model.set_grad_checkpointing(True)
        self.objective = config.build_objective()
        missing = set(objective_spec(config.objective).heads) - set(model.config.pretraining_heads)
        if missing:
            raise ValueError(f"objective {config.objective!r} needs the model's pre-training heads {sorted(missing)}: "
                             "set ModelConfig.pretraining_heads (the run builder does)")
        self.sharded = self.runtime.distributed and config.strategy == "fsdp"
        self.replicated = shard_model(self.model) if self.sharded else []  # before the optimiser sees them
        self.forward_model = self._wrap(self.model)
        self.optimizer = build_optimizer(self.model, config)
        self.schedule = CosineWithWarmup(optimizer=self.optimizer, base_lr=config.lr,
                                         warmup_steps=config.resolved_warmup_steps, total_steps=config.steps)
        # the whole forward + loss is one compiled graph (the model returns static shapes, the objective
        # reads nothing back to the host); the optimizer step and the logging stay eager
        self.loss_step = torch.compile(self._forward_and_loss) if config.compile else self._forward_and_loss
        self.step = 0
        self.seen = torch.zeros(3, dtype=torch.long)  # images, sequences, tokens this rank trained on so far
        self.metrics: dict[str, Any] = {}
        self.last_checkpoint: Path | None = None
        self.preempted_by: str | None = None  # the signal that stopped the last run(), if one did
        self.bad_steps = 0  # optimiser updates skipped for a non-finite loss or gradient norm, since step 0
        self.consecutive_bad_steps = 0
        self.last_good_checkpoint: Path | None = None  # the newest checkpoint written after a good step
        self.restored_from: Path | None = None  # the checkpoint the last bad-step restore loaded
        self.callbacks = CallbackList()
        self._seed_generators()
        if self.run_dir is not None and self.runtime.is_main:
            self._attach_run_outputs()

    # ---- setup ------------------------------------------------------------------------------------
    def _wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        if not self.runtime.distributed or self.sharded:  # FSDP2 shards the module in place
            return model
        device_ids = [self.runtime.device.index] if self.runtime.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=device_ids)

    def _seed_generators(self, *, step: int = 0) -> None:
        """Seed from (seed, rank, step): ``step`` is the step an elastic resume restarts the generators at
        (a prime stride keeps every rank's seed apart from every other step's)."""
        seed = self.config.seed + self.runtime.rank + 1_000_003 * step
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)

    def _attach_run_outputs(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        JsonLinesWriter(self.run_dir / METRICS_FILE).attach(self)
        board = TensorBoardWriter.if_installed(self.run_dir / TENSORBOARD_DIR)
        if board is not None:
            board.attach(self)
        if self.config.progress_bar:
            ProgressBar().attach(self)

    def add_callback(self, event: str, fn) -> None:
        """``fn(trainer)`` is called at ``event`` (see :mod:`lcl_core.training.callbacks`)."""
        self.callbacks.add(event, fn)

    # ---- checkpoints ------------------------------------------------------------------------------
    def full_weights(self) -> dict[str, torch.Tensor]:
        """The model's full weights whatever the strategy (collective under FSDP; empty off rank 0 there)."""
        return full_weights(self.model) if self.sharded else self.model.state_dict()

    @property
    def checkpoint_dir(self) -> Path:
        if self.run_dir is None:
            raise ValueError("checkpoints need a run_dir")
        return self.run_dir / CHECKPOINT_DIR

    def resume(self) -> int:
        """Load the newest valid checkpoint of ``run_dir`` if there is one; returns the step reached."""
        checkpoint = load_latest_checkpoint(self.checkpoint_dir)
        if checkpoint is None:
            return self.step
        state = checkpoint.state
        saved_ranks, rank = len(state["data"]), self.runtime.rank
        self._check_rows_per_step(checkpoint)
        load_full_state(self.model, self.optimizer, checkpoint.weights, state["optimizer"])
        self.data.resume_from(state["data"])
        if saved_ranks == self.runtime.world_size:
            restore_rng_state(state["rng"][rank])
            self.seen = torch.tensor(state["seen"][rank], dtype=torch.long)
        else:  # elastic: the totals seen go on (they are summed over ranks when logged)
            self._seed_generators(step=checkpoint.step)
            totals = torch.tensor(state["seen"], dtype=torch.long).sum(0)
            self.seen = totals if rank == 0 else torch.zeros_like(totals)
            if self.runtime.is_main:
                log.warning("%s was written by %d ranks and resumes on %d: the documents not yet read in the "
                            "epochs begun are handed over to the new ranks", checkpoint.path, saved_ranks,
                            self.runtime.world_size)
        self.step = checkpoint.step
        self.last_checkpoint = self.last_good_checkpoint = checkpoint.path
        return self.step

    def _batch_sizes(self) -> list[int]:
        return list(getattr(self.data, "batch_sizes", [self.config.batch_size]))

    def _check_rows_per_step(self, checkpoint) -> None:
        """A resume may change the number of ranks, the micro-batches per step and the batch size only
        together: the rows of each stream per optimiser step are the run's, whatever its layout."""
        state, world_size, accum = checkpoint.state, self.runtime.world_size, self.config.grad_accum_steps
        saved_ranks, saved_accum = len(state["data"]), state["train_config"]["grad_accum_steps"]
        saved_sizes = state.get("batch_sizes", [state["train_config"]["batch_size"]])
        saved = [saved_ranks * saved_accum * size for size in saved_sizes]
        rows = [world_size * accum * size for size in self._batch_sizes()]
        if rows != saved:
            split = world_size * accum
            hint = (f"on {world_size} processes × {accum} micro-batches use --batch-size "
                    + ", ".join(str(total // split) for total in saved) if all(total % split == 0 for total in saved)
                    else f"{world_size} processes × {accum} micro-batches do not divide them: choose a number of "
                         "processes and a --grad-accum-steps whose product does")
            raise ValueError(f"{checkpoint.path} was trained with {saved} rows per optimiser step ({saved_ranks} "
                             f"processes × {saved_accum} micro-batches × batch size {saved_sizes}); this run "
                             f"would take {rows}. Keep the rows per step: {hint}")

    def save_checkpoint(self) -> Path | None:
        """Collective: every rank contributes its RNG and data position; rank 0 writes."""
        per_rank = {"rng": capture_rng_state(), "data": self.data.state(), "seen": self.seen.tolist()}
        if self.runtime.distributed:
            gathered = [None] * self.runtime.world_size
            dist.all_gather_object(gathered, per_rank)
        else:
            gathered = [per_rank]
        weights, optimizer_state = full_state(self.model, self.optimizer)  # collective under FSDP
        if self.runtime.is_main:
            state = {
                "optimizer": optimizer_state,
                "schedule": {"base_lr": self.schedule.base_lr, "warmup_steps": self.schedule.warmup_steps,
                             "total_steps": self.schedule.total_steps},
                "rng": [g["rng"] for g in gathered],
                "data": [g["data"] for g in gathered],
                "seen": [g["seen"] for g in gathered],
                "batch_sizes": self._batch_sizes(),
                "train_config": self.config.to_dict(),
                "model_config": self.model.config.to_dict(),
            }
            self.last_checkpoint = save_checkpoint(self.checkpoint_dir, step=self.step, weights=weights,
                                                   state=state, keep=self.config.keep_checkpoints)
        if self.runtime.distributed:
            dist.barrier()
        return self.last_checkpoint

    # ---- the loop ---------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Train until ``config.steps``, or until SIGTERM / SIGUSR1 (see :mod:`.preemption`): then the
        current step is finished and checkpointed, ``preempted_by`` names the signal, and this returns.
        Returns the last metrics record."""
        self.model.train()
        self.preempted_by = None
        batches = iter(self.data)
        started = time.perf_counter()
        self.callbacks.trigger("on_train_start", self)
        with stop_on_preemption_signals() as stop:
            while self.step < self.config.steps:
                step_started = time.perf_counter()
                step_metrics, latents, counts = self._optimizer_step(batches)
                self.seen += counts
                self.step += 1
                self.callbacks.trigger("on_step_end", self)
                if self.step % self.config.log_every == 0 or self.step == self.config.steps or step_metrics["bad_step"]:
                    self.metrics = self._record(step_metrics, latents, counts,
                                                step_time=time.perf_counter() - step_started,
                                                elapsed=time.perf_counter() - started)
                    self.callbacks.trigger("on_log", self)
                preempted = self._agreed_stop(stop.signal)
                # no periodic checkpoint after a skipped step: it would push the last good one out (keep_checkpoints)
                periodic = self.step % self.config.save_every == 0 and not step_metrics["bad_step"]
                if self.run_dir is not None and (periodic or preempted or self.step == self.config.steps):
                    self.save_checkpoint()
                    if not step_metrics["bad_step"]:
                        self.last_good_checkpoint = self.last_checkpoint
                    self.callbacks.trigger("on_checkpoint", self)
                if step_metrics["bad_step"]:
                    self._after_bad_step(step_metrics)
                if preempted:
                    self.preempted_by = stop.signal or "a preemption signal on another rank"
                    log.warning("%s: stopped after step %d (checkpoint %s)", self.preempted_by, self.step,
                                self.last_checkpoint)
                    break
        self.callbacks.trigger("on_train_end", self)
        return self.metrics

    def _agreed_stop(self, signal_name: str | None) -> bool:
        """Whether any rank was asked to stop (all ranks must stop after the same step)."""
        if not self.runtime.distributed:
            return signal_name is not None
        flag = torch.tensor([signal_name is not None], dtype=torch.int32, device=self.runtime.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())

    def _after_bad_step(self, step_metrics: dict) -> None:
        """Count a skipped update; after ``max_bad_steps`` in a row restore the weights and optimiser of the
        last checkpoint written after a good step (the data stream and the step count go on, past the
        batches that failed), or stop: when asked to, when there is none, or when it was restored before."""
        log.warning("step %d: non-finite %s; the update was skipped (%d in a row); documents: %s", self.step,
                    step_metrics["bad_values"], self.consecutive_bad_steps, step_metrics["documents"])
        if self.consecutive_bad_steps < self.config.max_bad_steps:
            return
        where = f"{self.consecutive_bad_steps} steps in a row up to step {self.step} had a non-finite loss or gradient"
        good = self.last_good_checkpoint
        if self.config.on_bad_steps == "stop" or good is None or good == self.restored_from:
            reason = ("on_bad_steps is 'stop'" if self.config.on_bad_steps == "stop" else
                      "there is no checkpoint of a good step to restore" if good is None else
                      f"{good} was restored already and the run failed again")
            raise BadStepsError(f"{where}; stopping because {reason}. The last documents: {step_metrics['documents']}")
        checkpoint = read_checkpoint(good)
        load_full_state(self.model, self.optimizer, checkpoint.weights, checkpoint.state["optimizer"])
        self.restored_from, self.consecutive_bad_steps = good, 0
        log.warning("%s; restored the weights and optimiser of %s (step %d) and went on", where, good, checkpoint.step)
        self.callbacks.trigger("on_restore", self)

    def _forward_and_loss(self, images: torch.Tensor, input_ids: torch.Tensor, inputs: dict,
                          shared: tuple[list[dict], int, torch.Tensor] | None = None):
        """-> (named losses, image latents): what ``torch.compile`` captures when ``config.compile``.
        ``shared`` = (every micro-batch's cached pairs, this one's index, the step's generation targets):
        this micro-batch's fresh pairs replace its cached ones among the step's (see _optimizer_step)."""
        outputs = self.forward_model(images, input_ids, **inputs)
        if shared is None:
            return self.objective(outputs), outputs["image_latents"]
        cached, index, step_targets = shared
        for key in PAIR_KEYS:
            outputs[key] = torch.cat([outputs[key] if k == index else c[key] for k, c in enumerate(cached)])
        if index != len(cached) - 1:  # the step-wide loss reads the scale directly: one micro-batch (the last,
            outputs["logit_scale"] = outputs["logit_scale"].detach()  # which DDP syncs) gives its gradient
        return self.objective(outputs, step_targets=step_targets), outputs["image_latents"]

    def _cache_pairs(self, micro_batches: list[tuple]) -> tuple[list[dict], torch.Tensor]:
        """A no-grad forward of every micro-batch: its pairs (detached) and the step's generation targets
        over all ranks, as open_clip's ``accum_freq`` caches features (one extra forward per micro-batch)."""
        cached, targets = [], 0
        with torch.no_grad(), self.runtime.autocast():
            for images, input_ids, inputs, _ in micro_batches:
                outputs = self.model(images, input_ids, **inputs)
                cached.append({key: outputs[key].detach() for key in PAIR_KEYS})
                targets = targets + self.objective.generation_mask(outputs).sum()
        return cached, global_count(targets, self.runtime.device)

    def _optimizer_step(self, batches):
        """One update from ``grad_accum_steps`` micro-batches. With accumulation, an objective whose pairs
        the causal forward gives (:attr:`PretrainingObjective.shares_contrastive_batch`) sees one
        contrastive batch of every micro-batch's pairs: each micro-batch's backward runs the step-wide
        contrastive loss with its own pairs fresh and the others cached, and its generation term divided
        by the step's targets, so the summed gradients and the losses are those of one batch of
        k × b rows. Other objectives average their micro-batches' losses."""
        lr = self.schedule.apply(self.step)
        accum = self.config.grad_accum_steps
        sums = dict.fromkeys(LOSS_KEYS, 0.0) | {"contrastive_accuracy": 0.0, "num_pairs": 0}
        counts = torch.zeros(3, dtype=torch.long)  # images, sequences, tokens on this rank
        documents: list[str] = []  # file:record of each row, named in the log when the step goes bad
        micro_batches = []
        for batch in (next(batches) for _ in range(accum)):
            images = batch["images"].to(self.runtime.device, non_blocking=True)
            input_ids = batch["input_ids"].to(self.runtime.device, non_blocking=True)
            with self.runtime.autocast():
                inputs = self.objective.model_inputs(self.model, images, input_ids)
            if "labels" in batch:  # conversations: the loss is on the labelled (answer) tokens only
                inputs["labels"] = batch["labels"].to(self.runtime.device, non_blocking=True)
            micro_batches.append((images, input_ids, inputs, batch))
        share = accum > 1 and self.objective.shares_contrastive_batch
        cached, step_targets = self._cache_pairs(micro_batches) if share else (None, None)
        for micro, (images, input_ids, inputs, batch) in enumerate(micro_batches):
            last = micro == accum - 1
            # DDP all-reduces (FSDP reduce-scatters) gradients only on the last micro-batch
            if self.sharded:
                self.model.set_requires_gradient_sync(last)
            sync = (self.forward_model.no_sync() if self.runtime.distributed and not self.sharded and not last
                    else contextlib.nullcontext())
            with sync:
                with self.runtime.autocast():
                    losses, latents = self.loss_step(images, input_ids, inputs,
                                                     (cached, micro, step_targets) if share else None)
                (losses["loss"] if share else losses["loss"] / accum).backward()
            # one host read per micro-batch: the losses averaged over ranks, this rank's in-batch accuracy
            # (averaged over ranks when logged) and the global pair count
            averaged = mean_over_ranks(torch.stack([losses[k].detach().float() for k in LOSS_KEYS]))
            *values, accuracy, num_pairs = torch.cat([averaged, torch.stack(
                [losses["contrastive_accuracy"].float(), losses["num_pairs"].float()])]).tolist()
            for key, value in zip(LOSS_KEYS, values):
                # shared: the generation parts add up to the step's term, the pair terms span the step each time
                sums[key] += value if share and key == "generation_loss" else value / accum
            sums["contrastive_accuracy"] += accuracy / accum
            sums["num_pairs"] = int(num_pairs) if share else sums["num_pairs"] + int(num_pairs)
            documents += [f"{p['file']}:{p['record']}" for p in batch.get("positions", [])]
            tokens = int((batch["input_ids"] != self.model.ids["pad"]).sum())  # counted on the host copy
            counts += torch.tensor([images.shape[0], input_ids.shape[0], tokens])
        if share:  # the reported total: each term once, at its weight
            weights = self.objective.weights
            sums["loss"] = sum(getattr(weights, term) * sums[f"{term}_loss"] for term in LOSS_TERMS)
        clip = self.config.grad_clip_norm if self.config.grad_clip_norm else float("inf")
        if self.sharded:
            average_replicated_gradients(self.replicated)
            grad_norm = clip_gradients(self.model, clip, self.replicated)
        else:
            grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip)
        grad_norm, logit_scale = torch.stack([grad_norm.float(), losses["logit_scale"].float()]).tolist()
        # the same on every rank (losses and the norm are global), so every rank skips the same steps
        bad_values = [key for key, value in (("loss", sums["loss"]), ("grad_norm", grad_norm)) if not math.isfinite(value)]
        if bad_values:
            self.bad_steps += 1
            self.consecutive_bad_steps += 1
        else:
            self.optimizer.step()
            self.consecutive_bad_steps = 0
        self.optimizer.zero_grad(set_to_none=True)
        self.model.clamp_logit_scale_()
        sums.update(lr=lr, grad_norm=grad_norm, logit_scale=logit_scale, bad_step=bool(bad_values),
                    bad_values=bad_values, documents=documents if bad_values else [])
        return sums, latents.detach(), counts

    def _record(self, step_metrics, latents, counts, *, step_time: float, elapsed: float) -> dict[str, Any]:
        """Everything logged for one step; collective (all ranks call it at the same steps)."""
        all_latents, _ = gather_rows(latents.float())
        counts = torch.cat([counts, self.seen]).to(self.runtime.device)
        accuracy = torch.tensor(step_metrics["contrastive_accuracy"], device=self.runtime.device)
        if self.runtime.distributed:
            dist.all_reduce(counts)
            accuracy = mean_over_ranks(accuracy)
        images, sequences, tokens, images_seen, sequences_seen, tokens_seen = counts.tolist()
        return {
            "step": self.step,
            **{k: step_metrics[k] for k in (*LOSS_KEYS, "num_pairs", "logit_scale", "lr", "grad_norm")},
            "bad_steps": self.bad_steps,  # updates skipped so far for a non-finite loss or gradient norm
            **({"skipped_update": True, "bad_values": step_metrics["bad_values"],
                "documents": step_metrics["documents"]} if step_metrics["bad_step"] else {}),
            "contrastive_accuracy": accuracy.item(),
            "latent_variance": latent_variance(all_latents),
            "effective_rank": effective_rank(all_latents),
            "images": images,
            "sequences": sequences,
            "tokens": tokens,
            "images_seen": images_seen,  # since step 0, all ranks (exact whatever log_every is)
            "sequences_seen": sequences_seen,
            "tokens_seen": tokens_seen,
            "step_time_s": step_time,
            "images_per_s": images / step_time,
            "tokens_per_s": tokens / step_time,
            "elapsed_s": elapsed,
        }

