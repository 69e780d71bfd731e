"""`DistillationTrainer`: HF `Trainer` plus teachers, the strategy chain and the KD losses.

The trainer owns the teachers (never submodules of the student: not in the optimizer, not in any
checkpoint, always eval mode, no gradient) and, per training batch:

  1. runs the student and computes the gold-label loss on every row;
  2. turns the student's uncertainty into a distillation plan (`strategies.plan_distillation`);
  3. queries each teacher on its own rows only (through the teacher-output cache);
  4. adds the weighted logit-KD and hidden-state terms.

With `--selection_scope epoch` the selection happens instead at each epoch start over the whole
training set (`EpochSelection`), and the epoch trains on the kept rows only.
"""
import functools
import inspect
import logging
import math
import os
from collections import defaultdict

import torch
import torch.distributed as dist
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch.utils.data import DataLoader, Sampler
from transformers import Trainer, TrainerCallback
from transformers.trainer_callback import ExportableState
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from dynamic_kd.files import atomic_path
from dynamic_kd.losses import KD_LOSSES, hidden_state_alignment, layer_map, supervised_loss
from dynamic_kd.models import unwrap_student
from dynamic_kd.strategies import SELECTION_SCORES, num_selected, plan_distillation, student_signal
from dynamic_kd.teachers import TEACHER_DTYPES

logger = logging.getLogger(__name__)


class TrainingDiverged(RuntimeError):
    """The loss became NaN/Inf; the message names the step and the strategy statistics."""


