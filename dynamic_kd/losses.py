"""Training objectives: B batch, C classes (1 for regression), L sequence length, H hidden size.

Every loss computes in fp32 (softmax, logs and squared distances lose too much in bf16) and detaches the
teacher. Reduction "none" keeps `[B]`, which Dynamic KD re-weights.
"""

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from dynamic_kd.uncertainty import check_classes

_REDUCTIONS = {"none": lambda x: x, "mean": torch.mean, "sum": torch.sum}


def _reduce(per_instance: Tensor, reduction: str) -> Tensor:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"unknown reduction {reduction!r}; use one of {', '.join(_REDUCTIONS)}")
    return _REDUCTIONS[reduction](per_instance)


def kd_kl(student_logits: Tensor, teacher_logits: Tensor, temperature: float = 1.0, reduction: str = "mean") -> Tensor:
    """The paper's KD term (Hinton et al.); `[B, C]` x2 -> `[B]` or a scalar ("mean" = batchmean).

    L_KD(x) = T² · KL(softmax(z_t/T) ‖ softmax(z_s/T)); the T² keeps gradients comparable across T.
    """
    log_q = F.log_softmax(student_logits.float() / temperature, dim=-1)
    log_p = F.log_softmax(teacher_logits.detach().float() / temperature, dim=-1)
    p = log_p.exp()
    # 0 · (log 0 - log q) = 0 (computed: NaN for a -inf student logit); `!= 0`, not `> 0`: a NaN teacher
    # probability must reach the loss.
    terms = torch.where(p != 0, p * (log_p - log_q), 0.0)
    return _reduce(terms.sum(dim=-1) * temperature**2, reduction)


def kd_mse(student_logits: Tensor, teacher_logits: Tensor, temperature: float = 1.0, reduction: str = "mean") -> Tensor:
    """Logit matching (the released scripts' KD, and regression's): L_KD(x) = (1/C) Σ_c (z_s,c - z_t,c)²."""
    diff = student_logits.float() - teacher_logits.detach().float()
    return _reduce(diff.pow(2).mean(dim=-1), reduction)


KD_LOSSES: dict[str, Callable[..., Tensor]] = {"kl": kd_kl, "mse": kd_mse}


def supervised_loss(
    logits: Tensor, labels: Tensor, regression: bool, reduction: str = "mean", label_smoothing: float = 0.0
) -> Tensor:
    """The gold-label term; `[B]` or a scalar. Classification: `logits` `[B, C]`, `labels` `[B]` ids,
    L_CE(x) = -(1 - ε) log p_y - (ε / C) Σ_c log p_c, ε = `label_smoothing` (as HF's `LabelSmoother`).
    Regression: `logits` `[B, 1]`, `labels` `[B]` floats, L_MSE(x) = (z - y)².
    """
    if not regression:
        per_instance = F.cross_entropy(logits.float(), labels.long(), reduction="none", label_smoothing=label_smoothing)
    elif logits.shape[-1] != 1:
        raise ValueError(
            f"regression expects one output per instance, got logits of shape {tuple(logits.shape)}; "
            "build the model with num_labels=1"
        )
    else:
        per_instance = F.mse_loss(logits.float().squeeze(-1), labels.float(), reduction="none")
    return _reduce(per_instance, reduction)


def dynamic_kd_loss(student_logits: Tensor, teacher_logits: Tensor, temperature: float = 1.0) -> Tensor:
    """Uncertainty-weighted KD, the paper's plug-in objective; `[B, C]` x2 (C >= 2) -> scalar batch mean.

    L = (1/B) Σ_i w_i · T² · KL(softmax(z_t,i/T) ‖ softmax(z_s,i/T)), with constant weights
    w_i = -Σ_c p_c log(p_c + 1e-6) / log C, p = softmax(z_s,i): the student's normalised entropy at
    T = 1, with the paper snippet's 1e-6 (so it differs from `normalized_entropy` by up to ~1e-6).
    """
    check_classes(student_logits, "dynamic_kd_loss")
    with torch.no_grad():
        p = F.softmax(student_logits.float(), dim=-1)
        weights = -(p * torch.log(p + 1e-6)).sum(dim=-1) / math.log(student_logits.shape[-1])
    return (kd_kl(student_logits, teacher_logits, temperature, reduction="none") * weights).mean()


