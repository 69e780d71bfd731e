"""Distillation losses against hand-computed values and independent re-implementations."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dynamic_kd.losses import (
    KD_LOSSES,
    REP_NORMALIZATIONS,
    dynamic_kd_loss,
    hidden_state_alignment,
    kd_kl,
    kd_mse,
    layer_map,
    supervised_loss,
)


def logits_of(*probs):
    """Logits whose softmax is exactly `probs`."""
    return torch.tensor([[math.log(p) for p in probs]])


# ---------------------------------------------------------------- kd_kl


def test_kd_kl_by_hand_temperature_1():
    student = torch.zeros(1, 2)  # q = [0.5, 0.5]
    teacher = logits_of(0.8, 0.2)
    # KL(p‖q) = 0.8 ln(0.8/0.5) + 0.2 ln(0.2/0.5) = 0.8 * 0.4700036 - 0.2 * 0.9162907
    expected = 0.8 * math.log(1.6) + 0.2 * math.log(0.4)
    assert expected == pytest.approx(0.1927448, abs=1e-6)
    assert kd_kl(student, teacher).item() == pytest.approx(expected, abs=1e-6)


def test_kd_kl_by_hand_temperature_2_scales_by_t_squared():
    student = torch.zeros(1, 2)
    teacher = logits_of(0.8, 0.2)
    # softmax(log p / 2) ∝ sqrt(p) = [sqrt 0.8, sqrt 0.2] ∝ [2, 1] -> [2/3, 1/3]; q stays uniform
    kl = (2 / 3) * math.log((2 / 3) / 0.5) + (1 / 3) * math.log((1 / 3) / 0.5)
    assert kl == pytest.approx(0.0566330, abs=1e-6)
    assert kd_kl(student, teacher, temperature=2.0).item() == pytest.approx(4 * kl, abs=1e-6)


def test_kd_kl_reductions():
    student = torch.cat([torch.zeros(1, 2), torch.zeros(1, 2)])
    teacher = torch.cat([logits_of(0.8, 0.2), torch.tensor([[5.0, 5.0]])])
    per = kd_kl(student, teacher, reduction="none")
    assert per.shape == (2,)
    assert per.tolist() == pytest.approx([0.1927448, 0.0], abs=1e-6)
    assert kd_kl(student, teacher, reduction="mean").item() == pytest.approx(0.1927448 / 2, abs=1e-6)
    assert kd_kl(student, teacher, reduction="sum").item() == pytest.approx(0.1927448, abs=1e-6)
    with pytest.raises(ValueError, match="reduction"):
        kd_kl(student, teacher, reduction="batchmean")


def test_kd_kl_matches_torch_kl_div():
    torch.manual_seed(0)
    student, teacher = torch.randn(6, 4), torch.randn(6, 4)
    for t in (1.0, 2.0, 5.0):
        ref = F.kl_div(F.log_softmax(student / t, -1), F.softmax(teacher / t, -1), reduction="batchmean") * t * t
        assert kd_kl(student, teacher, temperature=t).item() == pytest.approx(ref.item(), rel=1e-5)


def test_kd_kl_gradient_is_t_times_q_minus_p():
    # d/dz_s [T² KL(p‖q)] = T (q - p), divided by B for the batch mean
    torch.manual_seed(1)
    student = torch.randn(3, 4, requires_grad=True)
    teacher = torch.randn(3, 4, requires_grad=True)
    t = 2.0
    kd_kl(student, teacher, temperature=t).backward()
    q, p = F.softmax(student.detach() / t, -1), F.softmax(teacher.detach() / t, -1)
    assert torch.allclose(student.grad, t * (q - p) / 3, atol=1e-6)
    assert teacher.grad is None


def test_kd_kl_saturated_teacher_and_infinite_student_logit_are_finite():
    student = torch.tensor([[0.0, float("-inf"), 1.0]], requires_grad=True)
    teacher = torch.tensor([[1000.0, -1000.0, 0.0]])  # p = [1, 0, 0]
    loss = kd_kl(student, teacher)
    # KL = 1 · (log 1 - log q_0) = log(1 + e)
    assert loss.item() == pytest.approx(math.log(1 + math.e), abs=1e-5)
    loss.backward()
    assert torch.isfinite(student.grad).all()


# ---------------------------------------------------------------- kd_mse


def test_kd_mse_by_hand_and_ignores_temperature():
    student = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    teacher = torch.tensor([[0.0, 2.0, 5.0], [1.0, 1.0, 1.0]])
    # row 0: (1 + 0 + 4) / 3 = 5/3; row 1: (1 + 1 + 1) / 3 = 1
    assert kd_mse(student, teacher, reduction="none").tolist() == pytest.approx([5 / 3, 1.0], abs=1e-6)
    assert kd_mse(student, teacher).item() == pytest.approx(4 / 3, abs=1e-6)
    assert kd_mse(student, teacher, temperature=3.0).item() == pytest.approx(4 / 3, abs=1e-6)
    assert kd_mse(student, teacher, reduction="sum").item() == pytest.approx(8 / 3, abs=1e-6)


def test_kd_mse_regression_single_output():
    assert kd_mse(torch.tensor([[2.0]]), torch.tensor([[0.5]])).item() == pytest.approx(2.25)


def test_kd_losses_registry():
    assert KD_LOSSES == {"kl": kd_kl, "mse": kd_mse}


# ---------------------------------------------------------------- supervised_loss


def test_supervised_loss_classification_by_hand():
    logits = torch.tensor([[0.0, math.log(3)], [0.0, math.log(3)]])  # p = [0.25, 0.75]
    labels = torch.tensor([1, 0])
    per = supervised_loss(logits, labels, regression=False, reduction="none")
    assert per.tolist() == pytest.approx([-math.log(0.75), math.log(4)], abs=1e-6)
    mean = supervised_loss(logits, labels, regression=False)
    assert mean.item() == pytest.approx((-math.log(0.75) + math.log(4)) / 2, abs=1e-6)


def test_supervised_loss_label_smoothing_by_hand():
    # C = 2, ε = 0.2: target (0.1, 0.9) for label 1 and (0.9, 0.1) for label 0
    logits = torch.tensor([[0.0, math.log(3)], [0.0, math.log(3)]])  # p = [0.25, 0.75]
    labels = torch.tensor([1, 0])
    per = supervised_loss(logits, labels, regression=False, reduction="none", label_smoothing=0.2)
    expected = [-(0.1 * math.log(0.25) + 0.9 * math.log(0.75)), -(0.9 * math.log(0.25) + 0.1 * math.log(0.75))]
    assert per.tolist() == pytest.approx(expected, abs=1e-6)


def test_supervised_loss_regression_by_hand():
    logits = torch.tensor([[1.5], [0.0]])
    labels = torch.tensor([1.0, 2.0])
    assert supervised_loss(logits, labels, regression=True, reduction="none").tolist() == pytest.approx([0.25, 4.0])
    assert supervised_loss(logits, labels, regression=True).item() == pytest.approx(2.125)


def test_supervised_loss_regression_rejects_multi_output_logits():
    with pytest.raises(ValueError, match="num_labels=1"):
        supervised_loss(torch.zeros(2, 3), torch.zeros(2), regression=True)


# ---------------------------------------------------------------- precision and gradient flow


@pytest.mark.parametrize(
    "loss_fn",
    [
        lambda s, t: kd_kl(s, t, temperature=2.0),
        lambda s, t: kd_mse(s, t),
        lambda s, t: dynamic_kd_loss(s, t, temperature=2.0),
    ],
    ids=["kd_kl", "kd_mse", "dynamic_kd_loss"],
)
def test_gradient_reaches_student_only(loss_fn):
    torch.manual_seed(2)
    student = torch.randn(4, 3, requires_grad=True)
    teacher = torch.randn(4, 3, requires_grad=True)
    loss_fn(student, teacher).backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert teacher.grad is None


def test_losses_compute_in_fp32_for_bf16_inputs():
    student = torch.tensor([[0.5, -0.25, 1.0]]).to(torch.bfloat16)
    teacher = torch.tensor([[1.0, 0.0, -1.0]]).to(torch.bfloat16)
    for loss in (
        kd_kl(student, teacher),
        kd_mse(student, teacher),
        dynamic_kd_loss(student, teacher),
        supervised_loss(student, torch.tensor([2]), regression=False),
    ):
        assert loss.dtype == torch.float32


# ---------------------------------------------------------------- dynamic_kd_loss


def seed_dynamic_kd_loss(student_logits, teacher_logits, temperature):
    """The paper's snippet, re-implemented independently for comparison."""
    with torch.no_grad():
        p = F.softmax(student_logits, dim=-1)
        h = -torch.sum(p * torch.log(p + 1e-6), dim=1)
        w = h / torch.log(torch.ones_like(h) * student_logits.size(1))
    batch_loss = (
        F.kl_div(
            F.log_softmax(student_logits / temperature, dim=-1),
            F.softmax(teacher_logits / temperature, dim=-1),
            reduction="none",
        ).sum(-1)
        * temperature**2
    )
    return torch.mean(batch_loss * w)


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_dynamic_kd_loss_matches_seed_formula(temperature):
    torch.manual_seed(3)
    student = torch.randn(5, 3) * 2
    teacher = torch.randn(5, 3) * 2
    ours = dynamic_kd_loss(student, teacher, temperature=temperature)
    ref = seed_dynamic_kd_loss(student, teacher, temperature)
    assert ours.dim() == 0
    assert ours.item() == pytest.approx(ref.item(), rel=1e-5, abs=1e-7)


