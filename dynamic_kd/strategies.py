"""The paper's three dynamic strategies, each refining a *distillation plan* (a list of `Route`s) in
turn, so any combination of them runs at once:

    plan = [Route(rows = all B rows, kd_weight = 1/B)]
    plan = selection.refine(plan, signal)   # which rows get a teacher query   (Sec. 3.2)
    plan = adoption.refine(plan, signal)    # which teacher each row learns from (Sec. 3.1)
    plan = objective.refine(plan, signal)   # how KD and REP are weighted        (Sec. 3.3)

The trainer adds  sum_routes sum_rows kd_weight * KD + rep_weight * REP  to the gold-label loss; B is the
global batch of one optimizer step. The argument parser reads the registries.
"""

import math
from dataclasses import dataclass, replace

import torch

from dynamic_kd.uncertainty import entropy, least_confidence, margin, normalized_entropy


@dataclass
class StudentSignal:
    """The student on one batch (fp32): logits [B, C]; normalised entropy u [B] (None for regression)."""

    logits: torch.Tensor
    uncertainty: torch.Tensor | None
    generator: torch.Generator | None = None


@dataclass
class Route:
    """A teacher (None until assigned), the [K] rows that query it, their KD and REP weights [K]."""

    teacher: str | None
    rows: torch.Tensor
    kd_weight: torch.Tensor
    rep_weight: torch.Tensor


def initial_plan(batch_size: int, device=None) -> list[Route]:
    """Every row, no teacher yet, KD averaged over the batch, no REP."""
    rows = torch.arange(batch_size, device=device)
    weight = torch.full((batch_size,), 1.0 / batch_size, device=device)
    return [Route(None, rows, weight, torch.zeros(batch_size, device=device))]


# --- Data selection (Sec. 3.2): only the most uncertain fraction r of a batch gets a KD term.

# name -> informativeness [B, C] -> [B], higher first; None: the student is not read.
SELECTION_SCORES = {
    "none": None,
    "random": None,
    "entropy": entropy,
    "margin": lambda logits: -margin(logits),
    "lc": lambda logits: -least_confidence(logits),
}
SELECTION_STRATEGIES = SELECTION_SCORES
SELECTION_ALIASES = {"least_confidence": "lc", "confidence": "lc"}


def num_selected(batch_size: int, ratio: float) -> int:
    """k = max(1, floor(ratio * B)): a short last batch still gets a KD term."""
    return max(1, math.floor(ratio * batch_size + 1e-9))


def select_instances(student_logits: torch.Tensor, strategy: str, ratio: float, generator=None) -> torch.Tensor:
    """The [k] rows of `student_logits` [B, C] that get a teacher query, most informative first (ties in
    batch order); `none`: all B rows."""
    strategy = SELECTION_ALIASES.get(strategy, strategy)
    if strategy not in SELECTION_SCORES:
        raise ValueError(f"unknown selection strategy '{strategy}'; choose one of: {', '.join(SELECTION_SCORES)}")
    if not 0.0 < ratio <= 1.0:
        raise ValueError(f"selection ratio must be in (0, 1], got {ratio}")
    batch_size = student_logits.shape[0]
    if strategy == "none":
        return torch.arange(batch_size, device=student_logits.device)
    k = num_selected(batch_size, ratio)
    if strategy == "random":
        return torch.randperm(batch_size, generator=generator).to(student_logits.device)[:k]
    scores = SELECTION_SCORES[strategy](student_logits.detach())
    return torch.sort(scores, descending=True, stable=True).indices[:k]


class DataSelection:
    """Keeps the top-r rows of each route, KD averaged over them."""

    def __init__(self, strategy: str, ratio: float):
        self.strategy, self.ratio = SELECTION_ALIASES.get(strategy, strategy), ratio
        self.reads_student = SELECTION_SCORES.get(self.strategy) is not None

    def refine(self, plan: list[Route], signal: StudentSignal) -> list[Route]:
        if self.strategy == "none":
            return plan
        refined = []
        for route in plan:
            keep = select_instances(signal.logits[route.rows], self.strategy, self.ratio, signal.generator)
            weight = (route.kd_weight.sum() / keep.numel()).expand(keep.numel())
            refined.append(Route(route.teacher, route.rows[keep], weight, route.rep_weight[keep]))
        return refined


# --- Teacher adoption (Sec. 3.1): uncertain rows learn from the small teacher, confident ones from the large.


