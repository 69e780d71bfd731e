"""Dynamic KD strategies (selection, teacher adoption, objective weights) against hand-computed plans."""

import math
from types import SimpleNamespace

import pytest
import torch

from dynamic_kd import select_instances
from dynamic_kd.strategies import (
    AverageTeachers,
    DataSelection,
    HardAdoption,
    ObjectiveWeights,
    Route,
    SingleTeacher,
    SoftAdoption,
    SoftInstanceAdoption,
    StudentSignal,
    build_strategies,
    initial_plan,
    plan_distillation,
    plan_statistics,
    reads_student,
    split_plan,
    student_signal,
)
from dynamic_kd.uncertainty import normalized_entropy


def logits_of(*rows):
    """Logits whose softmax is exactly each row of probabilities (log p, since sum p = 1)."""
    return torch.tensor([[math.log(p) for p in row] for row in rows])


def binary(*p_first):
    """Two-class logits with P(class 0) = p for each p."""
    return logits_of(*[(p, 1.0 - p) for p in p_first])


def rows_of(route):
    return route.rows.tolist()


def by_teacher(plan):
    """teacher name -> route (each test plan has at most one route per teacher)."""
    out = {}
    for route in plan:
        assert route.teacher not in out
        out[route.teacher] = route
    return out


def close(tensor, expected, tol=1e-6):
    assert tensor.tolist() == pytest.approx(expected, abs=tol)


def signal_with(u, logits=None):
    u = torch.tensor(u)
    if logits is None:
        logits = torch.zeros(len(u), 2)
    return StudentSignal(logits, u)


# ---------------------------------------------------------------------------------------------
# select_instances

# Two classes. Per row P(class 0), entropy H (nats), margin m = |2p - 1|, max-prob c:
#   row 0: 0.9  H = 0.3251  m = 0.8   c = 0.9
#   row 1: 0.5  H = 0.6931  m = 0.0   c = 0.5
#   row 2: 0.7  H = 0.6109  m = 0.4   c = 0.7
#   row 3: 0.99 H = 0.0560  m = 0.98  c = 0.99
# With two classes every measure gives the same order: most uncertain 1, 2, 0, 3.
BINARY = binary(0.9, 0.5, 0.7, 0.99)

# Three classes, chosen so the three measures disagree:
#   row 0: (0.49, 0.49, 0.02)  H = 2*0.49*0.71335 + 0.02*3.91202 = 0.7773   m = 0.00  c = 0.49
#   row 1: (0.40, 0.30, 0.30)  H = 0.4*0.91629 + 0.6*1.20397    = 1.0889   m = 0.10  c = 0.40
#   row 2: (0.70, 0.15, 0.15)  H = 0.7*0.35667 + 0.3*1.89712    = 0.8188   m = 0.55  c = 0.70
#   row 3: (0.50, 0.45, 0.05)  H = 0.34657 + 0.35933 + 0.14979  = 0.8557   m = 0.05  c = 0.50
# entropy (highest first): 1, 3, 2, 0;  margin (smallest first): 0, 3, 1, 2;  lc (lowest first): 1, 0, 3, 2
THREE = logits_of((0.49, 0.49, 0.02), (0.40, 0.30, 0.30), (0.70, 0.15, 0.15), (0.50, 0.45, 0.05))


@pytest.mark.parametrize("strategy", ["entropy", "margin", "lc", "least_confidence", "confidence"])
def test_binary_ranking_all_measures(strategy):
    assert select_instances(BINARY, strategy, 1.0).tolist() == [1, 2, 0, 3]
    assert select_instances(BINARY, strategy, 0.5).tolist() == [1, 2]
    assert select_instances(BINARY, strategy, 0.75).tolist() == [1, 2, 0]


@pytest.mark.parametrize(
    "strategy, expected",
    [
        ("entropy", [1, 3, 2, 0]),
        ("margin", [0, 3, 1, 2]),
        ("lc", [1, 0, 3, 2]),
        ("least_confidence", [1, 0, 3, 2]),
        ("confidence", [1, 0, 3, 2]),
    ],
)
def test_three_class_ranking(strategy, expected):
    assert select_instances(THREE, strategy, 1.0).tolist() == expected
    assert select_instances(THREE, strategy, 0.5).tolist() == expected[:2]
    assert select_instances(THREE, strategy, 0.25).tolist() == expected[:1]


