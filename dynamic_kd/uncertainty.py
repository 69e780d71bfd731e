"""Per-instance uncertainty scores of a classifier's predictive distribution.

Dynamic KD (Li et al., EMNLP 2021) lets the *student's* uncertainty decide what to learn: which
instances to distil (data selection) and how much each one weighs (the KD objective adjustment).
These scores are that signal. All take logits `[B, C]` (B batch, C classes), return one score per
instance `[B]` in fp32, and carry no gradient: a score only selects or weighs instances, so
back-propagating through it would let the student lower its loss by faking confidence. The one
exception is `normalized_entropy(..., differentiable=True)`, the released code's behaviour behind
`--uncertainty_grad`.

Direction: entropy-based scores grow with uncertainty; `margin` and `least_confidence` shrink
with it (small = uncertain).
"""

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def _log_probs(logits: Tensor) -> Tensor:
    """Class log-probabilities `log softmax(z)`, `[B, C] -> [B, C]`, in fp32.

    log_softmax rather than log(softmax): a class whose probability underflows to 0 keeps its
    exact (finite) log-probability instead of log 0 = -inf. fp32 because bf16 rounds away the
    small probabilities that decide entropy.
    """
    return F.log_softmax(logits.float(), dim=-1)


def _entropy(logits: Tensor) -> Tensor:
    log_p = _log_probs(logits)
    p = log_p.exp()
    # `p * log_p` is 0 * -inf = NaN exactly where p underflows; those terms are 0 by definition.
    terms = torch.where(p > 0, p * log_p, torch.zeros_like(p))
    # log_softmax can round a dominant log-prob to a hair above 0; entropy is never negative.
    # `+ 0.0` turns the -0.0 of a one-hot distribution into a plain 0.0.
    return (-terms.sum(dim=-1)).clamp_min(0.0) + 0.0


@torch.no_grad()
def entropy(logits: Tensor) -> Tensor:
    """Shannon entropy of the predictive distribution (natural log).

    `logits` `[B, C]` -> `[B]`, no reduction over the batch.
    Implements H(x) = -Σ_c p_c log p_c with p = softmax(z), the paper's uncertainty measure.
    Uses the convention 0 · log 0 = 0, so saturated logits (e.g. `[1000, -1000]`) give exactly 0
    and `-inf` logits contribute nothing rather than NaN.
    """
    return _entropy(logits)


def normalized_entropy(logits: Tensor, differentiable: bool = False) -> Tensor:
    """Entropy divided by its upper bound, so scores compare across label sets.

    `logits` `[B, C]` -> `[B]` in [0, 1], no reduction over the batch.
    Implements u(x) = H(x) / log C (log C = entropy of the uniform distribution over C classes),
    the paper's normalised student uncertainty. Raises ValueError when C < 2 (log 1 = 0: a
    one-output head, e.g. regression, has no predictive entropy). `differentiable=True` keeps the
    graph to `logits` (`--uncertainty_grad`); the default returns a constant.
    """
    num_classes = logits.shape[-1]
    if num_classes < 2:
        raise ValueError(
            f"normalized_entropy needs at least 2 classes, got logits with C={num_classes}; "
            "uncertainty scores are undefined for regression / single-output heads"
        )
    with torch.set_grad_enabled(differentiable and torch.is_grad_enabled()):
        return _entropy(logits) / math.log(num_classes)


@torch.no_grad()
def margin(logits: Tensor) -> Tensor:
    """Gap between the two most probable classes (margin sampling).

    `logits` `[B, C]` -> `[B]` in [0, 1], no reduction over the batch.
    Implements m(x) = p_(1) - p_(2), top-1 minus top-2 probability; small = uncertain, and ties
    give 0. Raises ValueError when C < 2.
    """
    num_classes = logits.shape[-1]
    if num_classes < 2:
        raise ValueError(
            f"margin needs at least 2 classes, got logits with C={num_classes}; "
            "uncertainty scores are undefined for regression / single-output heads"
        )
    top2 = _log_probs(logits).exp().topk(2, dim=-1).values
    return top2[..., 0] - top2[..., 1]


@torch.no_grad()
def least_confidence(logits: Tensor) -> Tensor:
    """Probability of the predicted class (least-confidence sampling).

    `logits` `[B, C]` -> `[B]` in [1/C, 1], no reduction over the batch.
    Implements c(x) = max_c p_c; small = uncertain.
    """
    return _log_probs(logits).exp().max(dim=-1).values