def test_dynamic_kd_loss_by_hand():
    # uniform student (w = H/ln2 with the 1e-6: -ln(0.500001)/ln 2) vs teacher [0.8, 0.2]
    student = torch.zeros(1, 2)
    teacher = logits_of(0.8, 0.2)
    w = -math.log(0.5 + 1e-6) / math.log(2)
    assert dynamic_kd_loss(student, teacher).item() == pytest.approx(w * 0.1927448, abs=1e-6)


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_dynamic_kd_loss_weights_carry_no_gradient(temperature):
    torch.manual_seed(4)
    base_student = torch.randn(4, 3)
    teacher = torch.randn(4, 3)

    student = base_student.clone().requires_grad_(True)
    dynamic_kd_loss(student, teacher, temperature).backward()
    ours = student.grad

    # expected: w_i (a constant) times the gradient of instance i's own KD term
    with torch.no_grad():
        p = F.softmax(base_student, -1)
        w = -(p * torch.log(p + 1e-6)).sum(-1) / math.log(3)
    probe = base_student.clone().requires_grad_(True)
    per = kd_kl(probe, teacher, temperature, reduction="none")
    (per * w).mean().backward()
    assert torch.allclose(ours, probe.grad, atol=1e-6)

    # and it differs from letting the gradient also flow through the weights
    leaky = base_student.clone().requires_grad_(True)
    q = F.softmax(leaky, -1)
    w_grad = -(q * torch.log(q + 1e-6)).sum(-1) / math.log(3)
    (kd_kl(leaky, teacher, temperature, reduction="none") * w_grad).mean().backward()
    assert not torch.allclose(ours, leaky.grad, atol=1e-4)