class DistillationTrainer(Trainer):
    """A `Trainer` whose loss is  ce_alpha * CE + sum over routes of (KD + REP) terms.

    teachers: {name: `teachers.Teacher`}.  strategies: the chain from `strategies.build_strategies`.
    kd_args: `DistillationArguments`.  task: `data.Task`.
    """

    loss_is_scaled_for_ga = False  # compute_loss returns a per-batch mean

    def __init__(self, *args, task, teachers=None, strategies=(), kd_args=None, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.label_names:  # a projection wrapper hides the student's `labels` argument
            self.label_names = ["labels"]
        self.task, self.teachers, self.strategies, self.kd_args = task, teachers or {}, list(strategies), kd_args
        self._stats = defaultdict(list)
        self._step_seen, self._micro_step = -1, 0
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
        dtype = TEACHER_DTYPES[kd_args.teacher_dtype]
        for teacher in self.teachers.values():
            teacher.model.to(self.args.device)
            if dtype is None:  # auto: the student's mixed precision
                teacher.autocast = self.accelerator.autocast
            elif dtype != torch.float32:
                # Autocast, not cast weights: on CPU a bf16-autocast teacher pass measured ~2x faster
                # than bf16 weights (layer norms and softmax stay fp32 either way).
                teacher.autocast = functools.partial(torch.autocast, device_type=self.args.device.type, dtype=dtype)
        if kd_args.selection_scope == "epoch":
            self.epoch_selection = EpochSelection(self)
            self.add_callback(self.epoch_selection)

    # --- data ------------------------------------------------------------------------------
    def _set_signature_columns_if_needed(self):
        if self._signature_columns is None:
            # The student's own forward decides (not a projection wrapper's **kwargs); `idx` keys
            # the teacher caches, and HF would drop it as an unused column.
            forward = inspect.signature(unwrap_student(self.model).forward)
            self._signature_columns = [*forward.parameters, "label", "label_ids", *self.label_names, "idx"]

    def _get_train_sampler(self, train_dataset=None):
        if self.epoch_selection is not None:
            return self.epoch_selection.sampler
        return super()._get_train_sampler(train_dataset)

    # --- loss ------------------------------------------------------------------------------
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        idx = inputs.pop("idx", None)
        labels = inputs.pop("labels")
        distil = model.training and bool(self.teachers)
        outputs = model(**inputs, output_hidden_states=distil and self.rep_mode != "none")
        logits = outputs.logits.float()
        ce = supervised_loss(logits, labels, self.task.is_regression)
        if not distil:
            return (ce, outputs) if return_outputs else ce
        signal = student_signal(logits, self.task.is_regression, self._random_generator())
        plan = plan_distillation(self.strategies, signal)
        kd_total = logits.new_zeros(())
        rep_total = logits.new_zeros(())
        for route in plan:
            teacher = self.teachers[route.teacher]
            teacher_logits, teacher_states = teacher.query(inputs, route.rows, idx, self.rep_mode)
            kd = self.kd_loss(logits[route.rows], teacher_logits, temperature=self.kd_args.temperature, reduction="none")
            kd_total = kd_total + (route.kd_weight * kd).sum()
            if self.rep_mode != "none":
                rep = self._rep(model, outputs.hidden_states, teacher_states, inputs["attention_mask"], route.rows, route.teacher)
                rep_total = rep_total + (route.rep_weight * rep).sum()
        loss = self.kd_args.ce_alpha * ce + kd_total + rep_total
        self._record(signal, plan, ce, kd_total, rep_total)
        if not torch.isfinite(loss):
            raise TrainingDiverged(
                f"loss is {loss.item()} at step {self.state.global_step + 1} "
                f"(ce {ce.item():.4g}, kd {kd_total.item():.4g}, rep {rep_total.item():.4g}, {self._stats_line()}); "
                "lower --learning_rate, check the teachers' outputs, or drop --fp16"
            )
        return (loss, outputs) if return_outputs else loss

    def _rep(self, model, student_states, teacher_states, attention_mask, rows, teacher_name):
        """Per-row hidden-state alignment [K] between the student and one teacher's mapped layers."""
        pairs = self.layer_pairs[teacher_name]
        student = [student_states[s][rows] for s, _ in pairs]
        projections = getattr(self.accelerator.unwrap_model(model), "projections", {})
        projection = projections[teacher_name] if teacher_name in projections else None
        if self.rep_mode == "cls":
            # the cache holds [K, P, H] [CLS] states of the mapped teacher layers
            student = [state[:, :1] for state in student]
            teacher = [teacher_states[:, p:p + 1] for p in range(len(pairs))]
            mask = attention_mask[rows][:, :1]
        else:
            teacher = [teacher_states[t] for _, t in pairs]
            mask = attention_mask[rows]
        return hidden_state_alignment(student, teacher, mask, projection=projection)

    def _random_generator(self):
        """A generator seeded by (seed, step, micro-step): the random strategy replays on resume."""
        if self.state.global_step != self._step_seen:
            self._step_seen, self._micro_step = self.state.global_step, 0
        self._micro_step += 1
        return torch.Generator().manual_seed(self.args.seed * 1_000_003 + self.state.global_step * 1009 + self._micro_step)

    # --- logging ---------------------------------------------------------------------------
    def _record(self, signal, plan, ce, kd_total, rep_total):
        """Keep this step's dynamic quantities (as tensors: no device sync until logging)."""
        batch = signal.logits.shape[0]
        stats = self._stats
        stats["loss_ce"].append(ce.detach())
        stats["loss_kd"].append(kd_total.detach())
        if self.rep_mode != "none":
            stats["loss_rep"].append(rep_total.detach())
            stats["kd_weight"].append(sum(r.kd_weight.sum() for r in plan))
            stats["rep_weight"].append(sum(r.rep_weight.sum() for r in plan))
        selected = torch.unique(torch.cat([r.rows for r in plan]))
        stats["selected_fraction"].append(torch.tensor(selected.numel() / batch))
        if signal.uncertainty is not None:
            stats["uncertainty"].append(signal.uncertainty.mean())
            stats["selected_uncertainty"].append(signal.uncertainty[selected].mean())
        if len(self.teachers) > 1:
            for name in self.teachers:
                routes = [r for r in plan if r.teacher == name]
                stats[f"{name}_teacher_weight"].append(sum((r.kd_weight.sum() for r in routes), torch.tensor(0.0)))
                stats[f"{name}_teacher_fraction"].append(torch.tensor(sum(r.rows.numel() for r in routes) / batch))

    def _stats_line(self):
        return ", ".join(f"{k} {float(v[-1]):.4g}" for k, v in self._stats.items() if v)

    def log(self, logs, start_time=None):
        if "loss" in logs and self._stats:
            for key, values in self._stats.items():
                logs[f"dkd/{key}"] = round(float(torch.stack([v.float().cpu() for v in values]).mean()), 6)
            self._stats.clear()
        super().log(logs, start_time)

    # --- checkpoints -------------------------------------------------------------------------
    def _teacher_cache_file(self, checkpoint: str, name: str) -> str:
        return os.path.join(checkpoint, f"teacher_cache-{name}-rank{self.args.process_index}.safetensors")

    def _save_checkpoint(self, model, trial):
        """Store each rank's teacher logits in the checkpoint, before HF writes trainer_state.json.

        A resumed run then reuses exactly the teacher outputs of the interrupted one (recomputing
        them on differently padded batches changes the last bits of the final student).
        """
        checkpoint = os.path.join(self._get_output_dir(trial=trial), f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}")
        os.makedirs(checkpoint, exist_ok=True)
        for name, teacher in self.teachers.items():
            state = teacher.checkpoint_state()
            if state is not None:
                with atomic_path(self._teacher_cache_file(checkpoint, name)) as tmp:
                    save_file(state, tmp, metadata={"teacher": teacher.path})
        super()._save_checkpoint(model, trial)

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        super()._load_from_checkpoint(resume_from_checkpoint, model)
        for name, teacher in self.teachers.items():
            if teacher.checkpoint_state() is None:
                continue
            try:
                teacher.load_checkpoint_state(load_file(self._teacher_cache_file(resume_from_checkpoint, name)))
                logger.info("teacher %s: resumed with %d cached outputs", name, int(teacher.filled.sum()))
            except (OSError, KeyError, RuntimeError, SafetensorError) as error:
                teacher.filled.zero_()
                logger.warning("teacher %s: no usable output cache in %s (%s); recomputing its outputs", name, resume_from_checkpoint, error)

    def teacher_forward_examples(self) -> int:
        """Examples passed through a teacher forward in this run, summed over teachers and ranks."""
        return self.counter.total()

    def end_of_epoch(self):
        for teacher in self.teachers.values():
            teacher.sync()

    # --- epoch-scope selection -------------------------------------------------------------
    def score_training_set(self, strategy: str, epoch: int) -> torch.Tensor:
        """Informativeness [N] of every training row by the current student (inference mode)."""
        dataset = self.train_dataset
        if strategy == "random":
            return torch.rand(len(dataset), generator=torch.Generator().manual_seed(self.args.seed * 7919 + epoch))
        model = self.accelerator.unwrap_model(self.model)
        was_training = model.training
        model.eval()
        loader = DataLoader(
            dataset.remove_columns([c for c in ("labels", "idx") if c in dataset.column_names]),
            batch_size=self.args.per_device_eval_batch_size, collate_fn=self.data_collator, shuffle=False,
        )
        scores = []
        with torch.no_grad(), self.accelerator.autocast():
            for batch in loader:
                batch = {k: v.to(self.args.device) for k, v in batch.items()}
                scores.append(SELECTION_SCORES[strategy](model(**batch).logits.float()).cpu())
        model.train(was_training)
        return torch.cat(scores)


class TeacherCounter(TrainerCallback, ExportableState):
    """Counts teacher forwards across ranks and resumes; syncs teacher caches at epoch end.

    The all-reduce happens in `on_step_end` of a saving step (every rank runs it), never inside
    `state()`, which only some ranks may call while writing a checkpoint.
    """

    def __init__(self, trainer):
        self.trainer = trainer
        self.restored = 0
        self.at_last_save = 0

    def state(self):
        return {"args": {}, "attributes": {"forward_examples": self.at_last_save}}

    def on_train_begin(self, args, state, control, **kwargs):
        saved = (state.stateful_callbacks or {}).get(type(self).__name__)
        if isinstance(saved, dict) and state.global_step > 0:
            self.restored = int(saved.get("attributes", {}).get("forward_examples", 0))

    def on_step_end(self, args, state, control, **kwargs):
        if control.should_save:
            self.at_last_save = self.total()

    def on_epoch_end(self, args, state, control, **kwargs):
        self.trainer.end_of_epoch()
        if control.should_save:
            self.at_last_save = self.total()

    def total(self) -> int:
        """Collective under DDP: every rank must call it."""
        local = sum(t.forward_examples for t in self.trainer.teachers.values())
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            device = self.trainer.args.device if dist.get_backend() == "nccl" else "cpu"
            count = torch.tensor(local, dtype=torch.long, device=device)
            dist.all_reduce(count)
            local = int(count.item())
        return self.restored + local


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
    same rows instead of re-scoring with a mid-epoch student.
    """

    def __init__(self, trainer):
        self.trainer = trainer
        kd_args = trainer.kd_args
        self.strategy, self.ratio = kd_args.selection_strategy, kd_args.selection_ratio
        self.sampler = EpochSubsetSampler(len(trainer.train_dataset), self.ratio, trainer.args.seed)
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
        self.sampler.positions = torch.sort(scores, descending=True, stable=True).indices[: self.sampler.size]
        logger.info("epoch %d: training on the %d most informative of %d rows (%s)", epoch, self.sampler.size, len(scores), self.strategy)