def test_returns_long_indices():
    out = select_instances(BINARY, "entropy", 0.5)
    assert out.dtype == torch.long


@pytest.mark.parametrize("strategy", ["entropy", "margin", "lc"])
def test_ties_keep_batch_order(strategy):
    # rows 0, 2, 4 are uniform (most uncertain), rows 1, 3 identical and confident
    logits = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 0.0], [3.0, 0.0], [0.0, 0.0]])
    assert select_instances(logits, strategy, 1.0).tolist() == [0, 2, 4, 1, 3]
    assert select_instances(logits, strategy, 0.4).tolist() == [0, 2]
    same = torch.ones(6, 3)
    assert select_instances(same, strategy, 1.0).tolist() == [0, 1, 2, 3, 4, 5]
    assert select_instances(same, strategy, 0.5).tolist() == [0, 1, 2]


@pytest.mark.parametrize("strategy", ["entropy", "margin", "lc", "random", "none"])
@pytest.mark.parametrize("ratio", [0.1, 0.5, 1.0])
def test_batch_of_one(strategy, ratio):
    gen = torch.Generator().manual_seed(0)
    assert select_instances(torch.tensor([[0.3, -0.2]]), strategy, ratio, gen).tolist() == [0]


def test_floor_zero_still_keeps_one_row():
    # floor(0.2 * 3) = 0 -> k = 1: the single most uncertain row (row 1 is uniform)
    logits = binary(0.9, 0.5, 0.8)
    assert select_instances(logits, "entropy", 0.2).tolist() == [1]
    assert select_instances(logits, "margin", 0.2).tolist() == [1]
    assert select_instances(logits, "lc", 0.2).tolist() == [1]
    assert select_instances(logits, "random", 0.2, torch.Generator().manual_seed(1)).numel() == 1


@pytest.mark.parametrize(
    "batch, ratio, k", [(5, 0.5, 2), (10, 0.3, 3), (10, 0.7, 7), (100, 0.29, 29), (7, 1.0, 7), (8, 0.125, 1)]
)
def test_k_is_floor_of_ratio_times_batch(batch, ratio, k):
    logits = torch.randn(batch, 2, generator=torch.Generator().manual_seed(batch))
    assert select_instances(logits, "entropy", ratio).numel() == k
    assert select_instances(logits, "random", ratio, torch.Generator().manual_seed(0)).numel() == k


def test_none_returns_every_row_in_order():
    assert select_instances(THREE, "none", 1.0).tolist() == [0, 1, 2, 3]
    assert select_instances(THREE, "none", 0.25).tolist() == [0, 1, 2, 3]


def test_random_is_reproducible_and_distinct():
    logits = torch.zeros(20, 2)
    a = select_instances(logits, "random", 0.5, torch.Generator().manual_seed(123))
    b = select_instances(logits, "random", 0.5, torch.Generator().manual_seed(123))
    assert torch.equal(a, b)
    assert a.numel() == 10
    assert len(set(a.tolist())) == 10
    assert all(0 <= i < 20 for i in a.tolist())
    # a different seed gives a different subset/order (20 choose 10 orderings; collision is negligible)
    c = select_instances(logits, "random", 0.5, torch.Generator().manual_seed(124))
    assert not torch.equal(a, c)


@pytest.mark.parametrize("ratio", [0.0, -0.1, 1.5, 1.0001, float("nan")])
@pytest.mark.parametrize("strategy", ["entropy", "random", "none"])
def test_bad_ratio_raises(ratio, strategy):
    with pytest.raises(ValueError, match="ratio"):
        select_instances(BINARY, strategy, ratio)


def test_unknown_strategy_raises():
    with pytest.raises(ValueError, match="bogus"):
        select_instances(BINARY, "bogus", 0.5)


