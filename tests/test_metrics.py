"""Metrics against numbers worked out by hand from tiny confusion matrices and score lists."""

import math

import numpy as np
import pytest
from transformers import EvalPrediction

from dynamic_kd.data import TASKS, Task, get_task
from dynamic_kd.metrics import compute_task_metrics, metrics_fn, primary_metric


def one_hot_logits(ids, num_classes):
    """Logits whose argmax is `ids` (values vary so argmax, not equality, decides)."""
    logits = np.zeros((len(ids), num_classes), dtype=np.float32)
    logits[np.arange(len(ids)), ids] = 2.5
    return logits


def test_accuracy_from_logits():
    # 3 of 4 argmaxes match the gold labels -> 0.75.
    logits = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    labels = np.array([1, 0, 0, 0])
    assert compute_task_metrics(get_task("sst2"), logits, labels) == {"accuracy": 0.75}


def test_accuracy_three_classes_and_class_id_input():
    # MNLI: 2 of 3 correct -> 2/3, whether given logits or already-argmaxed ids.
    labels = np.array([0, 1, 2])
    ids = np.array([0, 1, 1])
    expected = {"accuracy": pytest.approx(2 / 3)}
    assert compute_task_metrics(get_task("mnli"), one_hot_logits(ids, 3), labels) == expected
    assert compute_task_metrics(get_task("mnli"), ids, labels) == expected


def test_f1_and_accuracy_for_mrpc():
    # preds 1 1 0 0 1 vs gold 1 0 0 1 1: TP=2 FP=1 FN=1 TN=1.
    # precision = 2/3, recall = 2/3 -> F1 = 2/3; accuracy = (2+1)/5 = 0.6.
    preds, labels = np.array([1, 1, 0, 0, 1]), np.array([1, 0, 0, 1, 1])
    result = compute_task_metrics(get_task("mrpc"), one_hot_logits(preds, 2), labels)
    assert set(result) == {"accuracy", "f1"}
    assert result["f1"] == pytest.approx(2 / 3)
    assert result["accuracy"] == pytest.approx(0.6)


def test_f1_uses_class_one_as_positive_for_qqp():
    # preds 1 1 1 0 vs gold 1 0 0 0: TP=1 FP=2 FN=0 -> P=1/3, R=1 -> F1 = 2*(1/3)/(4/3) = 0.5.
    preds, labels = np.array([1, 1, 1, 0]), np.array([1, 0, 0, 0])
    result = compute_task_metrics(get_task("qqp"), one_hot_logits(preds, 2), labels)
    assert result["f1"] == pytest.approx(0.5)
    assert result["accuracy"] == pytest.approx(0.5)


def test_matthews_for_cola():
    # TP=3 TN=2 FP=1 FN=1: MCC = (3*2 - 1*1) / sqrt((3+1)(3+1)(2+1)(2+1)) = 5/12.
    preds = np.array([1, 1, 1, 1, 0, 0, 0])
    labels = np.array([1, 1, 1, 0, 0, 0, 1])
    result = compute_task_metrics(get_task("cola"), one_hot_logits(preds, 2), labels)
    assert set(result) == {"matthews_correlation"}
    assert result["matthews_correlation"] == pytest.approx(5 / 12)


def test_pearson_for_stsb():
    # x = 1 2 3 4, y = 2 4 5 9: deviations (-1.5 -.5 .5 1.5) and (-3 -1 0 4);
    # sum(dx*dy) = 11, sum(dx^2) = 5, sum(dy^2) = 26 -> r = 11 / sqrt(130). Ranks agree -> rho = 1.
    preds, labels = np.array([1.0, 2.0, 3.0, 4.0]), np.array([2.0, 4.0, 5.0, 9.0])
    result = compute_task_metrics(get_task("stsb"), preds, labels)
    assert set(result) == {"pearson", "spearmanr"}
    assert result["pearson"] == pytest.approx(11 / math.sqrt(130))
    assert result["spearmanr"] == pytest.approx(1.0)


