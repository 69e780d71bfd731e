"""The shared argument set: parsing, aliases, and one-line ConfigErrors for every bad input."""
import os

import pytest
from transformers import HfArgumentParser, TrainingArguments

from dynamic_kd.arguments import DataArguments, DistillationArguments, ModelArguments, RunArguments, parse_args
from dynamic_kd.errors import ConfigError

TEACHER_MODES = ["hard", "soft", "soft-instance", "single-small", "single-large", "average"]
SELECTIONS = ["none", "random", "entropy", "margin", "lc"]
OBJECTIVES = ["none", "uncertainty", "uncertainty-r"]


@pytest.fixture
def parse(tmp_path):
    """parse(*extra, task="sst2", teacher=True, defaults=None) -> (data, model, kd, run)."""
    def run(*extra, task="sst2", teacher=True, defaults=None):
        argv = ["--task_name", task, "--model_name_or_path", "bert-base-uncased",
                "--output_dir", str(tmp_path / "out"), "--report_to", "none"]
        if teacher:
            argv += ["--teacher", str(tmp_path / "teacher")]
        return parse_args(argv + list(extra), DataArguments, ModelArguments, DistillationArguments, defaults=defaults)
    return run


@pytest.fixture
def fails(parse, capsys):
    """fails(*extra, **kw) -> the one-line ConfigError message; nothing printed (no usage dump)."""
    def run(*extra, **kwargs):
        with pytest.raises(ConfigError) as info:
            parse(*extra, **kwargs)
        message = str(info.value)
        assert message.strip()
        assert "\n" not in message, message
        captured = capsys.readouterr()
        assert "usage:" not in captured.err and "usage:" not in captured.out
        return message
    return run


def test_valid_argv(parse, tmp_path):
    parsed = parse()
    assert len(parsed) == 4
    data, model, kd, run = parsed
    assert isinstance(data, DataArguments) and isinstance(model, ModelArguments)
    assert isinstance(kd, DistillationArguments)
    assert isinstance(run, RunArguments) and isinstance(run, TrainingArguments)
    assert data.task.name == "sst2"
    assert model.model_name_or_path == "bert-base-uncased"
    assert run.output_dir == str(tmp_path / "out")
    assert kd.teachers == {"teacher": str(tmp_path / "teacher")}
    assert kd.uncertainty_mode is None
    assert (kd.selection_strategy, kd.selection_ratio, kd.strategy, kd.kd_loss) == ("none", 1.0, "none", "auto")
    assert (kd.kd_alpha, kd.rep_alpha) == (1.0, 0.0)
    assert run.train_sampling_strategy == "random"


def test_alpha_aliases(parse):
    kd = parse("--kd_kl_alpha", "0.3", "--kd_rep_alpha", "0.7")[2]
    assert kd.kd_alpha == pytest.approx(0.3)
    assert kd.rep_alpha == pytest.approx(0.7)
    kd = parse("--kd_alpha", "0.4", "--rep_alpha", "0.2")[2]
    assert (kd.kd_alpha, kd.rep_alpha) == (pytest.approx(0.4), pytest.approx(0.2))


@pytest.mark.parametrize("name", ["lc", "least_confidence", "confidence"])
def test_selection_aliases_normalise(parse, name):
    kd = parse("--selection_strategy", name, "--selection_ratio", "0.5")[2]
    assert kd.selection_strategy == "lc"
    assert kd.selection_ratio == 0.5


def test_dynamic_run_with_both_teachers(parse):
    kd = parse("--uncertainty_mode", "soft", "--small_teacher", "s", "--large_teacher", "l",
               "--strategy", "uncertainty", "--kd_rep_alpha", "1", teacher=False)[2]
    assert kd.teachers == {"small": "s", "large": "l"}
    kd = parse("--uncertainty_mode", "single-large", "--large_teacher", "l", teacher=False)[2]
    assert kd.teachers == {"large": "l"}


def test_unknown_task(fails):
    message = fails(task="sst9")
    assert "sst9" in message
    for name in ("cola", "sst2", "mrpc", "qqp", "stsb", "mnli", "qnli", "rte", "wnli", "sst5", "imdb", "boolq"):
        assert name in message


@pytest.mark.parametrize("ratio", ["0", "1.5", "-0.2"])
def test_ratio_out_of_range(fails, ratio):
    message = fails("--selection_strategy", "entropy", "--selection_ratio", ratio)
    assert "--selection_ratio" in message
    assert str(float(ratio)) in message
    assert "(0, 1]" in message


def test_ratio_not_a_number(fails):
    message = fails("--selection_strategy", "entropy", "--selection_ratio", "half")
    assert "--selection_ratio" in message and "half" in message


@pytest.mark.parametrize("flag, valid, extra", [
    ("--selection_strategy", SELECTIONS, ()),
    ("--uncertainty_mode", TEACHER_MODES, ()),
    ("--strategy", OBJECTIVES, ("--kd_rep_alpha", "1")),
    ("--kd_loss", ["kl", "mse", "auto"], ()),
    ("--rep_layers", ["all", "cls"], ()),
    ("--teacher_cache", ["none", "memory", "disk"], ()),
    ("--teacher_dtype", ["auto", "float32", "bfloat16", "float16"], ()),
    ("--selection_scope", ["batch", "epoch"], ()),
    ("--student_layer_init", ["first", "skip"], ()),
])
def test_unknown_choice(fails, flag, valid, extra):
    message = fails(flag, "bogus", *extra)
    assert flag in message
    assert "'bogus'" in message
    for name in valid:
        assert name in message