class SingleTeacher:
    """Every route learns from one named teacher (plain KD, single-small, single-large)."""

    reads_student = False

    def __init__(self, name: str, alpha: float = 1.0):
        self.name, self.alpha = name, alpha

    def refine(self, plan, signal):
        return [replace(r, teacher=self.name, kd_weight=r.kd_weight * self.alpha) for r in plan]


class HardAdoption:
    """A route's more uncertain ceil(K/2) rows learn from the small teacher, the rest from the large, KD
    averaged within each half times its alpha (one row: small teacher, both alphas)."""

    reads_student = True

    def __init__(self, small_alpha: float, large_alpha: float):
        self.small_alpha, self.large_alpha = small_alpha, large_alpha

    def refine(self, plan, signal):
        refined = []
        for route in plan:
            order = torch.sort(signal.uncertainty[route.rows], descending=True, stable=True).indices
            if order.numel() == 1:
                halves = (("small", order, self.small_alpha + self.large_alpha),)
            else:
                n_small = math.ceil(order.numel() / 2)
                halves = (("small", order[:n_small], self.small_alpha), ("large", order[n_small:], self.large_alpha))
            for name, part, alpha in halves:
                weight = (alpha * route.kd_weight.sum() / part.numel()).expand(part.numel())
                refined.append(Route(name, route.rows[part], weight, route.rep_weight[part]))
        return refined


class BothTeachers:
    """Both teachers on every row, KD scaled by `weights(u)` = (small, large)."""

    reads_student = True

    def refine(self, plan, signal):
        refined = []
        for route in plan:
            small, large = self.weights(signal.uncertainty[route.rows] if self.reads_student else None)
            refined.append(replace(route, teacher="small", kd_weight=route.kd_weight * small))
            refined.append(replace(route, teacher="large", kd_weight=route.kd_weight * large))
        return refined


class AverageTeachers(BothTeachers):
    """Fixed weights alpha_small, alpha_large."""

    reads_student = False

    def __init__(self, small_alpha: float, large_alpha: float):
        self.small_alpha, self.large_alpha = small_alpha, large_alpha

    def weights(self, u):
        return self.small_alpha, self.large_alpha


class SoftAdoption(BothTeachers):
    """Small teacher weight = mean u over the route, large = 1 - mean u."""

    def weights(self, u):
        return u.mean(), 1 - u.mean()


class SoftInstanceAdoption(BothTeachers):
    """Per-row weight u_i for the small teacher, 1 - u_i for the large."""

    def weights(self, u):
        return u, 1 - u


@dataclass(frozen=True)
class TeacherMode:
    teachers: tuple[str, ...]
    adoption: object  # the strategy, or a class built with (alpha_small, alpha_large)
    every_row: bool = True  # False: the teachers split the rows


TEACHER_MODES = {
    "hard": TeacherMode(("small", "large"), HardAdoption, every_row=False),
    "soft": TeacherMode(("small", "large"), SoftAdoption()),
    "soft-instance": TeacherMode(("small", "large"), SoftInstanceAdoption()),
    "single-small": TeacherMode(("small",), SingleTeacher("small")),
    "single-large": TeacherMode(("large",), SingleTeacher("large")),
    "average": TeacherMode(("small", "large"), AverageTeachers),
}


# --- Supervision adjustment (Sec. 3.3): uncertain rows lean on hidden-state alignment, confident ones on
# output matching.

# name -> w [K] -> (KD factor f, REP factor g); None: f = g = 1, the static BERT-PKD baseline.
OBJECTIVE_STRATEGIES = {
    "none": None,
    "uncertainty": lambda w: (1 - w, w),
    "uncertainty-r": lambda w: (w, 1 - w),
}


class ObjectiveWeights:
    """kd_weight *= alpha_kl * f(w), rep_weight = alpha_rep * g(w) * (the route's row weight)."""

    def __init__(self, strategy: str, kd_kl_alpha: float, kd_rep_alpha: float):
        self.kd_kl_alpha, self.kd_rep_alpha = kd_kl_alpha, kd_rep_alpha
        self.factors = OBJECTIVE_STRATEGIES[strategy]
        self.reads_student = self.factors is not None

    def refine(self, plan, signal):
        refined = []
        for route in plan:
            kd_factor, rep_factor = (1.0, 1.0) if self.factors is None else self.factors(signal.uncertainty[route.rows])
            rep_weight = route.kd_weight * self.kd_rep_alpha * rep_factor
            refined.append(
                replace(route, kd_weight=route.kd_weight * self.kd_kl_alpha * kd_factor, rep_weight=rep_weight)
            )
        return refined