def test_spearman_for_stsb():
    # Ranks 1 2 3 4 vs 1 3 2 4: d = 0 -1 1 0, sum d^2 = 2 -> rho = 1 - 6*2 / (4*(16-1)) = 0.8.
    preds, labels = np.array([0.1, 0.2, 0.3, 0.4]), np.array([1.0, 3.0, 2.0, 4.0])
    assert compute_task_metrics(get_task("stsb"), preds, labels)["spearmanr"] == pytest.approx(0.8)


def test_regression_accepts_n_and_n_by_1():
    preds, labels = np.array([1.0, 2.0, 3.0, 4.0]), np.array([2.0, 4.0, 5.0, 9.0])
    flat = compute_task_metrics(get_task("stsb"), preds, labels)
    column = compute_task_metrics(get_task("stsb"), preds[:, None], labels[:, None])
    assert flat == column


def test_regression_rejects_wide_predictions():
    with pytest.raises(ValueError, match="shape"):
        compute_task_metrics(get_task("stsb"), np.zeros((4, 2)), np.zeros(4))


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match="3 predictions for 4 labels"):
        compute_task_metrics(get_task("sst2"), np.zeros((3, 2)), np.zeros(4, dtype=int))


def test_accuracy_and_macro_f1_of_a_custom_task():
    # gold [0, 0, 1, 2], predicted [0, 1, 1, 1]: accuracy 2/4.
    # class 0: P 1/1, R 1/2 -> F1 2/3; class 1: P 1/3, R 1/1 -> F1 1/2; class 2: no hit -> F1 0.
    # macro-F1 = (2/3 + 1/2 + 0) / 3 = 7/18 (accuracy alone would hide the never-predicted class 2).
    task = Task("custom:x/train.csv+dev.csv", ("sentence",), ("neg", "neu", "pos"), "accuracy_macro_f1", hub_path=None)
    result = compute_task_metrics(task, one_hot_logits([0, 1, 1, 1], 3), np.array([0, 0, 1, 2]))
    assert result == {"accuracy": 0.5, "macro_f1": pytest.approx(7 / 18)}
    assert primary_metric(task) == "macro_f1"


@pytest.mark.parametrize("name", sorted(TASKS))
def test_values_are_plain_floats_with_the_task_keys(name):
    task = get_task(name)
    labels = np.array([0.0, 1.0, 2.0, 3.0]) if task.is_regression else np.array([0, 1, 1, 0])
    preds = np.array([0.5, 1.5, 1.0, 3.5]) if task.is_regression else one_hot_logits([0, 1, 0, 0], task.num_labels)
    result = compute_task_metrics(task, preds, labels)
    assert all(type(value) is float for value in result.values())
    assert primary_metric(task) in result
    expected_keys = {
        "accuracy": {"accuracy"},
        "f1_accuracy": {"accuracy", "f1"},
        "matthews": {"matthews_correlation"},
        "pearson_spearman": {"pearson", "spearmanr"},
    }
    assert set(result) == expected_keys[task.metric]


def test_primary_metric_names():
    assert primary_metric(get_task("sst2")) == "accuracy"
    assert primary_metric(get_task("mnli")) == "accuracy"
    assert primary_metric(get_task("mrpc")) == "f1"
    assert primary_metric(get_task("qqp")) == "f1"
    assert primary_metric(get_task("cola")) == "matthews_correlation"
    assert primary_metric(get_task("stsb")) == "pearson"
    assert primary_metric("boolq") == "accuracy"  # names work as well as Task objects


def test_metrics_fn_takes_eval_prediction_and_tuple_outputs():
    logits = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    labels = np.array([1, 0, 0, 0])
    compute = metrics_fn(get_task("sst2"))
    assert compute(EvalPrediction(predictions=logits, label_ids=labels)) == {"accuracy": 0.75}
    hidden = np.zeros((4, 3, 8))
    assert compute(EvalPrediction(predictions=(logits, hidden), label_ids=labels)) == {"accuracy": 0.75}