def test_selection_ignores_logit_gradient():
    logits = BINARY.clone().requires_grad_(True)
    out = select_instances(logits, "entropy", 0.5)
    assert out.tolist() == [1, 2]
    assert not out.requires_grad


# ---------------------------------------------------------------------------------------------
# Initial plan and data selection as a strategy


def test_initial_plan():
    (route,) = initial_plan(4)
    assert route.teacher is None
    assert rows_of(route) == [0, 1, 2, 3]
    close(route.kd_weight, [0.25] * 4)
    close(route.rep_weight, [0.0] * 4)


def test_data_selection_averages_kd_over_kept_rows():
    plan = DataSelection("entropy", 0.5).refine(initial_plan(4), StudentSignal(BINARY, None))
    (route,) = plan
    assert rows_of(route) == [1, 2]
    close(route.kd_weight, [0.5, 0.5])  # total mass 1 spread over k = 2 rows
    close(route.rep_weight, [0.0, 0.0])


def test_data_selection_none_is_identity():
    plan = initial_plan(4)
    assert DataSelection("none", 1.0).refine(plan, StudentSignal(BINARY, None)) is plan


def test_data_selection_alias():
    (route,) = DataSelection("least_confidence", 0.25).refine(initial_plan(4), StudentSignal(THREE, None))
    assert rows_of(route) == [1]
    close(route.kd_weight, [1.0])


# ---------------------------------------------------------------------------------------------
# Teacher adoption

U4 = [0.9, 0.1, 0.5, 0.7]


def test_hard_adoption_even():
    plan = by_teacher(HardAdoption(0.6, 0.4).refine(initial_plan(4), signal_with(U4)))
    assert set(plan) == {"small", "large"}
    # top-uncertainty half: u = 0.9 (row 0), 0.7 (row 3) -> small; 0.5 (row 2), 0.1 (row 1) -> large
    assert sorted(rows_of(plan["small"])) == [0, 3]
    assert sorted(rows_of(plan["large"])) == [1, 2]
    close(plan["small"].kd_weight, [0.6 / 2] * 2)
    close(plan["large"].kd_weight, [0.4 / 2] * 2)
    close(plan["small"].rep_weight, [0.0] * 2)
    close(plan["large"].rep_weight, [0.0] * 2)


def test_hard_adoption_odd():
    # K = 3 -> small gets ceil(3/2) = 2 rows: u = 0.8 (row 1), 0.5 (row 2); large gets row 0
    plan = by_teacher(HardAdoption(0.6, 0.4).refine(initial_plan(3), signal_with([0.2, 0.8, 0.5])))
    assert sorted(rows_of(plan["small"])) == [1, 2]
    assert rows_of(plan["large"]) == [0]
    close(plan["small"].kd_weight, [0.3, 0.3])
    close(plan["large"].kd_weight, [0.4])


def test_hard_adoption_single_row_keeps_the_routes_full_weight():
    # One row has no second half: it goes to the small teacher (ceil(1/2) = 1) with the weight of
    # both halves, 0.6 + 0.4 = 1.0 x the route's weight 1 (it was 0.6 before: the KD weight dropped).
    (route,) = HardAdoption(0.6, 0.4).refine(initial_plan(1), signal_with([0.3]))
    assert route.teacher == "small"
    assert rows_of(route) == [0]
    close(route.kd_weight, [1.0])
    close(route.rep_weight, [0.0])


def test_hard_adoption_single_row_of_a_weighted_route():
    # A route of one row that carries weight 0.25 (e.g. k = 1 of a selection): 0.25 x (0.6 + 0.4).
    plan = [Route(None, torch.tensor([2]), torch.tensor([0.25]), torch.tensor([0.5]))]
    (route,) = HardAdoption(0.6, 0.4).refine(plan, signal_with(U4))
    assert (route.teacher, rows_of(route)) == ("small", [2])
    close(route.kd_weight, [0.25])
    close(route.rep_weight, [0.5])


@pytest.mark.parametrize("rows", [1, 2, 3, 4, 5])
def test_hard_adoption_total_weight_does_not_depend_on_row_count(rows):
    plan = HardAdoption(0.6, 0.3).refine(initial_plan(rows), signal_with([0.1 * (i + 1) for i in range(rows)]))
    assert sum(r.kd_weight.sum().item() for r in plan) == pytest.approx(0.9, abs=1e-6)


