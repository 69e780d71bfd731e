"""`DistillationTrainer`: HF `Trainer` plus teachers, the strategy chain and the KD losses.

The trainer owns the teachers (never submodules of the student: not in the optimizer, not in any
checkpoint, always eval mode, no gradient) and, per training batch:

  1. runs the student and computes the gold-label loss on every row;
  2. turns the student's uncertainty into a distillation plan (`strategies.plan_distillation`),
     once per optimizer step over the *global* batch (all ranks, all accumulated micro-batches);
  3. queries each teacher on its own rows only (through the teacher-output cache);
  4. adds the weighted logit-KD and hidden-state terms, scaled so that the DDP- and
     accumulation-averaged gradient is the gradient of the global batch's objective.

Global batch: HF fetches the micro-batches of an optimizer step up front (`get_batch_samples`).
With one micro-batch per step the student's own training forward gives the signal; with
gradient accumulation a no-grad pre-pass over the step's micro-batches does (`_prepass`). Under
DDP every rank all-gathers the [rows, C] logits, plans the same global plan, and keeps its rows.

With `--selection_scope epoch` the selection happens instead at each epoch start over the whole
training set (`EpochSelection`), and the epoch trains on the kept rows only.
"""

import inspect
import logging
import math
import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from accelerate.utils import broadcast
from torch.utils.data import DataLoader, Sampler
from transformers import Trainer, TrainerCallback
from transformers.trainer_callback import ExportableState
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from dynamic_kd.losses import KD_LOSSES, hidden_state_alignment, layer_map, supervised_loss
from dynamic_kd.models import model_inputs, unwrap_student
from dynamic_kd.strategies import (
    SELECTION_SCORES,
    num_selected,
    plan_distillation,
    reads_student,
    split_plan,
    student_signal,
    teachers_seeing_every_row,
)
from dynamic_kd.teachers import TeacherCounter
from dynamic_kd.uncertainty import normalized_entropy

logger = logging.getLogger(__name__)


class TrainingDiverged(RuntimeError):
    """The loss became NaN/Inf; the message names the step and the strategy statistics."""


@dataclass
class OptimizerStep:
    """The micro-batches of one optimizer step on this rank, and each one's share of the step's plan.

    batches: HF's prefetched micro-batches (None when `compute_loss` is called outside the training
    loop: that batch is then a step of its own).  count: number of micro-batches.
    """

    batches: list | None
    count: int
    position: int = 0  # the micro-batch compute_loss sees next
    signals: list | None = None  # pre-pass logits [n_m, C] per micro-batch (gradient accumulation)
    rng_states: list | None = None  # the RNG state each micro-batch's training forward starts from
    parts: list | None = None  # per micro-batch: (its routes, its share of the global batch's rows, its real rows)
    scale: int = 1  # world size x micro-batches: undoes HF's and DDP's averaging of the step's losses

    @property
    def done(self) -> bool:
        return self.position >= self.count


