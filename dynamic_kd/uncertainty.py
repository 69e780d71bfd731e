"""Uncertainty scores of a classifier's predictive distribution: logits `[B, C]` -> `[B]`, fp32, no
gradient (a score only selects or weighs rows; through it the student could lower its loss by faking
confidence; `--uncertainty_grad` is the exception)."""

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def check_classes(logits: Tensor, name: str) -> None:
    """A one-output head (regression) has no distribution to score."""
    if logits.shape[-1] < 2:
        raise ValueError(
            f"{name} needs at least 2 classes, got logits with C={logits.shape[-1]}; "
            "it is undefined for regression / single-output heads"
        )


def _probs(logits: Tensor) -> Tensor:
    # log_softmax: an underflowing class keeps a finite log-probability; fp32: bf16 rounds small ones away
    return F.log_softmax(logits.float(), dim=-1).exp()


def _entropy(logits: Tensor) -> Tensor:
    log_p = F.log_softmax(logits.float(), dim=-1)
    p = log_p.exp()
    terms = torch.where(p > 0, p * log_p, 0.0)  # 0 · log 0 = 0, not NaN
    # Rounding can push a one-hot entropy a hair below 0 (or to -0.0): clamp, and `+ 0.0` makes -0.0 0.0.
    return (-terms.sum(dim=-1)).clamp_min(0.0) + 0.0


@torch.no_grad()
def entropy(logits: Tensor) -> Tensor:
    """H(x) = -Σ_c p_c log p_c, p = softmax(z): the paper's uncertainty (natural log)."""
    return _entropy(logits)


def normalized_entropy(logits: Tensor, differentiable: bool = False) -> Tensor:
    """u(x) = H(x) / log C in [0, 1], comparable across label sets; `differentiable` keeps the graph."""
    check_classes(logits, "normalized_entropy")
    with torch.set_grad_enabled(differentiable and torch.is_grad_enabled()):
        return _entropy(logits) / math.log(logits.shape[-1])


@torch.no_grad()
def margin(logits: Tensor) -> Tensor:
    """m(x) = p_(1) - p_(2), top-1 minus top-2 probability, in [0, 1]; small = uncertain."""
    check_classes(logits, "margin")
    top2 = _probs(logits).topk(2, dim=-1).values
    return top2[..., 0] - top2[..., 1]


@torch.no_grad()
def least_confidence(logits: Tensor) -> Tensor:
    """c(x) = max_c p_c, in [1/C, 1]; small = uncertain."""
    return _probs(logits).max(dim=-1).values