def test_hard_adoption_ties_keep_batch_order():
    plan = by_teacher(HardAdoption(0.5, 0.5).refine(initial_plan(4), signal_with([0.5] * 4)))
    assert rows_of(plan["small"]) == [0, 1]
    assert rows_of(plan["large"]) == [2, 3]


def test_soft_adoption():
    # mean u = (0.9 + 0.1 + 0.5 + 0.7) / 4 = 0.55; B = 4
    plan = by_teacher(SoftAdoption().refine(initial_plan(4), signal_with(U4)))
    assert rows_of(plan["small"]) == [0, 1, 2, 3]
    assert rows_of(plan["large"]) == [0, 1, 2, 3]
    close(plan["small"].kd_weight, [0.55 / 4] * 4)  # 0.1375
    close(plan["large"].kd_weight, [0.45 / 4] * 4)  # 0.1125


def test_soft_instance_adoption():
    plan = by_teacher(SoftInstanceAdoption().refine(initial_plan(4), signal_with(U4)))
    assert rows_of(plan["small"]) == [0, 1, 2, 3]
    close(plan["small"].kd_weight, [0.225, 0.025, 0.125, 0.175])  # u_i / 4
    close(plan["large"].kd_weight, [0.025, 0.225, 0.125, 0.075])  # (1 - u_i) / 4


def test_average_teachers():
    plan = by_teacher(AverageTeachers(0.3, 0.7).refine(initial_plan(4), signal_with(U4)))
    assert rows_of(plan["small"]) == [0, 1, 2, 3]
    assert rows_of(plan["large"]) == [0, 1, 2, 3]
    close(plan["small"].kd_weight, [0.075] * 4)
    close(plan["large"].kd_weight, [0.175] * 4)


def test_average_teachers_needs_no_uncertainty():
    plan = by_teacher(AverageTeachers(0.5, 0.5).refine(initial_plan(2), StudentSignal(torch.zeros(2, 1), None)))
    close(plan["small"].kd_weight, [0.25, 0.25])


def test_single_teacher():
    (route,) = SingleTeacher("large").refine(initial_plan(4), signal_with(U4))
    assert route.teacher == "large"
    assert rows_of(route) == [0, 1, 2, 3]
    close(route.kd_weight, [0.25] * 4)
    (route,) = SingleTeacher("teacher", alpha=2.0).refine(initial_plan(4), signal_with(U4))
    assert route.teacher == "teacher"
    close(route.kd_weight, [0.5] * 4)


# ---------------------------------------------------------------------------------------------
# Objective weights (supervision adjustment)


def test_objective_none():
    (route,) = ObjectiveWeights("none", 0.8, 2.0).refine(initial_plan(4), signal_with(U4))
    close(route.kd_weight, [0.8 * 0.25] * 4)  # 0.2
    close(route.rep_weight, [2.0 * 0.25] * 4)  # 0.5


def test_objective_none_without_uncertainty():
    (route,) = ObjectiveWeights("none", 1.0, 0.5).refine(initial_plan(2), StudentSignal(torch.zeros(2, 1), None))
    close(route.kd_weight, [0.5, 0.5])
    close(route.rep_weight, [0.25, 0.25])


def test_objective_uncertainty():
    (route,) = ObjectiveWeights("uncertainty", 0.8, 2.0).refine(initial_plan(4), signal_with(U4))
    # kd = (1 - w) * 0.8 * 0.25 = (1 - w) * 0.2; rep = w * 2 * 0.25 = w * 0.5
    close(route.kd_weight, [0.02, 0.18, 0.10, 0.06])
    close(route.rep_weight, [0.45, 0.05, 0.25, 0.35])


def test_objective_uncertainty_reversed():
    (route,) = ObjectiveWeights("uncertainty-r", 0.8, 2.0).refine(initial_plan(4), signal_with(U4))
    # kd = w * 0.2; rep = (1 - w) * 0.5
    close(route.kd_weight, [0.18, 0.02, 0.10, 0.14])
    close(route.rep_weight, [0.05, 0.45, 0.25, 0.15])