def test_dynamic_kd_loss_rejects_single_output_head():
    with pytest.raises(ValueError, match="at least 2 classes"):
        dynamic_kd_loss(torch.zeros(2, 1), torch.zeros(2, 1))


# ---------------------------------------------------------------- layer_map


@pytest.mark.parametrize(
    "student, teacher, expected",
    [
        (2, 6, [(0, 0), (1, 3), (2, 6)]),
        (1, 6, [(0, 0), (1, 6)]),
        (6, 6, [(i, i) for i in range(7)]),
        (4, 6, [(0, 0), (1, 1), (2, 3), (3, 4), (4, 6)]),  # not a multiple: integer division
        (3, 12, [(0, 0), (1, 4), (2, 8), (3, 12)]),
    ],
)
def test_layer_map(student, teacher, expected):
    assert layer_map(student, teacher) == expected


# ---------------------------------------------------------------- hidden_state_alignment


def test_alignment_identical_states_give_zero():
    torch.manual_seed(5)
    h = torch.randn(2, 3, 4)
    mask = torch.ones(2, 3)
    out = hidden_state_alignment([h, h * 3.0], [h.clone(), h.clone()], mask)
    assert out.shape == (2,)
    assert torch.allclose(out, torch.zeros(2), atol=1e-6)


def test_alignment_opposite_directions_give_four_over_hidden_size():
    # unit vectors u and -u: squared distance 4, averaged over H = 3 hidden units
    h = torch.tensor([[[1.0, 2.0, -2.0]]])
    out = hidden_state_alignment([h], [-5.0 * h], torch.ones(1, 1))
    assert out.item() == pytest.approx(4.0 / 3, abs=1e-6)