def layer_map(num_student_layers: int, num_teacher_layers: int) -> list[tuple[int, int]]:
    """The `L_S + 1` pairs (i, i * L_T // L_S) of `hidden_states` indices (0 = embeddings) to align:
    BERT-PKD's "skip" for any depths (4 of 6 -> teacher 0, 1, 3, 4, 6)."""
    return [(i, i * num_teacher_layers // num_student_layers) for i in range(num_student_layers + 1)]


def _token_states(hidden: Tensor, cls_only: bool) -> Tensor:
    """`[B, L, H]`; a `[B, H]` state is one token."""
    if hidden.dim() == 2:
        return hidden.unsqueeze(1)
    return hidden[:, :1] if cls_only else hidden


# --rep_normalization: the axis states are normalised along (sequence: the released baseline; docs/design.md).
REP_NORMALIZATIONS = {"hidden": -1, "sequence": 1}


def _pair_distance(student: Tensor, teacher: Tensor, mask: Tensor, projection, normalization: str) -> Tensor:
    """Masked mean over tokens and hidden units of (ŝ - t̂)², `[B, L, H_s], [B, L, H_t], [B, L] -> [B]`."""
    if projection is not None:
        student = projection(student)
    if student.shape[-1] != teacher.shape[-1]:
        raise ValueError(
            f"hidden_state_alignment: hidden sizes differ ({student.shape[-1]} vs {teacher.shape[-1]}); "
            "map the student states to the teacher's hidden size with `projection`"
        )
    # where, not multiply: padding may hold inf/NaN, and 0 · NaN would leak into the loss (and, normalised
    # along the sequence, into every token's norm).
    keep = mask.unsqueeze(-1)
    student = torch.where(keep, student.float(), 0.0)
    teacher = torch.where(keep, teacher.detach().float(), 0.0)
    dim = REP_NORMALIZATIONS[normalization]
    distance = (F.normalize(student, dim=dim) - F.normalize(teacher, dim=dim)).pow(2).mean(dim=-1)
    distance = torch.where(mask, distance, 0.0)
    return distance.sum(dim=-1) / mask.sum(dim=-1).clamp_min(1)


def hidden_state_alignment(
    student_hidden: Sequence[Tensor],
    teacher_hidden: Sequence[Tensor],
    attention_mask: Tensor | None,
    cls_only: bool = False,
    projection: Callable[[Tensor], Tensor] | None = None,
    normalization: str = "hidden",
) -> Tensor:
    """Patient (BERT-PKD) hidden-state loss, the REP term; `[B]`.

    `student_hidden` / `teacher_hidden`: `layer_map`-paired `[B, L, H_s]` / `[B, L, H_t]` states, or
    `[B, H]` [CLS] states; `cls_only` keeps position 0. `attention_mask`: `[B, L]`, 1 = real token, or
    None. `projection`: `[..., H_s] -> [..., H_t]`, needed when H_s != H_t. Per instance,
        L_REP(x) = Σ_{(s,t) in P} 1/(|M|·H) Σ_{l in M} Σ_{j=1..H} (ĥ_s,l,j - ĥ_t,l,j)²,   ĥ = h / ‖h‖₂
    with P the layer pairs, M the non-padding positions ("sequence": ĥ_l,j = h_l,j / (Σ_{l' in M} h_l',j²)^½).
    """
    if len(student_hidden) != len(teacher_hidden) or len(student_hidden) == 0:
        raise ValueError(
            f"hidden_state_alignment needs equally many student and teacher states (at least one), "
            f"got {len(student_hidden)} and {len(teacher_hidden)}; pair them with layer_map"
        )
    per_pair = []
    for student, teacher in zip(student_hidden, teacher_hidden):
        s, t = _token_states(student, cls_only), _token_states(teacher, cls_only)
        if attention_mask is not None and not cls_only and student.dim() == 3:
            mask = attention_mask.to(device=s.device).bool()
        else:
            mask = torch.ones(s.shape[:2], dtype=torch.bool, device=s.device)
        per_pair.append(_pair_distance(s, t, mask, projection, normalization))
    return torch.stack(per_pair).sum(dim=0)