def test_objective_uses_each_routes_rows():
    plan = [Route("small", torch.tensor([3, 0]), torch.tensor([0.5, 0.5]), torch.zeros(2))]
    (route,) = ObjectiveWeights("uncertainty", 1.0, 1.0).refine(plan, signal_with(U4))
    # rows 3, 0 have w = 0.7, 0.9
    close(route.kd_weight, [0.15, 0.05])
    close(route.rep_weight, [0.35, 0.45])


# ---------------------------------------------------------------------------------------------
# Composition


def kd_args(**overrides):
    values = dict(
        selection_strategy="none",
        selection_ratio=1.0,
        uncertainty_mode=None,
        small_teacher_alpha=0.5,
        large_teacher_alpha=0.5,
        strategy="none",
        kd_kl_alpha=1.0,
        kd_rep_alpha=0.0,
    )
    values.update(overrides)
    return SimpleNamespace(**values)


# Eight two-class rows, P(class 0) and normalised entropy u = H / ln 2 (by hand):
#   row 0: 0.5    u = 1.0
#   row 1: 0.99   u = (0.99*0.0100503 + 0.01*4.6051702) / 0.6931472 = 0.0560015 / 0.6931472 = 0.0807931
#   row 2: 0.8    u = 0.5004024 / 0.6931472 = 0.7219281
#   row 3: 0.95   u = (0.95*0.0512933 + 0.05*2.9957323) / 0.6931472 = 0.1985152 / 0.6931472 = 0.2863970
#   row 4: 0.6    u = (0.6*0.5108256 + 0.4*0.9162907) / 0.6931472 = 0.6730117 / 0.6931472 = 0.9709506
#   row 5: 0.9    u = 0.3250830 / 0.6931472 = 0.4689956
#   row 6: 0.7    u = (0.7*0.3566749 + 0.3*1.2039728) / 0.6931472 = 0.6108643 / 0.6931472 = 0.8812909
#   row 7: 0.999  u = 0.0079073 / 0.6931472 = 0.0114078
BATCH8 = binary(0.5, 0.99, 0.8, 0.95, 0.6, 0.9, 0.7, 0.999)
U8 = [1.0, 0.0807931, 0.7219281, 0.2863970, 0.9709506, 0.4689956, 0.8812909, 0.0114078]


def test_signal_uncertainty_by_hand():
    signal = student_signal(BATCH8, regression=False)
    close(signal.uncertainty, U8, tol=1e-5)
    assert student_signal(torch.zeros(3, 1), regression=True).uncertainty is None


def test_selection_hard_uncertainty_composed():
    args = kd_args(
        selection_strategy="entropy",
        selection_ratio=0.5,
        uncertainty_mode="hard",
        small_teacher_alpha=0.6,
        large_teacher_alpha=0.4,
        strategy="uncertainty",
        kd_kl_alpha=0.8,
        kd_rep_alpha=2.0,
    )
    plan = by_teacher(plan_distillation(build_strategies(args), student_signal(BATCH8, regression=False)))
    assert set(plan) == {"small", "large"}
    # selection keeps k = 4 rows, highest u: 0 (1.0), 4 (0.971), 6 (0.881), 2 (0.722), each 1/4.
    # hard: small = rows 0, 4 with 0.6 * 1 / 2 = 0.3 each; large = rows 6, 2 with 0.4 / 2 = 0.2 each.
    small, large = plan["small"], plan["large"]
    assert rows_of(small) == [0, 4]
    assert rows_of(large) == [6, 2]
    # objective: kd = base * 0.8 * (1 - u), rep = base * 2 * u
    #   row 0: kd = 0.24 * 0         = 0           rep = 0.6 * 1.0       = 0.6
    #   row 4: kd = 0.24 * 0.0290494 = 0.00697186  rep = 0.6 * 0.9709506 = 0.58257036
    #   row 6: kd = 0.16 * 0.1187091 = 0.01899346  rep = 0.4 * 0.8812909 = 0.35251636
    #   row 2: kd = 0.16 * 0.2780719 = 0.04449150  rep = 0.4 * 0.7219281 = 0.28877124
    close(small.kd_weight, [0.0, 0.00697186], tol=1e-5)
    close(small.rep_weight, [0.6, 0.58257036], tol=1e-5)
    close(large.kd_weight, [0.01899346, 0.04449150], tol=1e-5)
    close(large.rep_weight, [0.35251636, 0.28877124], tol=1e-5)
    total_kd = sum(r.kd_weight.sum().item() for r in plan.values())
    assert total_kd == pytest.approx(0.07045682, abs=1e-5)