def test_alignment_two_tokens_by_hand():
    # H = 2. token 0: [1, 1] vs [1, 0] -> squared distance ‖(1/√2 - 1, 1/√2)‖² = 2 - √2, mean over H (2 - √2) / 2
    # token 1: [0, 3] vs [2, 0] -> orthogonal unit vectors, squared distance 2, mean over H 1
    student = torch.tensor([[[1.0, 1.0], [0.0, 3.0]]])
    teacher = torch.tensor([[[1.0, 0.0], [2.0, 0.0]]])
    mask = torch.ones(1, 2)
    one_pair = ((2 - math.sqrt(2)) / 2 + 1) / 2  # mean over the 2 tokens = 0.6464466
    out = hidden_state_alignment([student], [teacher], mask)
    assert out.item() == pytest.approx(one_pair, abs=1e-6)
    # layer pairs are summed (the released scripts' scale): a perfectly aligned pair adds 0 ...
    both = hidden_state_alignment([student, teacher], [teacher, teacher], mask)
    assert both.item() == pytest.approx(one_pair, abs=1e-6)
    # ... and the same misaligned pair twice counts twice
    twice = hidden_state_alignment([student, student], [teacher, teacher], mask)
    assert twice.item() == pytest.approx(2 * one_pair, abs=1e-6)


def test_alignment_matches_the_released_scale():
    """Equal-length rows: the released scripts' MSE of hidden-axis-normalised states over
    tokens and hidden units, summed over layer pairs (not averaged over them)."""
    student = [torch.tensor([[[3.0, 4.0, 0.0], [0.0, 0.0, 2.0]]]), torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])]
    teacher = [torch.tensor([[[0.0, 5.0, 0.0], [0.0, 0.0, 7.0]]]), torch.tensor([[[0.0, 0.0, 1.0], [0.0, 1.0, 0.0]]])]
    # pair 0: token 0 (0.6, 0.8, 0) vs (0, 1, 0): 0.36 + 0.04 = 0.4; token 1 identical: 0
    #         -> (0.4 + 0) / (2 tokens * 3 units) = 1/15
    # pair 1: token 0 orthogonal: 2; token 1 identical: 0 -> 2 / 6 = 1/3
    expected = 1 / 15 + 1 / 3
    out = hidden_state_alignment(student, teacher, torch.ones(1, 2))
    assert out.item() == pytest.approx(expected, abs=1e-6)
    # the formula of the released scripts, written out with torch's own mse_loss
    released = sum(F.mse_loss(F.normalize(s, dim=-1), F.normalize(t, dim=-1)) for s, t in zip(student, teacher))
    assert out.item() == pytest.approx(released.item(), abs=1e-6)


