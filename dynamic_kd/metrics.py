"""GLUE metrics with scikit-learn and SciPy: each task names one family (`Task.metric`); `primary_metric`
names the score that picks checkpoints."""

from collections.abc import Callable
from functools import cache

import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import f1_score, matthews_corrcoef

from dynamic_kd.data import Task, get_task
from dynamic_kd.errors import ConfigError


def _class_ids(predictions) -> np.ndarray:
    """Logits [N, C] or ids [N] -> ids [N]."""
    predictions = np.asarray(predictions)
    return predictions.argmax(axis=-1) if predictions.ndim == 2 else predictions.astype(np.int64)


def _accuracy(predictions, labels) -> dict[str, float]:
    return {"accuracy": float((_class_ids(predictions) == labels).mean())}


def _f1_accuracy(predictions, labels) -> dict[str, float]:
    # class 1 (equivalent / duplicate) is positive, as in the GLUE scorer
    f1 = f1_score(labels, _class_ids(predictions), pos_label=1, average="binary", zero_division=0)
    return {**_accuracy(predictions, labels), "f1": float(f1)}


def _accuracy_macro_f1(predictions, labels) -> dict[str, float]:
    # a custom task's labels are often skewed: macro-F1 shows a neglected class that accuracy hides
    f1 = f1_score(labels, _class_ids(predictions), average="macro", zero_division=0)
    return {**_accuracy(predictions, labels), "macro_f1": float(f1)}


def _matthews(predictions, labels) -> dict[str, float]:
    return {"matthews_correlation": float(matthews_corrcoef(labels, _class_ids(predictions)))}


def _pearson_spearman(predictions, labels) -> dict[str, float]:
    scores = np.asarray(predictions, dtype=np.float64)
    if scores.ndim == 2 and scores.shape[1] == 1:
        scores = scores[:, 0]
    if scores.ndim != 1:
        raise ValueError(f"regression predictions must have shape [N] or [N, 1], got {scores.shape}")
    labels = np.asarray(labels, dtype=np.float64).reshape(-1)
    return {"pearson": float(pearsonr(scores, labels)[0]), "spearmanr": float(spearmanr(scores, labels)[0])}


# family -> (scores of predictions and labels, the primary score's name)
METRICS: dict[str, tuple[Callable, str]] = {
    "accuracy": (_accuracy, "accuracy"),
    "f1_accuracy": (_f1_accuracy, "f1"),
    "accuracy_macro_f1": (_accuracy_macro_f1, "macro_f1"),
    "matthews": (_matthews, "matthews_correlation"),
    "pearson_spearman": (_pearson_spearman, "pearson"),
}


def metric_names(task) -> tuple[str, ...]:
    """`task`'s score names, read off a two-row example so they cannot drift."""
    task = get_task(task)
    labels = np.array([0.0, 1.0]) if task.is_regression else np.array([0, 1])
    return tuple(compute_task_metrics(task, labels if task.is_regression else np.eye(2), labels))


def compute_task_metrics(task: Task, predictions: np.ndarray, label_ids: np.ndarray) -> dict[str, float]:
    """Scores of `predictions`: logits [N, C], class ids [N], or regression [N] / [N, 1]."""
    task, labels = get_task(task), np.asarray(label_ids)
    if len(predictions) != len(labels):
        raise ValueError(f"{len(predictions)} predictions for {len(labels)} labels")
    return METRICS[task.metric][0](predictions, labels)


def metrics_fn(task: Task) -> Callable:
    """A `compute_metrics` callable for `transformers.Trainer`."""
    task = get_task(task)

    def compute(eval_prediction) -> dict[str, float]:
        predictions = eval_prediction.predictions  # a tuple, logits first, when hidden states come too
        predictions = predictions[0] if isinstance(predictions, tuple) else predictions
        return compute_task_metrics(task, predictions, eval_prediction.label_ids)

    return compute


def primary_metric(task: Task) -> str:
    return METRICS[get_task(task).metric][1]


@cache
def _family_primaries() -> dict:
    ids = np.array([0, 1, 1])
    return {frozenset(score(ids.astype(float), ids)): primary for score, primary in METRICS.values()}


def primary_of(task: str, names) -> str | None:
    """`primary_metric` of the task or, for a task unknown here, of the family whose scores are `names`."""
    try:
        return primary_metric(task)
    except ConfigError:
        return _family_primaries().get(frozenset(names))