# The names (of the three registries) whose strategy reads the student's class distribution.
UNCERTAINTY_STRATEGIES = {
    *(name for name, score in SELECTION_SCORES.items() if score is not None),
    *(name for name, mode in TEACHER_MODES.items() if mode.adoption.reads_student),
    *(name for name, factors in OBJECTIVE_STRATEGIES.items() if factors is not None),
}
# Those whose weights are functions of u (not rows sorted by it): what --uncertainty_grad acts on.
UNCERTAINTY_WEIGHTED_MODES = ("soft", "soft-instance")
UNCERTAINTY_WEIGHTED_OBJECTIVES = ("uncertainty", "uncertainty-r")


def build_strategies(kd_args, batch_scope: bool = True) -> list:
    """Selection (batch scope only), adoption, objective."""
    selection = DataSelection(kd_args.selection_strategy if batch_scope else "none", kd_args.selection_ratio)
    mode = TEACHER_MODES.get(kd_args.uncertainty_mode)
    adoption = SingleTeacher("teacher") if mode is None else mode.adoption
    if isinstance(adoption, type):
        adoption = adoption(kd_args.small_teacher_alpha, kd_args.large_teacher_alpha)
    return [selection, adoption, ObjectiveWeights(kd_args.strategy, kd_args.kd_kl_alpha, kd_args.kd_rep_alpha)]


def teachers_seeing_every_row(kd_args) -> tuple[str, ...]:
    """Teachers every training row reaches each epoch (their outputs can be precomputed)."""
    if kd_args.selection_strategy != "none" and kd_args.selection_ratio < 1.0:
        return ()
    if kd_args.uncertainty_mode is None:
        return ("teacher",)
    mode = TEACHER_MODES[kd_args.uncertainty_mode]
    return mode.teachers if mode.every_row else ()


def plan_distillation(strategies, signal: StudentSignal) -> list[Route]:
    """The chain's plan of one batch, without empty routes."""
    plan = initial_plan(signal.logits.shape[0], signal.logits.device)
    for strategy in strategies:
        plan = strategy.refine(plan, signal)
    return [route for route in plan if route.rows.numel() > 0]


def split_plan(plan: list[Route], sizes: list[int]) -> list[list[Route]]:
    """One plan per consecutive part of `sizes` rows, rows renumbered from 0."""
    if len(sizes) == 1:
        return [plan]
    parts, start = [], 0
    for size in sizes:
        part = []
        for route in plan:
            mine = (route.rows >= start) & (route.rows < start + size)
            if mine.any():
                part.append(
                    Route(route.teacher, route.rows[mine] - start, route.kd_weight[mine], route.rep_weight[mine])
                )
        parts.append(part)
        start += size
    return parts


def covered_rows(plan: list[Route], size: int, device=None) -> torch.Tensor:
    """[size] bool: the rows that query some teacher."""
    mask = torch.zeros(size, dtype=torch.bool, device=device)
    for route in plan:
        mask[route.rows] = True
    return mask


def plan_statistics(plan: list[Route], batch_size: int, teachers, with_rep: bool) -> dict[str, torch.Tensor]:
    """What the trainer logs of a plan: row fractions, total weights."""
    zero = plan[0].kd_weight.new_zeros(())
    stats = {"selected_fraction": covered_rows(plan, batch_size, zero.device).float().mean()}
    if with_rep:
        stats["kd_weight"] = sum((r.kd_weight.sum() for r in plan), zero)
        stats["rep_weight"] = sum((r.rep_weight.sum() for r in plan), zero)
    if len(teachers) > 1:
        for name in teachers:
            routes = [r for r in plan if r.teacher == name]
            stats[f"{name}_teacher_weight"] = sum((r.kd_weight.sum() for r in routes), zero)
            stats[f"{name}_teacher_fraction"] = zero + sum(r.rows.numel() for r in routes) / batch_size
    return stats


def reads_student(strategies) -> bool:
    """Whether the chain reads the student's logits (not only the batch size)."""
    return any(strategy.reads_student for strategy in strategies)


def student_signal(
    student_logits: torch.Tensor, regression: bool, generator=None, differentiable: bool = False
) -> StudentSignal:
    """The strategies' view of the student (`differentiable`: `--uncertainty_grad`)."""
    logits = student_logits.float() if differentiable else student_logits.detach().float()
    uncertainty = None if regression else normalized_entropy(logits, differentiable)
    return StudentSignal(logits, uncertainty, generator)