def test_ratio_without_selection_strategy(fails):
    message = fails("--selection_ratio", "0.5")
    assert "--selection_ratio" in message
    assert "--selection_strategy" in message
    assert "entropy" in message


def test_missing_teacher(fails):
    message = fails(teacher=False)
    assert "--teacher" in message


def test_teacher_with_uncertainty_mode(fails):
    message = fails("--uncertainty_mode", "hard", "--small_teacher", "s", "--large_teacher", "l")
    assert "--teacher" in message
    assert "--small_teacher" in message and "--large_teacher" in message


def test_hard_mode_needs_both_teachers(fails):
    message = fails("--uncertainty_mode", "hard", "--small_teacher", "s", teacher=False)
    assert "hard" in message
    assert "--large_teacher" in message


def test_small_teacher_without_mode(fails):
    message = fails("--small_teacher", "s", "--large_teacher", "l", teacher=False)
    assert "--uncertainty_mode" in message


def test_unknown_flag(fails):
    message = fails("--bogus_flag", "1")
    assert "--bogus_flag" in message


def test_missing_required_flag(tmp_path, capsys):
    with pytest.raises(ConfigError) as info:
        parse_args(["--model_name_or_path", "m", "--teacher", "t", "--output_dir", str(tmp_path)],
                   DataArguments, ModelArguments, DistillationArguments)
    assert "--task_name" in str(info.value)
    assert "\n" not in str(info.value)
    assert "usage:" not in capsys.readouterr().err


@pytest.mark.parametrize("objective", ["uncertainty", "uncertainty-r"])
def test_objective_needs_rep_alpha(fails, parse, objective):
    message = fails("--strategy", objective)
    assert objective in message
    assert "--kd_rep_alpha" in message
    assert parse("--strategy", objective, "--kd_rep_alpha", "0.5")[2].strategy == objective


@pytest.mark.parametrize("extra, flag", [
    (("--selection_strategy", "entropy", "--selection_ratio", "0.5"), "--selection_strategy"),
    (("--selection_strategy", "margin", "--selection_ratio", "0.5"), "--selection_strategy"),
    (("--selection_strategy", "least_confidence", "--selection_ratio", "0.5"), "--selection_strategy"),
    (("--strategy", "uncertainty", "--kd_rep_alpha", "1"), "--strategy"),
])
def test_uncertainty_on_regression(fails, extra, flag):
    message = fails(*extra, task="stsb")
    assert "stsb" in message and "regression" in message
    assert flag in message


@pytest.mark.parametrize("mode", ["hard", "soft", "soft-instance"])
def test_uncertainty_mode_on_regression(fails, mode):
    message = fails("--uncertainty_mode", mode, "--small_teacher", "s", "--large_teacher", "l", task="stsb", teacher=False)
    assert "stsb" in message and "--uncertainty_mode" in message


def test_kl_on_regression(fails, parse):
    message = fails("--kd_loss", "kl", task="stsb")
    assert "stsb" in message and "mse" in message
    # what the message suggests works, as do the strategies that need no class probabilities
    assert parse("--kd_loss", "mse", task="stsb")[2].kd_loss == "mse"
    kd = parse("--selection_strategy", "random", "--selection_ratio", "0.5", "--uncertainty_mode", "average",
               "--small_teacher", "s", "--large_teacher", "l", task="stsb", teacher=False)[2]
    assert kd.uncertainty_mode == "average"


def test_group_by_length(parse, fails):
    run = parse("--group_by_length")[3]
    assert run.group_by_length is True
    assert run.train_sampling_strategy == "group_by_length"
    message = fails("--group_by_length", "--train_sampling_strategy", "sequential")
    assert "sequential" in message


def test_defaults_change_uncertainty_mode(parse, fails):
    kd = parse("--small_teacher", "s", "--large_teacher", "l", teacher=False, defaults={"uncertainty_mode": "hard"})[2]
    assert kd.uncertainty_mode == "hard"
    assert kd.teachers == {"small": "s", "large": "l"}
    kd = parse("--small_teacher", "s", "--large_teacher", "l", "--uncertainty_mode", "soft",
               teacher=False, defaults={"uncertainty_mode": "hard"})[2]
    assert kd.uncertainty_mode == "soft"
    # without the default the same argv has no adoption mode
    fails("--small_teacher", "s", "--large_teacher", "l", teacher=False)


def test_help_lists_strategies(monkeypatch):
    monkeypatch.setenv("COLUMNS", "1000")  # argparse wraps help at hyphens on a narrow terminal
    text = HfArgumentParser((DataArguments, ModelArguments, DistillationArguments, RunArguments)).format_help()
    for name in TEACHER_MODES + SELECTIONS + OBJECTIVES:
        assert name in text, name
    for flag in ("--kd_kl_alpha", "--kd_rep_alpha", "--selection_ratio", "--uncertainty_mode", "--group_by_length"):
        assert flag in text, flag


def test_pin_memory_only_with_an_accelerator(parse):
    assert parse()[3].dataloader_pin_memory is False  # this suite runs on CPU
    assert parse("--dataloader_pin_memory")[3].dataloader_pin_memory is True  # asked for: kept
    assert parse("--dataloader_pin_memory", "false")[3].dataloader_pin_memory is False


def test_teacher_store_defaults_under_the_cache_root(parse, monkeypatch, tmp_path):
    monkeypatch.setenv("DYNAMIC_KD_CACHE", str(tmp_path / "root"))
    kd = parse()[2]
    assert (kd.teacher_cache, kd.teacher_cache_dir) == ("memory", str(tmp_path / "root" / "teacher_outputs"))
    assert parse("--teacher_cache_dir", "~/stores")[2].teacher_cache_dir == os.path.expanduser("~/stores")
