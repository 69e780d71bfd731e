"""Training objectives for distilling a BERT teacher into a smaller student.

Shapes: B batch, C classes (C = 1 for regression), L sequence length, H hidden size.
Every loss casts its inputs to fp32 (softmax, logs and squared distances lose too much in bf16,
even under autocast) and detaches the teacher's tensors: the teacher is frozen, so gradient
flows into the student (and a student-side projection) only.

Reductions: "none" keeps one value per instance `[B]` (what Dynamic KD re-weights or selects),
"mean" averages over the batch, "sum" adds over it.
"""

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

_REDUCTIONS = ("none", "mean", "sum")


def _reduce(per_instance: Tensor, reduction: str) -> Tensor:
    """Apply `reduction` to a `[B]` per-instance loss: "none" -> `[B]`, "mean"/"sum" -> scalar."""
    if reduction == "none":
        return per_instance
    if reduction == "mean":
        return per_instance.mean()
    if reduction == "sum":
        return per_instance.sum()
    raise ValueError(f"unknown reduction {reduction!r}; use one of {', '.join(_REDUCTIONS)}")


def _kl_per_instance(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
    """Unscaled KL(softmax(z_t/T) ‖ softmax(z_s/T)) summed over classes, `[B, C] x2 -> [B]`."""
    log_q = F.log_softmax(student_logits.float() / temperature, dim=-1)
    log_p = F.log_softmax(teacher_logits.detach().float() / temperature, dim=-1)
    p = log_p.exp()
    # 0 · (log 0 - log q) = 0 by definition; computing it would give NaN for a -inf student logit.
    # `!= 0`, not `> 0`: a NaN teacher probability must reach the loss, not be masked to 0.
    terms = torch.where(p != 0, p * (log_p - log_q), torch.zeros_like(p))
    return terms.sum(dim=-1)


def kd_kl(student_logits: Tensor, teacher_logits: Tensor, temperature: float = 1.0, reduction: str = "mean") -> Tensor:
    """Soft-label distillation loss (Hinton et al.), the KD term of the paper.

    `student_logits`, `teacher_logits`: `[B, C]`. Returns `[B]` ("none") or a scalar
    ("mean" over the batch, i.e. KL's "batchmean"; or "sum").
    Implements L_KD(x) = T² · KL(softmax(z_t/T) ‖ softmax(z_s/T)), summed over the C classes per
    instance. The T² keeps gradient magnitudes comparable across temperatures.
    """
    per_instance = _kl_per_instance(student_logits, teacher_logits, temperature) * temperature**2
    return _reduce(per_instance, reduction)


def kd_mse(student_logits: Tensor, teacher_logits: Tensor, temperature: float = 1.0, reduction: str = "mean") -> Tensor:
    """Logit-matching distillation loss; the KD loss of the original released scripts.

    `student_logits`, `teacher_logits`: `[B, C]` (C = 1 for regression). Returns `[B]` ("none")
    or a scalar ("mean"/"sum" over the batch).
    Implements L_KD(x) = (1/C) Σ_c (z_s,c - z_t,c)², mean over classes per instance.
    `temperature` is accepted only so every entry of `KD_LOSSES` has one signature, and is
    IGNORED: raw logits are matched. This is also the KD loss for regression (C = 1), where a
    softmax over one output is meaningless.
    """
    diff = student_logits.float() - teacher_logits.detach().float()
    return _reduce(diff.pow(2).mean(dim=-1), reduction)


KD_LOSSES: dict[str, Callable[..., Tensor]] = {"kl": kd_kl, "mse": kd_mse}


def supervised_loss(
    logits: Tensor, labels: Tensor, regression: bool, reduction: str = "mean", label_smoothing: float = 0.0
) -> Tensor:
    """Loss against the gold labels (the CE / task term the KD term is mixed with).

    Classification: `logits` `[B, C]`, `labels` `[B]` integer class ids; with p = softmax(z) and
    ε = `label_smoothing` (`--label_smoothing_factor`, 0 = none) implements
    L_CE(x) = -(1 - ε) log p_y - (ε / C) Σ_c log p_c, i.e. cross-entropy against the target
    (1 - ε)·onehot(y) + ε/C (what HF's `LabelSmoother` and torch's `label_smoothing` compute).
    Regression: `logits` `[B, 1]`, `labels` `[B]` float targets;
    implements L_MSE(x) = (z - y)², using `logits.squeeze(-1)` `[B]`; smoothing is undefined
    there, so a non-zero `label_smoothing` is an error.
    Returns `[B]` ("none") or a scalar ("mean"/"sum" over the batch).
    """
    if regression and label_smoothing:
        raise ValueError(
            f"label smoothing needs class labels; got label_smoothing={label_smoothing} for a regression loss"
        )
    if regression:
        if logits.shape[-1] != 1:
            raise ValueError(
                f"regression expects one output per instance, got logits of shape {tuple(logits.shape)}; "
                "build the model with num_labels=1"
            )
        per_instance = F.mse_loss(logits.float().squeeze(-1), labels.float(), reduction="none")
    else:
        per_instance = F.cross_entropy(logits.float(), labels.long(), reduction="none", label_smoothing=label_smoothing)
    return _reduce(per_instance, reduction)


@torch.no_grad()
def _seed_instance_weights(student_logits: Tensor) -> Tensor:
    """Student's normalised entropy as in the paper's code snippet, `[B, C] -> [B]`, no gradient.

    Implements w_i = -Σ_c p_c log(p_c + 1e-6) / log C with p = softmax(z_s) at temperature 1.
    The 1e-6 inside the log is kept for fidelity to the paper (it differs from
    `uncertainty.normalized_entropy` by up to ~1e-6 per class and can make a fully confident
    instance's weight ~-1e-6 rather than 0).
    """
    num_classes = student_logits.shape[-1]
    if num_classes < 2:
        raise ValueError(
            f"dynamic_kd_loss needs at least 2 classes, got logits with C={num_classes}; "
            "entropy weights are undefined for regression / single-output heads"
        )
    p = F.softmax(student_logits.float(), dim=-1)
    entropy = -(p * torch.log(p + 1e-6)).sum(dim=-1)
    return entropy / math.log(num_classes)


def dynamic_kd_loss(student_logits: Tensor, teacher_logits: Tensor, temperature: float = 1.0) -> Tensor:
    """Uncertainty-weighted KD: the paper's plug-in objective adjustment (a scalar).

    `student_logits`, `teacher_logits`: `[B, C]`, C >= 2. Returns the batch mean (scalar).
    Implements L = (1/B) Σ_i w_i · T² · KL(softmax(z_t,i/T) ‖ softmax(z_s,i/T)), with
    w_i = H(p_s,i) / log C the student's normalised entropy (at temperature 1, see
    `_seed_instance_weights`). Instances the student is still unsure about weigh more. The
    weights are constants: gradient flows through the KL term only.
    """
    weights = _seed_instance_weights(student_logits)
    per_instance = kd_kl(student_logits, teacher_logits, temperature, reduction="none")
    return (per_instance * weights).mean()


def layer_map(num_student_layers: int, num_teacher_layers: int) -> list[tuple[int, int]]:
    """Which teacher hidden state each student hidden state is aligned with.

    Indices refer to the `hidden_states` tuples of Hugging Face models (index 0 = embedding
    output, index i = output of layer i). Returns `L_S + 1` pairs
    `(i, i * L_T // L_S)` for i = 0..L_S: embeddings to embeddings, the last student layer to
    the last teacher layer, evenly spaced in between ("skip" strategy of BERT-PKD). Integer
    division means any pair of depths works, including L_T not a multiple of L_S (e.g. 4 vs 6
    -> teacher 0, 1, 3, 4, 6).
    """
    if num_student_layers < 1 or num_teacher_layers < 1:
        raise ValueError(f"layer counts must be >= 1, got student={num_student_layers}, teacher={num_teacher_layers}")
    return [(i, i * num_teacher_layers // num_student_layers) for i in range(num_student_layers + 1)]


def _token_states(hidden: Tensor, cls_only: bool) -> Tensor:
    """View any accepted state as `[B, L, H]`: `[B, H]` becomes one token; cls_only keeps position 0."""
    if hidden.dim() == 2:
        return hidden.unsqueeze(1)
    if cls_only:
        return hidden[:, :1]
    return hidden


# --rep_normalization: the axis each state is normalised along before the squared distance.
# hidden: ours (each token's state a unit vector); sequence: the released `none` branch (each hidden
# unit a unit vector over the tokens, ~H/L times larger: ~6x at BERT-base, L = 128).
REP_NORMALIZATIONS = {"hidden": -1, "sequence": 1}


def _pair_distance(
    student: Tensor, teacher: Tensor, mask: Tensor, projection: Callable[[Tensor], Tensor] | None, normalization: str
) -> Tensor:
    """Masked mean over tokens and hidden units of (ŝ - t̂)², `[B, L, H_s], [B, L, H_t], [B, L] -> [B]`."""
    if projection is not None:
        student = projection(student)
    if student.shape[-1] != teacher.shape[-1]:
        if projection is None:
            hint = "pass a projection mapping student to teacher hidden size"
        else:
            hint = "the projection's output size must equal the teacher's hidden size"
        raise ValueError(
            f"hidden_state_alignment: hidden sizes differ ({student.shape[-1]} vs {teacher.shape[-1]}); {hint}"
        )
    # where, not multiply: padding may hold inf/NaN garbage, and 0 · NaN would leak into the loss
    # (and, normalised along the sequence, into every token's norm).
    keep = mask.unsqueeze(-1)
    student = torch.where(keep, student.float(), torch.zeros((), device=student.device))
    teacher = torch.where(keep, teacher.detach().float(), torch.zeros((), device=teacher.device))
    dim = REP_NORMALIZATIONS[normalization]
    distance = (F.normalize(student, dim=dim) - F.normalize(teacher, dim=dim)).pow(2).mean(dim=-1)
    distance = torch.where(mask, distance, torch.zeros_like(distance))
    return distance.sum(dim=-1) / mask.sum(dim=-1).clamp_min(1)


def hidden_state_alignment(
    student_hidden: Sequence[Tensor],
    teacher_hidden: Sequence[Tensor],
    attention_mask: Tensor | None,
    cls_only: bool = False,
    projection: Callable[[Tensor], Tensor] | None = None,
    normalization: str = "hidden",
) -> Tensor:
    """Patient (BERT-PKD style) hidden-state loss: the REP term of the supervision adjustment.

    `student_hidden` / `teacher_hidden`: equal-length sequences of `[B, L, H_s]` / `[B, L, H_t]`
    tensors, already paired (see `layer_map`), or `[B, H]` tensors holding [CLS] states only.
    `attention_mask`: `[B, L]`, 1 = real token, 0 = padding; ignored for `[B, H]` inputs and with
    `cls_only=True` (position 0 of `[B, L, H]` inputs is used), may be None (all tokens real).
    `projection`: optional callable `[..., H_s] -> [..., H_t]` applied to student states before
    normalising; required when H_s != H_t. It receives the student states in their own dtype,
    so its parameters must match that dtype (or run under autocast).
    Returns `[B]`, not reduced over the batch.
    Implements, per instance,
        L_REP(x) = Σ_{(s,t) in P} 1/(|M|·H) Σ_{l in M} Σ_{j=1..H} (ĥ_s,l,j - ĥ_t,l,j)²,   ĥ = h / ‖h‖₂
    with P the paired layers (summed, not averaged), M the instance's non-padding positions, H the
    teacher's hidden size, and each state normalised along its hidden axis. This is the scale of
    the released scripts (an MSE over tokens and hidden units of the normalised states, summed over
    layer pairs), so `--kd_rep_alpha` means what it means there; each pair's term lies in [0, 4/H].
    Unlike the released scripts, padding positions are excluded and the mean over tokens is taken
    per instance (the same thing when every row has the same length).

    `normalization="sequence"` is the released static baseline (the `none` branch of its
    dynamic_objective.py): the same mean, with each hidden unit normalised along the tokens instead,
        ĥ_l,j = h_l,j / (Σ_{l' in M} h_l',j²)^½,
    so each pair's term lies in [0, 4/|M|] (~H/L times the default's scale). Padding stays out of the
    norm and the mean (the released code pads to --max_seq_length and includes it). One position
    (`cls_only` or `[B, H]` states) would turn every value into ±1, so it is refused.
    """
    if normalization not in REP_NORMALIZATIONS:
        raise ValueError(f"unknown normalization {normalization!r}; use one of {', '.join(REP_NORMALIZATIONS)}")
    one_position = cls_only or any(state.dim() == 2 for state in (*student_hidden, *teacher_hidden))
    if normalization == "sequence" and one_position:
        raise ValueError(
            "normalization='sequence' normalises each hidden unit over the tokens and needs them all "
            "(--rep_layers all); one [CLS] position would make every value ±1"
        )
    if len(student_hidden) != len(teacher_hidden) or len(student_hidden) == 0:
        raise ValueError(
            f"hidden_state_alignment needs equally many student and teacher states (at least one), "
            f"got {len(student_hidden)} and {len(teacher_hidden)}; pair them with layer_map"
        )
    per_pair = []
    for student, teacher in zip(student_hidden, teacher_hidden):
        s = _token_states(student, cls_only)
        t = _token_states(teacher, cls_only)
        if attention_mask is not None and not cls_only and student.dim() == 3:
            mask = attention_mask.to(device=s.device).bool()
        else:
            mask = torch.ones(s.shape[:2], dtype=torch.bool, device=s.device)
        per_pair.append(_pair_distance(s, t, mask, projection, normalization))
    return torch.stack(per_pair).sum(dim=0)