class DistillationTrainer(Trainer):
    """A `Trainer` whose loss is  ce_alpha * CE + sum over routes of (KD + REP) terms.

    teachers: {name: `teachers.Teacher`}.  strategies: the chain from `strategies.build_strategies`.
    kd_args: `DistillationArguments`.  task: `data.Task`.
    """

    # HF divides each micro-batch's loss by the micro-batch count (distillation multiplies it back: OptimizerStep.scale)
    loss_is_scaled_for_ga = False

    def __init__(self, *args, task, teachers=None, strategies=(), kd_args=None, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.label_names:  # a projection wrapper hides the student's `labels` argument
            self.label_names = ["labels"]
        self.task, self.teachers, self.strategies, self.kd_args = task, teachers or {}, list(strategies), kd_args
        self._stats = {}  # name -> device tensor [2]: (sum, count) since the last logging step
        self._step = None  # the OptimizerStep being trained
        self._diverged = self._first_bad = None  # device-side NaN/Inf record, read by _check_finite
        self.epoch_selection = None
        self.counter = TeacherCounter(self)
        self.add_callback(self.counter)
        if not self.teachers:  # plain fine-tuning (train_teacher.py)
            self.rep_mode = "none"
            return
        kd_name = kd_args.kd_loss if kd_args.kd_loss != "auto" else ("mse" if task.is_regression else "kl")
        self.kd_loss = KD_LOSSES[kd_name]
        self.rep_mode = kd_args.rep_layers if kd_args.rep_alpha > 0 else "none"
        student_layers = unwrap_student(self.model).config.num_hidden_layers
        self.layer_pairs = {name: layer_map(student_layers, t.num_layers) for name, t in self.teachers.items()}
        for teacher in self.teachers.values():
            # fp32 weights; the pass autocasts to `teacher.dtype` (on CPU a bf16-autocast teacher pass
            # measured ~2x faster than bf16 weights; layer norms and softmax stay fp32 either way).
            teacher.model.to(self.args.device)
        if kd_args.selection_scope == "epoch":
            self.epoch_selection = EpochSelection(self)
            self.add_callback(self.epoch_selection)

    # --- data ------------------------------------------------------------------------------
    def _set_signature_columns_if_needed(self):
        if self._signature_columns is None:
            # The student's own forward decides (not a projection wrapper's **kwargs); `idx` keys
            # the teacher caches, and HF would drop it as an unused column.
            forward = inspect.signature(unwrap_student(self.model).forward)
            # token_type_ids stay for a teacher that uses them; `model_inputs` feeds each model its part.
            self._signature_columns = [
                *forward.parameters,
                "token_type_ids",
                "label",
                "label_ids",
                *self.label_names,
                "idx",
            ]

    def _get_train_sampler(self, train_dataset=None):
        if self.epoch_selection is not None:
            return self.epoch_selection.sampler
        return super()._get_train_sampler(train_dataset)

    # --- loss ------------------------------------------------------------------------------
    def get_batch_samples(self, epoch_iterator, num_batches, device):
        """HF fetches all micro-batches of an optimizer step up front; keep them for the step's plan."""
        batches, num_items_in_batch = super().get_batch_samples(epoch_iterator, num_batches, device)
        if self.teachers and batches:
            self._step = OptimizerStep(batches, len(batches))
        return batches, num_items_in_batch

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        idx = inputs.pop("idx", None)
        labels = inputs.pop("labels")
        distil = model.training and bool(self.teachers)
        if distil:
            step, micro = self._enter_micro_batch(model)
        outputs = model(
            **model_inputs(unwrap_student(self.model), inputs), output_hidden_states=distil and self.rep_mode != "none"
        )
        logits = outputs.logits.float()
        smoothing = self.args.label_smoothing_factor
        if not distil:
            ce = supervised_loss(logits, labels, self.task.is_regression, label_smoothing=smoothing)
            return (ce, outputs) if return_outputs else ce
        if step.parts is None:  # --uncertainty_grad: the plan's weights keep the graph to these logits
            self._plan_step(step, logits if self.kd_args.uncertainty_grad else logits.detach())
        routes, share, real = step.parts[micro]
        # Rows past `real` repeat rows to fill an epoch's last global batch (DDP): no loss, no plan slot.
        if real:
            ce = supervised_loss(logits[:real], labels[:real], self.task.is_regression, label_smoothing=smoothing)
        else:  # every parameter still takes part in the backward pass (DDP)
            ce = 0.0 * logits.sum()
        kd_total = logits.new_zeros(())
        rep_total = logits.new_zeros(())
        for route in routes:
            teacher = self.teachers[route.teacher]
            teacher_logits, teacher_states = teacher.query(inputs, route.rows, idx, self.rep_mode)
            kd = self.kd_loss(
                logits[route.rows], teacher_logits, temperature=self.kd_args.temperature, reduction="none"
            )
            kd_total = kd_total + (route.kd_weight * kd).sum()
            if self.rep_mode != "none":
                rep = self._rep(
                    model, outputs.hidden_states, teacher_states, inputs["attention_mask"], route.rows, route.teacher
                )
                rep_total = rep_total + (route.rep_weight * rep).sum()
        # This micro-batch's part of the global objective  ce_alpha * mean CE + sum w KD + sum v REP,
        # times `scale`: HF divides by the micro-batch count and DDP averages over ranks.
        loss = step.scale * (self.kd_args.ce_alpha * share * ce + kd_total + rep_total)
        self._record_micro_batch(step, logits[:real], routes, share, loss, ce, kd_total, rep_total)
        return (loss, outputs) if return_outputs else loss

    def _enter_micro_batch(self, model):
        """(step, index of this micro-batch in it); runs the step's pre-pass at its first micro-batch."""
        step = self._step
        if step is None or step.done:
            step = self._step = OptimizerStep(None, 1)
        micro = step.position
        step.position += 1
        if micro == 0 and step.count > 1 and reads_student(self.strategies):
            self._prepass(model, step)
        if step.rng_states is not None:
            self._set_rng_state(step.rng_states[micro])
        return step, micro

    def _prepass(self, model, step: OptimizerStep):
        """No-grad student logits of every micro-batch of the step, before the first one's loss.

        Needed only with gradient accumulation and a strategy that reads the student: one extra
        forward without gradient per row, about a third of the student's training compute. Each
        forward starts from the RNG state its training forward will start from (restored by
        `_enter_micro_batch`), so the signal is the logits the loss is computed from, dropout
        included, and the run's random stream is the one it would be without the pre-pass.
        """
        student = self.accelerator.unwrap_model(model)
        step.signals, step.rng_states = [], []
        with torch.no_grad():
            for batch in step.batches:
                inputs = {k: v for k, v in self._prepare_inputs(batch).items() if k not in ("labels", "idx")}
                step.rng_states.append(self._rng_state())
                step.signals.append(student(**model_inputs(unwrap_student(student), inputs)).logits.float())

    def _rng_state(self):
        cuda = torch.cuda.get_rng_state(self.args.device) if self.args.device.type == "cuda" else None
        return torch.get_rng_state(), cuda

    def _set_rng_state(self, state):
        cpu, cuda = state
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state(cuda, self.args.device)

    def _plan_step(self, step: OptimizerStep, logits: torch.Tensor):
        """Plan the step's global batch once and keep this rank's micro-batches' shares of the plan.

        logits: [n, C] signal of the current micro-batch (used when it is the step's only one).
        """
        if step.signals is not None:
            local = step.signals
        elif step.count == 1:
            local = [logits]
        else:  # the chain reads only row counts: placeholders instead of a pre-pass
            local = [logits.new_zeros(len(batch["labels"]), logits.shape[1]) for batch in step.batches]
        sizes, global_logits = self._gather_rows(local)
        world, rank = self.args.world_size, self.args.process_index
        # The real rows come first in the global order; cap each micro-batch at what is left of them.
        left = self._real_rows(global_logits.shape[0])
        global_logits = global_logits[:left]
        for per_rank in sizes:
            for r, n in enumerate(per_rank):
                per_rank[r] = min(n, left)
                left -= per_rank[r]
        # One generator per optimizer step, seeded alike on every rank: the random strategy draws
        # the same rows everywhere and replays on resume.
        generator = torch.Generator().manual_seed(self.args.seed * 1_000_003 + self.state.global_step)
        signal = student_signal(global_logits, self.task.is_regression, generator, self.kd_args.uncertainty_grad)
        plan = plan_distillation(self.strategies, signal)
        parts = split_plan(plan, [n for per_rank in sizes for n in per_rank])
        total = global_logits.shape[0]
        step.scale = world * step.count
        step.parts = [(parts[m * world + rank], sizes[m][rank] / total, sizes[m][rank]) for m in range(step.count)]
        self._record_plan(plan, total, global_logits)

    def _real_rows(self, gathered: int) -> int:
        """How many of the step's `gathered` global-batch rows the epoch really holds.

        Under DDP accelerate's batch sampler (`even_batches`) completes an epoch's last global batch
        with rows from the epoch's start, placed after the real ones (in batch order, the order of
        `_gather_rows`); every step before the last of an epoch is full.
        """
        if self.args.world_size == 1:
            return gathered
        rows = self.epoch_selection.sampler.size if self.epoch_selection is not None else len(self.train_dataset)
        batch, world, accumulation = self._train_batch_size, self.args.world_size, self.args.gradient_accumulation_steps
        steps_per_epoch = math.ceil(math.ceil(math.ceil(rows / batch) / world) / accumulation)
        done = (self.state.global_step % steps_per_epoch) * batch * world * accumulation
        return min(gathered, rows - done)

    def _gather_rows(self, local: list) -> tuple[list, torch.Tensor]:
        """Every rank's micro-batch logits in global order: micro-batch, then rank, then row.

        local: this rank's [n_m, C] tensors, one per micro-batch.  Returns (sizes [m][rank],
        logits [B, C]). The order is the one one process reads the same batches in: under DDP
        rank r's micro-batch m is batch m x world + r of the step.
        """
        counts = [t.shape[0] for t in local]
        world = self.args.world_size
        if world == 1:
            return [[n] for n in counts], torch.cat(local)
        per_rank = self.accelerator.gather(torch.tensor(counts, device=local[0].device)).view(world, -1).tolist()
        longest = max(map(max, per_rank))
        padded = torch.stack([F.pad(t, (0, 0, 0, longest - t.shape[0])) for t in local])
        gathered = self.accelerator.gather(padded).view(world, len(local), longest, -1)
        sizes = [[per_rank[r][m] for r in range(world)] for m in range(len(local))]
        return sizes, torch.cat([gathered[r, m, : sizes[m][r]] for m in range(len(local)) for r in range(world)])

    def _rep(self, model, student_states, teacher_states, attention_mask, rows, teacher_name):
        """Per-row hidden-state alignment [K] between the student and one teacher's mapped layers."""
        pairs = self.layer_pairs[teacher_name]
        student = [student_states[s][rows] for s, _ in pairs]
        projections = getattr(self.accelerator.unwrap_model(model), "projections", {})
        projection = projections[teacher_name] if teacher_name in projections else None
        if self.rep_mode == "cls":
            # the cache holds [K, P, H] [CLS] states of the mapped teacher layers
            student = [state[:, :1] for state in student]
            teacher = [teacher_states[:, p : p + 1] for p in range(len(pairs))]
            mask = attention_mask[rows][:, :1]
        else:
            teacher = [teacher_states[t] for _, t in pairs]
            mask = None if self.kd_args.rep_include_padding else attention_mask[rows]  # None: every position counts
        normalization = self.kd_args.rep_normalization
        return hidden_state_alignment(student, teacher, mask, projection=projection, normalization=normalization)

    # --- statistics and the NaN/Inf check -------------------------------------------------
    # Both stay on the device and are read on the host only at logging steps, checkpoint saves
    # and the end of training (HF's own pattern for the loss): no per-step device sync.

    def _accumulate(self, key: str, total: torch.Tensor, count):
        count = count.float() if torch.is_tensor(count) else total.new_full((), float(count))
        pair = torch.stack([total.detach().float(), count])
        self._stats[key] = self._stats[key] + pair if key in self._stats else pair

    def _record_plan(self, plan, total: int, like: torch.Tensor):
        """The step's plan statistics (global: the same on every rank)."""
        zero = like.new_zeros(())
        selected = torch.zeros(total, dtype=torch.bool, device=like.device)
        for route in plan:
            selected[route.rows] = True
        self._accumulate("selected_fraction", selected.float().mean(), 1)
        if self.rep_mode != "none":
            self._accumulate("kd_weight", sum((r.kd_weight.sum() for r in plan), zero), 1)
            self._accumulate("rep_weight", sum((r.rep_weight.sum() for r in plan), zero), 1)
        if len(self.teachers) > 1:
            for name in self.teachers:
                routes = [r for r in plan if r.teacher == name]
                self._accumulate(f"{name}_teacher_weight", sum((r.kd_weight.sum() for r in routes), zero), 1)
                self._accumulate(f"{name}_teacher_fraction", zero + sum(r.rows.numel() for r in routes) / total, 1)

    def _record_micro_batch(self, step, logits, routes, share, loss, ce, kd_total, rep_total):
        """This micro-batch's loss terms and uncertainty, and the device-side NaN/Inf record."""
        part = 1 / step.scale  # its part of one optimizer step, over all ranks
        self._accumulate("loss_ce", share * ce.detach(), part)
        self._accumulate("loss_kd", kd_total.detach(), part)
        if self.rep_mode != "none":
            self._accumulate("loss_rep", rep_total.detach(), part)
        if not self.task.is_regression:
            u = normalized_entropy(logits.detach())
            chosen = torch.zeros_like(u, dtype=torch.bool)
            for route in routes:
                chosen[route.rows] = True
            self._accumulate("uncertainty", u.sum(), u.numel())
            self._accumulate("selected_uncertainty", (u * chosen).sum(), chosen.sum())
        loss = loss.detach()
        record = torch.stack(
            [loss.new_full((), self.state.global_step + 1), loss, ce.detach(), kd_total.detach(), rep_total.detach()]
        )
        bad = ~torch.isfinite(loss)
        if self._first_bad is None:
            self._first_bad, self._diverged = record, bad
        else:  # keep the first non-finite step's record
            self._first_bad = torch.where(self._diverged, self._first_bad, record)
            self._diverged = self._diverged | bad

    def _check_finite(self):
        """Stop with TrainingDiverged if any rank's loss was NaN/Inf since the run began.

        Collective under DDP; every rank calls it at the same points (logging steps, checkpoint
        saves, the end of training), so a divergence stops the run at the latest there, naming
        the first step whose loss was not finite.
        """
        if self._first_bad is None:
            return
        record = torch.cat([self._diverged.float().view(1), self._first_bad]).view(1, -1)
        diverged = [row for row in self.accelerator.gather(record).tolist() if row[0]]
        if diverged:
            _, step, loss, ce, kd, rep = min(diverged, key=lambda row: row[1])
            raise TrainingDiverged(
                f"loss is {loss} at step {int(step)} (ce {ce:.4g}, kd {kd:.4g}, rep {rep:.4g}, {self._stats_line()}); "
                "lower --learning_rate, check the teachers' outputs, or drop --fp16"
            )

    def _stats_line(self):
        means = {key: pair.tolist() for key, pair in self._stats.items()}
        return ", ".join(f"{key} {total / count:.4g}" for key, (total, count) in means.items() if count)

    def log(self, logs, start_time=None):
        if "loss" in logs or "train_loss" in logs:  # a training logging step, or the end of training
            self._check_finite()
        if "loss" in logs and self._stats:
            keys = sorted(self._stats)
            table = self.accelerator.reduce(
                torch.stack([self._stats[key].to(self.args.device) for key in keys]), reduction="sum"
            )
            for key, (total, count) in zip(keys, table.tolist()):
                logs[f"dkd/{key}"] = round(total / count, 6) if count else float("nan")
            self._stats.clear()
        super().log(logs, start_time)

    # --- checkpoints -------------------------------------------------------------------------
    def _teacher_checkpoint_prefix(self, checkpoint: str, name: str) -> str:
        return os.path.join(checkpoint, f"teacher_cache-{name}-rank{self.args.process_index}")

    def _save_checkpoint(self, model, trial):
        """Store each rank's teacher outputs (memory) or a reference to the shared store (disk) in the
        checkpoint, before HF writes trainer_state.json.

        A resumed run then reuses exactly the teacher outputs of the interrupted one (recomputing
        them on differently padded batches changes the last bits of the final student).
        """
        self._check_finite()  # never checkpoint a diverged student
        checkpoint = os.path.join(
            self._get_output_dir(trial=trial), f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        )
        os.makedirs(checkpoint, exist_ok=True)
        for name, teacher in self.teachers.items():
            teacher.save_checkpoint(self._teacher_checkpoint_prefix(checkpoint, name))
        super()._save_checkpoint(model, trial)

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        super()._load_from_checkpoint(resume_from_checkpoint, model)
        for name, teacher in self.teachers.items():
            teacher.load_checkpoint(self._teacher_checkpoint_prefix(resume_from_checkpoint, name))

    def teacher_forward_examples(self) -> int:
        """Examples passed through a teacher forward in this run, summed over teachers and ranks."""
        return self.counter.total()

    def end_of_epoch(self):
        for teacher in self.teachers.values():
            teacher.sync()

    def prefill_teachers(self):
        """Before training: fill the stores of the teachers that will see every row, in one
        length-sorted large-batch pass each (a resumed run only fills what its stores lack).
        Full-token states (--rep_layers all) need a teacher forward every step anyway."""
        if not self.teachers or self.rep_mode == "all":
            return
        for name in teachers_seeing_every_row(self.kd_args):
            self.teachers[name].prefill(
                self.train_dataset, self.data_collator, self.args.device, self.args.dataloader_num_workers
            )

    # --- epoch-scope selection -------------------------------------------------------------
    def score_training_set(self, strategy: str, epoch: int) -> torch.Tensor:
        """Informativeness [N] of every training row by the current student (inference mode).

        Under DDP each rank scores a contiguous 1/world share and the shares are all-gathered:
        every rank returns the same [N] tensor, at 1/world of the scoring cost.
        """
        dataset = self.train_dataset
        if strategy == "random":
            return torch.rand(len(dataset), generator=torch.Generator().manual_seed(self.args.seed * 7919 + epoch))
        world, rank = self.args.world_size, self.args.process_index
        bounds = [len(dataset) * r // world for r in range(world + 1)]
        shard = dataset.select(range(bounds[rank], bounds[rank + 1]))
        model = self.accelerator.unwrap_model(self.model)
        was_training = model.training
        model.eval()
        loader = DataLoader(
            shard.remove_columns([c for c in ("labels", "idx") if c in shard.column_names]),
            batch_size=self.args.per_device_eval_batch_size,
            collate_fn=self.data_collator,
            shuffle=False,
        )
        scores = [torch.zeros(0, device=self.args.device)]
        with torch.no_grad(), self.accelerator.autocast():
            for batch in loader:
                batch = {k: v.to(self.args.device) for k, v in batch.items()}
                scores.append(
                    SELECTION_SCORES[strategy](model(**model_inputs(unwrap_student(model), batch)).logits.float())
                )
        model.train(was_training)
        scores = torch.cat(scores)
        if world == 1:
            return scores.cpu()
        longest = max(b - a for a, b in zip(bounds, bounds[1:]))
        gathered = self.accelerator.gather(F.pad(scores, (0, longest - scores.numel())).view(1, -1))
        return torch.cat([gathered[r, : bounds[r + 1] - bounds[r]] for r in range(world)]).cpu()

    def from_first_rank(self, tensor: torch.Tensor) -> torch.Tensor:
        """Rank 0's value of `tensor` on every rank (collective under DDP; same shape everywhere)."""
        if self.args.world_size == 1:
            return tensor
        return broadcast(tensor.to(self.args.device), from_process=0).cpu()


class EpochSubsetSampler(Sampler):
    """Yields this epoch's kept rows (a dataset-position list) in a seeded shuffled order.

    Its length is fixed, k = max(1, floor(r * N)), so the Trainer plans the real number of steps.
    """

    def __init__(self, num_rows: int, ratio: float, seed: int):
        self.size, self.seed = num_selected(num_rows, ratio), seed
        self.positions = torch.arange(self.size)
        self.epoch = 0

    def __len__(self):
        return self.size

    def __iter__(self):
        order = torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed + self.epoch))
        return iter(self.positions[order].tolist())