def test_alignment_ignores_padding_positions():
    student = torch.tensor([[[1.0, 1.0], [0.0, 3.0], [7.0, 7.0]], [[1.0, 0.0], [9.0, 9.0], [9.0, 9.0]]])
    teacher = torch.tensor([[[1.0, 0.0], [2.0, 0.0], [-1.0, 2.0]], [[0.0, 1.0], [5.0, 1.0], [1.0, 5.0]]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    out = hidden_state_alignment([student], [teacher], mask)
    # row 0: mean of its two real tokens (as above); row 1: one real token, orthogonal -> 2 / H = 1
    assert out.tolist() == pytest.approx([((2 - math.sqrt(2)) / 2 + 1) / 2, 1.0], abs=1e-6)

    garbage_s, garbage_t = student.clone(), teacher.clone()
    garbage_s[0, 2] = torch.tensor([1e6, -3.0])
    garbage_t[1, 1:] = float("nan")
    assert torch.equal(hidden_state_alignment([garbage_s], [garbage_t], mask), out)


def test_alignment_cls_only_uses_position_zero():
    torch.manual_seed(6)
    cls = torch.randn(2, 1, 4)
    student = torch.cat([cls, torch.randn(2, 3, 4)], dim=1)
    teacher = torch.cat([cls.clone(), torch.randn(2, 3, 4)], dim=1)
    mask = torch.ones(2, 4)
    assert torch.allclose(hidden_state_alignment([student], [teacher], mask, cls_only=True), torch.zeros(2), atol=1e-6)
    assert (hidden_state_alignment([student], [teacher], mask) > 0).all()

    # [B, H] inputs are [CLS] states already: same answer as cls_only on [B, L, H]
    other = torch.cat([torch.randn(2, 1, 4), teacher[:, 1:]], dim=1)
    from_seq = hidden_state_alignment([student], [other], mask, cls_only=True)
    from_cls = hidden_state_alignment([student[:, 0]], [other[:, 0]], None)
    assert torch.allclose(from_seq, from_cls)


def test_alignment_projection_trains_and_teacher_gets_no_grad():
    torch.manual_seed(7)
    projection = nn.Linear(4, 6)
    student = torch.randn(2, 3, 4, requires_grad=True)
    teacher = torch.randn(2, 3, 6, requires_grad=True)
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    out = hidden_state_alignment([student], [teacher], mask, projection=projection)
    assert out.shape == (2,)
    out.mean().backward()
    assert projection.weight.grad is not None and projection.weight.grad.abs().sum() > 0
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert teacher.grad is None


def test_alignment_mismatched_sizes_without_projection_raise():
    with pytest.raises(ValueError, match="hidden sizes differ"):
        hidden_state_alignment([torch.zeros(1, 2, 4)], [torch.zeros(1, 2, 6)], torch.ones(1, 2))


def test_alignment_unpaired_sequences_raise():
    h = torch.zeros(1, 2, 4)
    with pytest.raises(ValueError, match="layer_map"):
        hidden_state_alignment([h, h], [h], torch.ones(1, 2))


def test_alignment_is_fp32_for_bf16_states():
    student = torch.tensor([[[1.0, 1.0], [0.0, 3.0]]]).to(torch.bfloat16)
    teacher = torch.tensor([[[1.0, 0.0], [2.0, 0.0]]]).to(torch.bfloat16)
    out = hidden_state_alignment([student], [teacher], torch.ones(1, 2))
    assert out.dtype == torch.float32
    assert out.item() == pytest.approx(((2 - math.sqrt(2)) / 2 + 1) / 2, abs=1e-6)


# ---------------------------------------------------------------- --rep_normalization sequence (released)


def test_sequence_normalization_by_hand():
    # one row, L = 2 tokens, H = 2 units; each hidden unit is normalised over the tokens:
    # student unit 0 (3, 4) -> (0.6, 0.8), unit 1 (1, 0) -> (1, 0)
    # teacher unit 0 (4, 3) -> (0.8, 0.6), unit 1 (0, 1) -> (0, 1)
    # squared differences 0.04 + 0.04 + 1 + 1 = 2.08, over |M| * H = 4 -> 0.52
    student = torch.tensor([[[3.0, 1.0], [4.0, 0.0]]])
    teacher = torch.tensor([[[4.0, 0.0], [3.0, 1.0]]])
    out = hidden_state_alignment([student], [teacher], torch.ones(1, 2), normalization="sequence")
    assert out.item() == pytest.approx(0.52, abs=1e-6)
    # the released `none` branch: torch's mse_loss of the states normalised along dim 1
    released = F.mse_loss(F.normalize(student, dim=1), F.normalize(teacher, dim=1))
    assert out.item() == pytest.approx(released.item(), abs=1e-6)
    # the hidden-axis default on the same states differs: rows (3, 1)/sqrt(10) vs (1, 0), twice
    hidden = hidden_state_alignment([student], [teacher], torch.ones(1, 2))
    assert hidden.item() == pytest.approx(2 * ((3 / math.sqrt(10) - 1) ** 2 + 0.1) / 4, abs=1e-6)
    assert set(REP_NORMALIZATIONS) == {"hidden", "sequence"}


def test_sequence_normalization_leaves_padding_out_of_the_norm_and_the_mean():
    student = torch.tensor([[[3.0, 1.0], [4.0, 0.0], [100.0, -7.0]]])
    teacher = torch.tensor([[[4.0, 0.0], [3.0, 1.0], [float("nan"), 2.0]]])
    out = hidden_state_alignment([student], [teacher], torch.tensor([[1, 1, 0]]), normalization="sequence")
    assert out.item() == pytest.approx(0.52, abs=1e-6)