@pytest.mark.parametrize("mode", ["hard", "soft", "soft-instance", "average"])
def test_total_kd_mass(mode):
    # objective none: every adoption mode conserves the batch's KD mass, times its alphas
    # (hard/average: kd_kl_alpha * (alpha_small + alpha_large) = 0.8 * (0.25 + 0.75) = 0.8;
    #  soft/soft-instance: kd_kl_alpha * (u + 1 - u) = 0.8)
    args = kd_args(
        selection_strategy="margin",
        selection_ratio=0.75,
        uncertainty_mode=mode,
        small_teacher_alpha=0.25,
        large_teacher_alpha=0.75,
        kd_kl_alpha=0.8,
        kd_rep_alpha=0.5,
    )
    plan = plan_distillation(build_strategies(args), student_signal(BATCH8, regression=False))
    assert sum(r.kd_weight.sum().item() for r in plan) == pytest.approx(0.8, abs=1e-6)
    assert {r.teacher for r in plan} == {"small", "large"}
    # k = floor(0.75 * 8) = 6 selected rows; the 2 most confident (rows 7, 1) never get a query
    queried = set().union(*(set(rows_of(r)) for r in plan))
    assert queried == {0, 2, 3, 4, 5, 6}


def test_plain_kd_single_teacher():
    plan = plan_distillation(build_strategies(kd_args(kd_kl_alpha=0.5)), student_signal(BATCH8, regression=False))
    (route,) = plan
    assert route.teacher == "teacher"
    assert rows_of(route) == list(range(8))
    close(route.kd_weight, [0.5 / 8] * 8)
    close(route.rep_weight, [0.0] * 8)


def test_epoch_scope_skips_batch_selection():
    args = kd_args(selection_strategy="entropy", selection_ratio=0.25)
    (route,) = plan_distillation(build_strategies(args, batch_scope=False), student_signal(BATCH8, regression=False))
    assert rows_of(route) == list(range(8))
    (route,) = plan_distillation(build_strategies(args), student_signal(BATCH8, regression=False))
    assert rows_of(route) == [0, 4]
    close(route.kd_weight, [0.5, 0.5])


def test_selection_alias_through_build():
    args = kd_args(selection_strategy="least_confidence", selection_ratio=0.25)
    (route,) = plan_distillation(build_strategies(args), student_signal(THREE, regression=False))
    assert rows_of(route) == [1]


def test_regression_random_average():
    args = kd_args(
        selection_strategy="random",
        selection_ratio=0.5,
        uncertainty_mode="average",
        small_teacher_alpha=0.5,
        large_teacher_alpha=0.5,
    )
    logits = torch.randn(6, 1)
    plan1 = plan_distillation(build_strategies(args), student_signal(logits, True, torch.Generator().manual_seed(5)))
    plan2 = plan_distillation(build_strategies(args), student_signal(logits, True, torch.Generator().manual_seed(5)))
    assert [rows_of(r) for r in plan1] == [rows_of(r) for r in plan2]
    plan = by_teacher(plan1)
    assert rows_of(plan["small"]) == rows_of(plan["large"])
    assert len(rows_of(plan["small"])) == 3
    close(plan["small"].kd_weight, [0.5 / 3] * 3)


def test_single_small_through_build():
    args = kd_args(uncertainty_mode="single-small")
    (route,) = plan_distillation(build_strategies(args), student_signal(BATCH8, regression=False))
    assert route.teacher == "small"
    close(route.kd_weight, [1 / 8] * 8)


