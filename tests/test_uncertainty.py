"""Uncertainty scores against values worked out by hand."""

import math

import pytest
import torch

from dynamic_kd.uncertainty import entropy, least_confidence, margin, normalized_entropy

ALL_SCORES = (entropy, normalized_entropy, margin, least_confidence)


def logits_of(*probs):
    """Logits whose softmax is exactly `probs` (log p, since Σ p = 1)."""
    return torch.tensor([[math.log(p) for p in probs]])


def test_uniform_two_classes():
    logits = torch.zeros(1, 2)  # p = [0.5, 0.5]
    assert entropy(logits).item() == pytest.approx(math.log(2), abs=1e-6)
    assert normalized_entropy(logits).item() == pytest.approx(1.0, abs=1e-6)
    assert margin(logits).item() == pytest.approx(0.0, abs=1e-7)
    assert least_confidence(logits).item() == pytest.approx(0.5, abs=1e-7)


def test_two_classes_by_hand():
    logits = logits_of(0.8, 0.2)
    # H = -(0.8 ln 0.8 + 0.2 ln 0.2) = 0.8 * 0.2231436 + 0.2 * 1.6094379 = 0.1785148 + 0.3218876
    assert entropy(logits).item() == pytest.approx(0.5004024, abs=1e-6)
    # u = 0.5004024 / ln 2 = 0.5004024 / 0.6931472
    assert normalized_entropy(logits).item() == pytest.approx(0.7219281, abs=1e-6)
    assert margin(logits).item() == pytest.approx(0.6, abs=1e-6)
    assert least_confidence(logits).item() == pytest.approx(0.8, abs=1e-6)


def test_three_classes_by_hand():
    logits = logits_of(0.5, 0.3, 0.2)
    # H = 0.5 * 0.6931472 + 0.3 * 1.2039728 + 0.2 * 1.6094379 = 0.3465736 + 0.3611918 + 0.3218876
    assert entropy(logits).item() == pytest.approx(1.0296530, abs=1e-6)
    # u = 1.0296530 / ln 3 = 1.0296530 / 1.0986123
    assert normalized_entropy(logits).item() == pytest.approx(0.9372306, abs=1e-6)
    assert margin(logits).item() == pytest.approx(0.2, abs=1e-6)
    assert least_confidence(logits).item() == pytest.approx(0.5, abs=1e-6)


def test_uniform_three_classes_is_maximal():
    logits = torch.full((1, 3), 7.0)  # a constant shift must not matter
    assert entropy(logits).item() == pytest.approx(math.log(3), abs=1e-6)
    assert normalized_entropy(logits).item() == pytest.approx(1.0, abs=1e-6)
    assert least_confidence(logits).item() == pytest.approx(1 / 3, abs=1e-6)


def test_batch_rows_are_independent():
    batch = torch.cat([logits_of(0.8, 0.2), torch.zeros(1, 2), torch.tensor([[1000.0, -1000.0]])])
    assert entropy(batch).tolist() == pytest.approx([0.5004024, math.log(2), 0.0], abs=1e-6)
    assert margin(batch).tolist() == pytest.approx([0.6, 0.0, 1.0], abs=1e-6)
    assert least_confidence(batch).tolist() == pytest.approx([0.8, 0.5, 1.0], abs=1e-6)


@pytest.mark.parametrize("score", ALL_SCORES)
def test_batch_of_one_keeps_batch_axis(score):
    out = score(torch.tensor([[0.3, -1.2, 2.0]]))
    assert out.shape == (1,)


def test_ties_between_top_classes():
    logits = torch.tensor([[2.0, 2.0, 0.0]])
    assert margin(logits).item() == pytest.approx(0.0, abs=1e-7)
    # p = [e², e², 1] / (2e² + 1)
    top = math.exp(2) / (2 * math.exp(2) + 1)
    assert least_confidence(logits).item() == pytest.approx(top, abs=1e-6)


def test_extreme_logits_give_zero_entropy_without_nan():
    logits = torch.tensor([[1000.0, -1000.0], [-1000.0, 1000.0]])
    h = entropy(logits)
    assert not torch.isnan(h).any()
    assert h.tolist() == [0.0, 0.0]
    assert not torch.signbit(h).any()  # a plain 0, not -0.0
    assert normalized_entropy(logits).tolist() == [0.0, 0.0]
    assert margin(logits).tolist() == [1.0, 1.0]
    assert least_confidence(logits).tolist() == [1.0, 1.0]


def test_negative_infinite_logits_contribute_nothing():
    inf = float("inf")
    logits = torch.tensor([[0.0, 0.0, -inf], [0.0, -inf, -inf]])
    for score in ALL_SCORES:
        assert not torch.isnan(score(logits)).any(), score.__name__
    assert entropy(logits).tolist() == pytest.approx([math.log(2), 0.0], abs=1e-6)
    assert normalized_entropy(logits).tolist() == pytest.approx([math.log(2) / math.log(3), 0.0], abs=1e-6)
    assert margin(logits).tolist() == pytest.approx([0.0, 1.0], abs=1e-6)
    assert least_confidence(logits).tolist() == pytest.approx([0.5, 1.0], abs=1e-6)


@pytest.mark.parametrize("score", ALL_SCORES)
def test_bf16_input_gives_fp32_output(score):
    logits = torch.tensor([[0.5, -0.25, 1.0], [3.0, 0.0, -2.0]])
    out = score(logits.to(torch.bfloat16))
    assert out.dtype == torch.float32
    # bf16 represents these logits exactly, so only the fp32 math should remain
    assert torch.allclose(out, score(logits), atol=1e-6)


@pytest.mark.parametrize("score", ALL_SCORES)
def test_no_gradient_even_if_logits_require_grad(score):
    logits = torch.randn(4, 3, requires_grad=True)
    out = score(logits)
    assert not out.requires_grad
    assert out.grad_fn is None


@pytest.mark.parametrize("score", [normalized_entropy, margin])
def test_single_output_head_is_rejected(score):
    with pytest.raises(ValueError, match="at least 2 classes"):
        score(torch.zeros(3, 1))


def test_entropy_and_margin_rank_uncertainty_oppositely():
    confident, unsure = logits_of(0.9, 0.1), logits_of(0.6, 0.4)
    batch = torch.cat([confident, unsure])
    assert normalized_entropy(batch)[0] < normalized_entropy(batch)[1]
    assert margin(batch)[0] > margin(batch)[1]
    assert least_confidence(batch)[0] > least_confidence(batch)[1]


def test_differentiable_normalized_entropy_has_the_gradient_of_its_formula():
    """`differentiable=True` (--uncertainty_grad): d u / d z of u = -Σ p log p / log C."""
    logits = torch.tensor([[2.0, -1.0, 0.5], [0.1, 0.2, 0.3]], requires_grad=True)
    normalized_entropy(logits, differentiable=True).sum().backward()
    by_hand = logits.detach().clone().requires_grad_(True)
    p = torch.softmax(by_hand, dim=-1)
    (-(p * p.log()).sum(dim=-1) / math.log(3)).sum().backward()
    torch.testing.assert_close(logits.grad, by_hand.grad)
    assert not normalized_entropy(logits).requires_grad