class EpochSelection(TrainerCallback, ExportableState):
    """--selection_scope epoch: at each epoch start keep the top-r training rows by uncertainty.

    The kept rows of the current epoch are stored in checkpoints, so a resumed run trains on the
    same rows instead of re-scoring with a mid-epoch student. Under DDP the ranks score shares of
    the set, gather the scores, and all train on rank 0's choice (broadcast), so no rank can drift
    to another subset.
    """

    def __init__(self, trainer):
        self.trainer = trainer
        kd_args = trainer.kd_args
        self.strategy, self.ratio = kd_args.selection_strategy, kd_args.selection_ratio
        args = trainer.args
        self.sampler = EpochSubsetSampler(
            len(trainer.train_dataset), self.ratio, args.seed if args.data_seed is None else args.data_seed
        )
        self.saved = None

    def state(self):
        return {"args": {}, "attributes": {"epoch": self.sampler.epoch, "positions": self.sampler.positions.tolist()}}

    def on_train_begin(self, args, state, control, **kwargs):
        saved = (state.stateful_callbacks or {}).get(type(self).__name__)
        self.saved = saved.get("attributes") if isinstance(saved, dict) and state.global_step > 0 else None

    def on_epoch_begin(self, args, state, control, **kwargs):
        epoch = math.floor(state.epoch + 1e-6) if state.epoch else 0
        self.sampler.epoch = epoch
        if self.saved is not None and self.saved.get("epoch") == epoch:
            self.sampler.positions = torch.tensor(self.saved["positions"])
            logger.info("epoch %d: reusing the %d rows selected before the interruption", epoch, self.sampler.size)
            return
        scores = self.trainer.score_training_set(self.strategy, epoch)
        positions = torch.sort(scores, descending=True, stable=True).indices[: self.sampler.size]
        # Every rank must train on one selection: rank 0's choice, not each rank's own sort.
        self.sampler.positions = self.trainer.from_first_rank(positions)
        logger.info(
            "epoch %d: training on the %d most informative of %d rows (%s)",
            epoch,
            self.sampler.size,
            len(scores),
            self.strategy,
        )
