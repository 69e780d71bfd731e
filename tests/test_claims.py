"""Tests for dynamic_kd.claims: paired claims of a seeded sweep (the miniature)."""

import pandas as pd
import pytest

from dynamic_kd import claims
from dynamic_kd.errors import ConfigError


def seeded(scores: dict) -> pd.DataFrame:
    """Rows as `claims.seeded_rows` gives them: {row: [score of seed 1, 2, 3]} (points)."""
    return pd.DataFrame(
        [
            {"row": row, "seed": str(seed), "score": score, "seconds": 10.0, "forwards": 100}
            for row, values in scores.items()
            for seed, score in enumerate(values, 1)
        ]
    )


def test_claims_are_paired_by_seed_with_a_t_interval():
    rows = seeded({"kd": [80, 82, 84], "alone": [78, 79, 81], "worse": [70, 71, 72], "noisy": [90, 70, 83]})
    stated = [
        ("KD", "kd beats alone", "kd", "alone"),
        ("KD", "worse beats alone", "worse", "alone"),
        ("KD", "noisy beats alone", "noisy", "alone"),
        ("KD", "missing row is left out", "absent", "alone"),
    ]
    table = claims.claims_table(rows, stated).set_index("claim")
    # kd - alone = [2, 3, 3]: mean 2.667, sd 0.577, half width t(0.975, 2) = 4.303 x 0.577 / sqrt(3) = 1.434
    assert table.loc["kd beats alone", "difference (points)"] == "+2.7"
    assert table.loc["kd beats alone", "95% interval"] == "[+1.2, +4.1]"
    assert table.loc["kd beats alone", "verdict"] == "holds"
    assert table.loc["worse beats alone", "verdict"] == "contradicted"  # [-8, -8, -9]
    assert table.loc["noisy beats alone", "verdict"] == "within noise"  # [12, -9, 2]
    assert "missing row is left out" not in table.index and set(table.seeds) == {3}


def test_a_margin_makes_the_claim_non_inferiority():
    # r - base = [-0.5, -0.4, -0.6]: interval [-0.75, -0.25], below 0 but above -1
    rows = seeded({"r": [79.5, 80.6, 81.4], "base": [80, 81, 82], "far": [77, 78, 79]})
    stated = [
        ("3.2", "r beats base", "r", "base"),
        ("3.2", "r within 1", "r", "base", 1.0),
        ("3.2", "far within 1", "far", "base", 1.0),
    ]
    verdicts = claims.claims_table(rows, stated).set_index("claim").verdict
    assert verdicts.to_dict() == {"r beats base": "contradicted", "r within 1": "holds", "far within 1": "contradicted"}


def test_claims_pair_only_the_seeds_both_rows_ran():
    rows = seeded({"kd": [80, 82, 84], "alone": [78, 79]})
    table = claims.claims_table(rows, [("KD", "kd beats alone", "kd", "alone")])
    assert table.seeds.tolist() == [2] and table["difference (points)"].tolist() == ["+2.5"]


def test_rows_table_keeps_the_grid_order_and_the_spread():
    rows = seeded({"b": [80, 82, 84], "a": [70, 70, 70], "once": [75]})
    table = claims.rows_table(rows, ["a", "b", "once", "not run"])
    assert table.run.tolist() == ["a", "b", "once"]
    # one seed: no spread to show
    assert table["dev accuracy"].tolist() == ["70.0 ± 0.0 (n=3)", "82.0 ± 2.0 (n=3)", "75.0 (n=1)"]


def test_claims_of_rows_that_did_not_run_are_an_empty_table_with_its_columns():
    # a sweep with other rows (e.g. benchmarks/foreign_teacher.py's) must still print its rows under --claims
    table = claims.claims_table(seeded({"a": [80, 81]}), [("KD", "b beats a", "b", "a")])
    assert table.empty and table.columns.tolist()[:2] == ["§", "claim"]


def test_the_claims_are_stated_in_accuracy():
    runs = pd.DataFrame(
        {
            "run_dir": ["/r/kd/seed1"],
            "seed": [1],
            "task": ["stsb"],
            "train_runtime_s": [1.0],
            "teacher_forward_examples": [0],
            "metrics": [{"pearson": 0.8, "spearmanr": 0.7}],
        }
    )
    with pytest.raises(ConfigError, match="stated in accuracy, which task stsb does not report"):
        claims.seeded_rows(runs)
