"""HF `Trainer` plus teachers (outside the student: not optimized, not checkpointed), strategies, KD losses."""

import inspect
import logging
import math
import os
from dataclasses import dataclass

import torch
from accelerate.utils import broadcast, gather_object
from torch.utils.data import DataLoader, Sampler
from transformers import Trainer, TrainerCallback
from transformers.trainer_callback import ExportableState
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from dynamic_kd.losses import KD_LOSSES, hidden_state_alignment, layer_map, supervised_loss
from dynamic_kd.models import model_inputs, unwrap_student
from dynamic_kd.strategies import (
    SELECTION_SCORES,
    covered_rows,
    num_selected,
    plan_distillation,
    plan_statistics,
    reads_student,
    split_plan,
    student_signal,
    teachers_seeing_every_row,
)
from dynamic_kd.teachers import TeacherCounter
from dynamic_kd.uncertainty import normalized_entropy

logger = logging.getLogger(__name__)


class TrainingDiverged(RuntimeError):
    """The loss became NaN or Inf (the recipe exits 3 with its message)."""


@dataclass
class OptimizerStep:
    """One optimizer step's micro-batches on this rank and their parts of its plan."""

    batches: list  # outside the training loop: the one batch compute_loss sees
    position: int = 0  # the micro-batch compute_loss sees next
    signals: list | None = None  # pre-pass logits [n_m, C] per micro-batch
    rng_states: list | None = None  # (CPU, CUDA) RNG state of each micro-batch's forward
    parts: list | None = None  # per micro-batch: (routes, share of the global rows, real rows)
    scale: int = 1  # world size x micro-batches: undoes HF's and DDP's averaging