def test_single_row_batch_drops_empty_route():
    args = kd_args(
        selection_strategy="entropy",
        selection_ratio=0.5,
        uncertainty_mode="hard",
        small_teacher_alpha=0.5,
        large_teacher_alpha=0.5,
    )
    plan = plan_distillation(build_strategies(args), student_signal(binary(0.7), regression=False))
    assert [r.teacher for r in plan] == ["small"]
    close(plan[0].kd_weight, [1.0])  # 0.5 + 0.5: the one row carries the whole KD weight


def test_selection_of_one_row_then_hard_keeps_the_kd_weight():
    # r = 0.125 of 8 rows: k = 1, the most uncertain row 0 (u = 1.0), weight 1; hard sends it to
    # the small teacher with 0.25 + 0.75 = 1.0. Objective uncertainty: kd = 1.0 * 0.8 * (1 - 1.0) = 0,
    # rep = 1 * 2.0 * 1.0 = 2.0.
    args = kd_args(
        selection_strategy="entropy",
        selection_ratio=0.125,
        uncertainty_mode="hard",
        small_teacher_alpha=0.25,
        large_teacher_alpha=0.75,
        kd_kl_alpha=0.8,
    )
    (route,) = plan_distillation(build_strategies(args), student_signal(BATCH8, regression=False))
    assert (route.teacher, rows_of(route)) == ("small", [0])
    close(route.kd_weight, [0.8])
    args = kd_args(
        selection_strategy="entropy",
        selection_ratio=0.125,
        uncertainty_mode="hard",
        small_teacher_alpha=0.25,
        large_teacher_alpha=0.75,
        kd_kl_alpha=0.8,
        strategy="uncertainty",
        kd_rep_alpha=2.0,
    )
    (route,) = plan_distillation(build_strategies(args), student_signal(BATCH8, regression=False))
    close(route.kd_weight, [0.0])
    close(route.rep_weight, [2.0])


# ---------------------------------------------------------------------------------------------
# The global batch: one plan over every rank's and micro-batch's rows, cut into local shares


def test_split_plan_renumbers_rows_per_part():
    plan = [
        Route("small", torch.tensor([4, 0, 2]), torch.tensor([0.1, 0.2, 0.3]), torch.tensor([1.0, 2.0, 3.0])),
        Route("large", torch.tensor([5, 1]), torch.tensor([0.4, 0.5]), torch.tensor([4.0, 5.0])),
    ]
    # parts of 2, 3 and 1 rows: [0, 1], [2, 3, 4], [5]
    first, second, third = split_plan(plan, [2, 3, 1])
    assert [(r.teacher, rows_of(r)) for r in first] == [("small", [0]), ("large", [1])]
    close(first[0].kd_weight, [0.2])
    close(first[1].rep_weight, [5.0])
    assert [(r.teacher, rows_of(r)) for r in second] == [("small", [2, 0])]  # rows 4, 2 -> 2, 0
    close(second[0].kd_weight, [0.1, 0.3])
    close(second[0].rep_weight, [1.0, 3.0])
    assert [(r.teacher, rows_of(r)) for r in third] == [("large", [0])]
    close(third[0].kd_weight, [0.4])


def test_split_plan_of_one_part_is_the_plan():
    plan = [Route("teacher", torch.tensor([1, 0]), torch.tensor([0.5, 0.5]), torch.zeros(2))]
    assert split_plan(plan, [2]) == [plan]