class DistillationTrainer(Trainer):
    """Loss = ce_alpha * CE + the plan's KD and REP terms, planned over an optimizer step's global batch."""

    loss_is_scaled_for_ga = False  # HF divides by the micro-batch count; OptimizerStep.scale undoes it

    def __init__(self, *args, task, teachers=None, strategies=(), kd_args=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.label_names = self.label_names or ["labels"]  # a projection wrapper hides `labels`
        self.task, self.teachers, self.strategies, self.kd_args = task, teachers or {}, list(strategies), kd_args
        self._stats = {}  # name -> device tensor [2]: (sum, count) since the last log
        self._step = None
        self._first_bad = None  # device-side [non-finite?, step, loss, ce, kd, rep]
        self.epoch_selection = None
        self.counter = TeacherCounter(self)
        self.add_callback(self.counter)
        self.rep_mode = "none"
        if not self.teachers:  # plain fine-tuning (train_teacher.py)
            return
        auto = "mse" if task.is_regression else "kl"
        self.kd_loss = KD_LOSSES[auto if kd_args.kd_loss == "auto" else kd_args.kd_loss]
        if kd_args.kd_rep_alpha > 0:
            self.rep_mode = kd_args.rep_layers
        depth = unwrap_student(self.model).config.num_hidden_layers
        self.layer_pairs = {}
        for name, teacher in self.teachers.items():  # fp32 weights: the pass autocasts (~2x faster on CPU)
            teacher.model.to(self.args.device)
            self.layer_pairs[name] = layer_map(depth, teacher.model.config.num_hidden_layers)
        if kd_args.selection_scope == "epoch":
            self.epoch_selection = EpochSelection(self)
            self.add_callback(self.epoch_selection)

    def _set_signature_columns_if_needed(self):
        if self._signature_columns is None:  # the student's, a teacher's token_type_ids, the stores' idx
            forward = inspect.signature(unwrap_student(self.model).forward).parameters
            self._signature_columns = [*forward, "token_type_ids", "label", "label_ids", *self.label_names, "idx"]

    def _get_train_sampler(self, train_dataset=None):
        return self.epoch_selection if self.epoch_selection is not None else super()._get_train_sampler(train_dataset)

    def get_batch_samples(self, epoch_iterator, num_batches, device):
        batches, num_items_in_batch = super().get_batch_samples(epoch_iterator, num_batches, device)
        if self.teachers and batches:
            self._step = OptimizerStep(batches)
        return batches, num_items_in_batch

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        idx = inputs.pop("idx", None)
        labels = inputs.pop("labels")
        distil = model.training and bool(self.teachers)
        if distil:
            step, micro = self._enter_micro_batch(model, inputs)
        hidden = distil and self.rep_mode != "none"
        outputs = model(**model_inputs(unwrap_student(self.model), inputs), output_hidden_states=hidden)
        logits = outputs.logits.float()
        real = len(logits)
        if distil:
            if step.parts is None:  # --uncertainty_grad: the weights keep the graph to these logits
                self._plan_step(step, logits if self.kd_args.uncertainty_grad else logits.detach())
            routes, share, real = step.parts[micro]  # rows past `real` pad an epoch's last global batch (DDP)
        if real:
            smoothing = self.args.label_smoothing_factor
            ce = supervised_loss(logits[:real], labels[:real], self.task.is_regression, label_smoothing=smoothing)
        else:  # every parameter still takes part in the backward pass (DDP)
            ce = 0.0 * logits.sum()
        if not distil:
            return (ce, outputs) if return_outputs else ce
        kd_total = rep_total = logits.new_zeros(())
        for route in routes:
            teacher_logits, states = self.teachers[route.teacher].query(inputs, route.rows, idx, self.rep_mode)
            kd = self.kd_loss(logits[route.rows], teacher_logits, self.kd_args.temperature, reduction="none")
            kd_total = kd_total + (route.kd_weight * kd).sum()
            if self.rep_mode != "none":
                mask = inputs["attention_mask"]
                rep = self._rep(model, outputs.hidden_states, states, mask, route.rows, route.teacher)
                rep_total = rep_total + (route.rep_weight * rep).sum()
        loss = step.scale * (self.kd_args.ce_alpha * share * ce + kd_total + rep_total)
        self._record_micro_batch(step, logits[:real], routes, share, loss, ce, kd_total, rep_total)
        return (loss, outputs) if return_outputs else loss

    def _enter_micro_batch(self, model, inputs):
        """(step, micro-batch index). A chain that reads the student gets a no-grad pre-pass of all micro-batches,
        each from the RNG state its training forward then restores (same dropout)."""
        step, device = self._step, self.args.device
        if step is None or step.position >= len(step.batches):
            step = self._step = OptimizerStep([inputs])
        micro = step.position
        step.position += 1
        if micro == 0 and len(step.batches) > 1 and reads_student(self.strategies):
            student = self.accelerator.unwrap_model(model)
            step.signals, step.rng_states = [], []
            with torch.no_grad():
                for batch in step.batches:
                    batch = {k: v for k, v in self._prepare_inputs(batch).items() if k not in ("labels", "idx")}
                    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
                    step.rng_states.append((torch.get_rng_state(), cuda))
                    step.signals.append(student(**model_inputs(unwrap_student(student), batch)).logits.float())
        if step.rng_states is not None:
            cpu, cuda = step.rng_states[micro]
            torch.set_rng_state(cpu)
            if cuda is not None:
                torch.cuda.set_rng_state(cuda, device)
        return step, micro

    def _plan_step(self, step: OptimizerStep, logits: torch.Tensor):
        """Plan the step's global batch; keep this rank's parts."""
        if step.signals is not None:
            local = step.signals
        elif len(step.batches) == 1:
            local = [logits]
        else:  # the chain reads only row counts: placeholders instead of a pre-pass
            local = [logits.new_zeros(len(batch["labels"]), logits.shape[1]) for batch in step.batches]
        sizes, global_logits = self._gather_rows(local)
        world, rank = self.args.world_size, self.args.process_index
        # The real rows come first in the global order: cap each micro-batch at what is left of them.
        left = self._real_rows(global_logits.shape[0])
        global_logits = global_logits[:left]
        for per_rank in sizes:
            for r, n in enumerate(per_rank):
                per_rank[r] = min(n, left)
                left -= per_rank[r]
        # Seeded alike on every rank: the random strategy draws the same rows everywhere, and on resume.
        generator = torch.Generator().manual_seed(self.args.seed * 1_000_003 + self.state.global_step)
        signal = student_signal(global_logits, self.task.is_regression, generator, self.kd_args.uncertainty_grad)
        plan = plan_distillation(self.strategies, signal)
        parts = split_plan(plan, [n for per_rank in sizes for n in per_rank])
        total = global_logits.shape[0]
        step.scale = world * len(step.batches)
        step.parts = [(parts[m * world + rank], n[rank] / total, n[rank]) for m, n in enumerate(sizes)]
        for key, value in plan_statistics(plan, total, self.teachers, self.rep_mode != "none").items():
            self._accumulate(key, value, 1)  # the same on every rank

    def _real_rows(self, gathered: int) -> int:
        """Of the step's `gathered` rows, those not padding (DDP pads an epoch's last global batch)."""
        if self.args.world_size == 1:
            return gathered
        rows = self.epoch_selection.size if self.epoch_selection is not None else len(self.train_dataset)
        batch, world, accumulation = self._train_batch_size, self.args.world_size, self.args.gradient_accumulation_steps
        steps_per_epoch = math.ceil(math.ceil(math.ceil(rows / batch) / world) / accumulation)
        return min(gathered, rows - (self.state.global_step % steps_per_epoch) * batch * world * accumulation)

    def _gather_rows(self, local: list) -> tuple[list, torch.Tensor]:
        """(sizes [m][rank], logits [B, C]) of all micro-batches; rank r's m-th is part m x world + r."""
        if self.args.world_size == 1:
            return [[len(t)] for t in local], torch.cat(local)
        per_micro = list(zip(*gather_object([[t.cpu() for t in local]])))  # [micro-batch][rank]
        sizes = [[len(t) for t in ranks] for ranks in per_micro]
        return sizes, torch.cat([t for ranks in per_micro for t in ranks]).to(local[0].device)

    def _rep(self, model, student_states, teacher_states, attention_mask, rows, teacher_name):
        """Per-row hidden-state alignment [K] with one teacher's mapped layers."""
        pairs = self.layer_pairs[teacher_name]
        projections = getattr(self.accelerator.unwrap_model(model), "projections", {})
        projection = projections[teacher_name] if teacher_name in projections else None
        if self.rep_mode == "cls":  # [K, H] states; the teacher's are [K, P, H] of its mapped layers
            student = [student_states[s][rows, 0] for s, _ in pairs]
            teacher, mask = teacher_states.unbind(1), None
        else:
            student = [student_states[s][rows] for s, _ in pairs]
            teacher = [teacher_states[t] for _, t in pairs]
            mask = None if self.kd_args.rep_include_padding else attention_mask[rows]  # None: every position counts
        normalization = self.kd_args.rep_normalization
        return hidden_state_alignment(student, teacher, mask, projection=projection, normalization=normalization)

    # --- statistics and the NaN/Inf check: on the device, read at logging steps and saves

    def _accumulate(self, key: str, total: torch.Tensor, count):
        pair = torch.stack([total.detach().float(), torch.as_tensor(count, device=total.device).float()])
        self._stats[key] = self._stats[key] + pair if key in self._stats else pair

    def _record_micro_batch(self, step, logits, routes, share, loss, ce, kd_total, rep_total):
        part = 1 / step.scale  # its part of one optimizer step, over all ranks
        self._accumulate("loss_ce", share * ce, part)
        self._accumulate("loss_kd", kd_total, part)
        if self.rep_mode != "none":
            self._accumulate("loss_rep", rep_total, part)
        if not self.task.is_regression:
            u = normalized_entropy(logits.detach())
            chosen = covered_rows(routes, u.numel(), u.device)
            self._accumulate("uncertainty", u.sum(), u.numel())
            self._accumulate("selected_uncertainty", (u * chosen).sum(), chosen.sum())
        step_number = loss.new_full((), self.state.global_step + 1)
        record = torch.stack([(~loss.isfinite()).float(), step_number, loss, ce, kd_total, rep_total]).detach()
        first = self._first_bad  # the first non-finite step's record stays
        self._first_bad = record if first is None else torch.where(first[0] > 0, first, record)

    def _check_finite(self):
        """Raise TrainingDiverged at the first step whose loss was NaN/Inf on any rank (collective)."""
        if self._first_bad is None:
            return
        diverged = [row for row in self.accelerator.gather(self._first_bad.view(1, -1)).tolist() if row[0]]
        if diverged:
            _, step, loss, ce, kd, rep = min(diverged, key=lambda row: row[1])
            means = {key: pair.tolist() for key, pair in self._stats.items()}
            stats = ", ".join(f"{key} {total / count:.4g}" for key, (total, count) in means.items() if count)
            raise TrainingDiverged(
                f"loss is {loss} at step {int(step)} (ce {ce:.4g}, kd {kd:.4g}, rep {rep:.4g}, {stats}); "
                "lower --learning_rate, check the teachers' outputs, or drop --fp16"
            )

    def log(self, logs, start_time=None):
        if "loss" in logs or "train_loss" in logs:  # a training logging step or the end of training
            self._check_finite()
        if "loss" in logs and self._stats:
            keys = sorted(self._stats)
            table = self.accelerator.reduce(torch.stack([self._stats[key] for key in keys]), reduction="sum")
            for key, (total, count) in zip(keys, table.tolist()):
                logs[f"dkd/{key}"] = round(total / count, 6) if count else float("nan")
            self._stats.clear()
        super().log(logs, start_time)

    def _teacher_checkpoint_prefix(self, checkpoint: str, name: str) -> str:
        return os.path.join(checkpoint, f"teacher_cache-{name}-rank{self.args.process_index}")

    def _save_checkpoint(self, model, trial):
        """Teacher outputs go in the checkpoint: recomputed on other padding, their last bits would differ."""
        self._check_finite()
        folder = f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        checkpoint = os.path.join(self._get_output_dir(trial=trial), folder)
        os.makedirs(checkpoint, exist_ok=True)
        for name, teacher in self.teachers.items():
            teacher.save_checkpoint(self._teacher_checkpoint_prefix(checkpoint, name))
        super()._save_checkpoint(model, trial)

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        super()._load_from_checkpoint(resume_from_checkpoint, model)
        for name, teacher in self.teachers.items():
            teacher.load_checkpoint(self._teacher_checkpoint_prefix(resume_from_checkpoint, name))

    def teacher_forward_examples(self) -> int:
        """Examples through a teacher forward in this run, all teachers and ranks (collective)."""
        return self.counter.total()

    def end_of_epoch(self):
        for teacher in self.teachers.values():
            teacher.sync()

    def prefill_teachers(self):
        """Fill the stores of the teachers that see every row (--rep_layers all runs them anyway)."""
        if not self.teachers or self.rep_mode == "all":
            return
        args = self.args
        for name in teachers_seeing_every_row(self.kd_args):
            self.teachers[name].prefill(
                self.train_dataset, self.data_collator, args.device, args.dataloader_num_workers
            )

    def score_training_set(self, strategy: str, epoch: int) -> torch.Tensor:
        """Informativeness [N] of every training row to the student (each rank scores a shard)."""
        dataset, args = self.train_dataset, self.args
        if strategy == "random":
            return torch.rand(len(dataset), generator=torch.Generator().manual_seed(args.seed * 7919 + epoch))
        shard = dataset.shard(args.world_size, args.process_index, contiguous=True)
        shard = shard.remove_columns([c for c in ("labels", "idx") if c in shard.column_names])
        model = self.accelerator.unwrap_model(self.model)
        was_training = model.training
        model.eval()
        loader = DataLoader(shard, args.per_device_eval_batch_size, collate_fn=self.data_collator)
        scores = [torch.zeros(0, device=args.device)]
        with torch.no_grad(), self.accelerator.autocast():
            for batch in loader:
                logits = model(**model_inputs(unwrap_student(model), self._prepare_inputs(batch))).logits
                scores.append(SELECTION_SCORES[strategy](logits.float()))
        model.train(was_training)
        return torch.cat(gather_object([torch.cat(scores).cpu()]))  # the ranks' shares in order


class EpochSelection(TrainerCallback, ExportableState, Sampler):
    """--selection_scope epoch: the top-r rows, chosen at each epoch start by rank 0 and kept in
    checkpoints (a resumed run does not re-score mid-epoch)."""

    def __init__(self, trainer):
        self.trainer, self.strategy, args = trainer, trainer.kd_args.selection_strategy, trainer.args
        self.seed = args.seed if args.data_seed is None else args.data_seed
        self.size = num_selected(len(trainer.train_dataset), trainer.kd_args.selection_ratio)
        self.positions, self.epoch, self.saved = torch.arange(self.size), 0, None

    def __len__(self):
        return self.size

    def __iter__(self):
        order = torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed + self.epoch))
        return iter(self.positions[order].tolist())

    def state(self):
        return {"args": {}, "attributes": {"epoch": self.epoch, "positions": self.positions.tolist()}}

    def on_train_begin(self, args, state, control, **kwargs):
        saved = (state.stateful_callbacks or {}).get(type(self).__name__)
        self.saved = saved.get("attributes") if isinstance(saved, dict) and state.global_step > 0 else None

    def on_epoch_begin(self, args, state, control, **kwargs):
        epoch = self.epoch = int((state.epoch or 0) + 1e-6)
        if self.saved is not None and self.saved.get("epoch") == epoch:
            self.positions = torch.tensor(self.saved["positions"])
            logger.info("epoch %d: reusing the %d rows selected before resuming", epoch, self.size)
            return
        scores = self.trainer.score_training_set(self.strategy, epoch)
        positions = torch.sort(scores, descending=True, stable=True).indices[: self.size]
        if args.world_size > 1:
            positions = broadcast(positions.to(args.device), from_process=0).cpu()
        self.positions = positions
        logger.info("epoch %d: training on the %d most informative of %d rows", epoch, self.size, len(scores))