@pytest.mark.parametrize("mode", [None, "hard", "soft", "soft-instance"])
def test_global_plan_differs_from_per_part_plans_and_its_shares_add_up(mode):
    # Two "ranks" of 4 rows each (BATCH8 = rows 0-3 | rows 4-7), entropy r = 0.25.
    args = kd_args(
        selection_strategy="entropy",
        selection_ratio=0.25,
        uncertainty_mode=mode,
        small_teacher_alpha=0.5,
        large_teacher_alpha=0.5,
        strategy="uncertainty",
        kd_rep_alpha=1.0,
    )
    if mode is None:
        args.strategy, args.kd_rep_alpha = "none", 0.0
    strategies = build_strategies(args)
    whole = plan_distillation(strategies, student_signal(BATCH8, regression=False))
    # The global batch keeps k = floor(0.25 * 8) = 2 rows: u = 1.0 (row 0) and 0.971 (row 4);
    # planning each half alone keeps k = 1 per half: rows 0 and 4 too, but `hard` then sends both
    # to the small teacher and `soft` averages u over 1 row instead of 2.
    assert set().union(*(set(rows_of(r)) for r in whole)) == {0, 4}
    parts = split_plan(whole, [4, 4])
    for name in ("kd_weight", "rep_weight"):
        whole_total = sum(getattr(r, name).sum().item() for r in whole)
        parts_total = sum(getattr(r, name).sum().item() for part in parts for r in part)
        assert parts_total == pytest.approx(whole_total, abs=1e-7)
    # Re-assembled with the offsets, the parts are exactly the global plan.
    reassembled = {
        (r.teacher, int(row) + offset, round(float(w), 7))
        for part, offset in zip(parts, (0, 4))
        for r in part
        for row, w in zip(r.rows, r.kd_weight)
    }
    assert reassembled == {
        (r.teacher, int(row), round(float(w), 7)) for r in whole for row, w in zip(r.rows, r.kd_weight)
    }
    if mode == "hard":
        assert {r.teacher: rows_of(r) for r in whole} == {"small": [0], "large": [4]}
        per_half = [plan_distillation(strategies, student_signal(BATCH8[i : i + 4], regression=False)) for i in (0, 4)]
        assert [[r.teacher for r in plan] for plan in per_half] == [["small"], ["small"]]


def test_reads_student():
    assert not reads_student(build_strategies(kd_args()))
    assert not reads_student(
        build_strategies(kd_args(selection_strategy="random", selection_ratio=0.5, uncertainty_mode="average"))
    )
    assert reads_student(build_strategies(kd_args(selection_strategy="entropy", selection_ratio=0.5)))
    assert not reads_student(
        build_strategies(kd_args(selection_strategy="entropy", selection_ratio=0.5), batch_scope=False)
    )
    assert reads_student(build_strategies(kd_args(uncertainty_mode="soft")))
    assert reads_student(build_strategies(kd_args(strategy="uncertainty", kd_rep_alpha=1.0)))
    assert not reads_student(build_strategies(kd_args(strategy="none", kd_rep_alpha=1.0)))


@pytest.mark.parametrize("mode", [None, "hard", "soft", "soft-instance", "average"])
@pytest.mark.parametrize("objective", ["none", "uncertainty", "uncertainty-r"])
def test_weights_never_require_grad(mode, objective):
    args = kd_args(
        selection_strategy="entropy", selection_ratio=0.5, uncertainty_mode=mode, strategy=objective, kd_rep_alpha=1.0
    )
    logits = BATCH8.clone().requires_grad_(True)
    signals = [student_signal(logits, regression=False), StudentSignal(logits, normalized_entropy(logits))]
    for signal in signals:
        plan = plan_distillation(build_strategies(args), signal)
        assert plan
        for route in plan:
            assert not route.kd_weight.requires_grad
            assert not route.rep_weight.requires_grad
            assert route.kd_weight.dtype == torch.float32


def test_plan_statistics_by_hand():
    """Hard adoption of 3 of 4 rows: the small teacher gets the 2 most uncertain, the large 1; each half
    carries alpha 0.5 of the route's total KD weight 1."""
    plan = HardAdoption(0.5, 0.5).refine(
        DataSelection("entropy", 0.75).refine(initial_plan(4), signal_with(U4)), signal_with(U4)
    )
    stats = {key: value.item() for key, value in plan_statistics(plan, 4, ("small", "large"), True).items()}
    assert stats == pytest.approx(
        {
            "selected_fraction": 0.75,
            "kd_weight": 1.0,
            "rep_weight": 0.0,
            "small_teacher_weight": 0.5,
            "small_teacher_fraction": 0.5,
            "large_teacher_weight": 0.5,
            "large_teacher_fraction": 0.25,
        }
    )
    assert set(plan_statistics(plan, 4, ("teacher",), False)) == {"selected_fraction"}
