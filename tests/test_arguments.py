"""The shared argument set: parsing, aliases, and one-line ConfigErrors for every bad input."""

import importlib
import json
import os

import pytest
from conftest import FIXTURES, make_tiny_bert
from transformers import HfArgumentParser, TrainingArguments

from dynamic_kd.arguments import DataArguments, DistillationArguments, ModelArguments, RunArguments, parse_args
from dynamic_kd.errors import ConfigError
from dynamic_kd.recipe import cli

TEACHER_MODES = ["hard", "soft", "soft-instance", "single-small", "single-large", "average"]
SELECTIONS = ["none", "random", "entropy", "margin", "lc"]
OBJECTIVES = ["none", "uncertainty", "uncertainty-r"]


@pytest.fixture
def parse(tmp_path):
    """parse(*extra, task="sst2", teacher=True, defaults=None) -> (data, model, kd, run)."""

    def run(*extra, task="sst2", teacher=True, defaults=None):
        argv = [
            "--task_name",
            task,
            "--model_name_or_path",
            "bert-base-uncased",
            "--output_dir",
            str(tmp_path / "out"),
            "--report_to",
            "none",
        ]
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
    assert (kd.kd_kl_alpha, kd.kd_rep_alpha) == (1.0, 0.0)
    assert run.train_sampling_strategy == "random"


def test_each_loss_weight_has_one_spelling(parse, fails):
    kd = parse("--kd_kl_alpha", "0.3", "--kd_rep_alpha", "0.7")[2]
    assert (kd.kd_kl_alpha, kd.kd_rep_alpha) == (pytest.approx(0.3), pytest.approx(0.7))
    for old in ("--kd_alpha", "--rep_alpha"):  # the spellings before the released names
        assert old in fails(old, "0.4")


@pytest.mark.parametrize("name", ["lc", "least_confidence", "confidence"])
def test_selection_aliases_normalise(parse, name):
    kd = parse("--selection_strategy", name, "--selection_ratio", "0.5")[2]
    assert kd.selection_strategy == "lc"
    assert kd.selection_ratio == 0.5


def test_dynamic_run_with_both_teachers(parse):
    kd = parse(
        "--uncertainty_mode",
        "soft",
        "--small_teacher",
        "s",
        "--large_teacher",
        "l",
        "--strategy",
        "uncertainty",
        "--kd_rep_alpha",
        "1",
        teacher=False,
    )[2]
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


@pytest.mark.parametrize(
    "flag, valid, extra",
    [
        ("--selection_strategy", SELECTIONS, ()),
        ("--uncertainty_mode", TEACHER_MODES, ()),
        ("--strategy", OBJECTIVES, ("--kd_rep_alpha", "1")),
        ("--kd_loss", ["kl", "mse", "auto"], ()),
        ("--rep_layers", ["all", "cls"], ()),
        ("--rep_normalization", ["hidden", "sequence"], ()),
        ("--teacher_cache", ["none", "memory", "disk"], ()),
        ("--teacher_dtype", ["auto", "float32", "bfloat16", "float16"], ()),
        ("--selection_scope", ["batch", "epoch"], ()),
        ("--student_layer_init", ["first", "skip"], ()),
    ],
)
def test_unknown_choice(fails, flag, valid, extra):
    message = fails(flag, "bogus", *extra)
    assert flag in message
    assert "'bogus'" in message
    for name in valid:
        assert name in message


def test_sequence_rep_normalization_needs_every_token(fails):
    message = fails("--kd_rep_alpha", "1", "--rep_layers", "cls", "--rep_normalization", "sequence")
    assert "--rep_normalization sequence" in message and "--rep_layers all" in message


@pytest.mark.parametrize(
    "flags, named",
    [
        (("--teacher_dropout",), "--teacher_cache none"),
        (("--teacher_dropout", "--teacher_cache", "disk"), "--teacher_cache none"),
        (("--uncertainty_grad",), "--strategy uncertainty"),
        (
            ("--uncertainty_grad", "--selection_strategy", "entropy", "--selection_ratio", "0.5"),
            "--uncertainty_mode soft",
        ),
        (
            (
                "--uncertainty_grad",
                "--strategy",
                "uncertainty",
                "--kd_rep_alpha",
                "1",
                "--gradient_accumulation_steps",
                "2",
            ),
            "--gradient_accumulation_steps 1",
        ),
        (("--rep_include_padding",), "--kd_rep_alpha > 0"),
        (("--rep_include_padding", "--kd_rep_alpha", "1", "--rep_layers", "cls"), "--rep_layers all"),
    ],
)
def test_released_behaviour_flags_are_refused_where_they_cannot_act(fails, flags, named):
    message = fails(*flags)
    assert flags[0] in message and named in message


def test_released_behaviour_flags_parse_where_they_act(parse):
    kd = parse(
        "--teacher_dropout",
        "--teacher_cache",
        "none",
        "--strategy",
        "uncertainty",
        "--kd_rep_alpha",
        "1",
        "--uncertainty_grad",
        "--rep_include_padding",
    )[2]
    assert kd.teacher_dropout and kd.uncertainty_grad and kd.rep_include_padding


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
        parse_args(
            ["--model_name_or_path", "m", "--teacher", "t", "--output_dir", str(tmp_path)],
            DataArguments,
            ModelArguments,
            DistillationArguments,
        )
    assert "--task_name" in str(info.value)
    assert "\n" not in str(info.value)
    assert "usage:" not in capsys.readouterr().err


@pytest.mark.parametrize("objective", ["uncertainty", "uncertainty-r"])
def test_objective_needs_rep_alpha(fails, parse, objective):
    message = fails("--strategy", objective)
    assert objective in message
    assert "--kd_rep_alpha" in message
    assert parse("--strategy", objective, "--kd_rep_alpha", "0.5")[2].strategy == objective


@pytest.mark.parametrize(
    "extra, flag",
    [
        (("--selection_strategy", "entropy", "--selection_ratio", "0.5"), "--selection_strategy"),
        (("--selection_strategy", "margin", "--selection_ratio", "0.5"), "--selection_strategy"),
        (("--selection_strategy", "least_confidence", "--selection_ratio", "0.5"), "--selection_strategy"),
        (("--strategy", "uncertainty", "--kd_rep_alpha", "1"), "--strategy"),
    ],
)
def test_uncertainty_on_regression(fails, extra, flag):
    message = fails(*extra, task="stsb")
    assert "stsb" in message and "regression" in message
    assert flag in message


@pytest.mark.parametrize("mode", ["hard", "soft", "soft-instance"])
def test_uncertainty_mode_on_regression(fails, mode):
    message = fails(
        "--uncertainty_mode", mode, "--small_teacher", "s", "--large_teacher", "l", task="stsb", teacher=False
    )
    assert "stsb" in message and "--uncertainty_mode" in message


def test_kl_on_regression(fails, parse):
    message = fails("--kd_loss", "kl", task="stsb")
    assert "stsb" in message and "mse" in message
    # what the message suggests works, as do the strategies that need no class probabilities
    assert parse("--kd_loss", "mse", task="stsb")[2].kd_loss == "mse"
    kd = parse(
        "--selection_strategy",
        "random",
        "--selection_ratio",
        "0.5",
        "--uncertainty_mode",
        "average",
        "--small_teacher",
        "s",
        "--large_teacher",
        "l",
        task="stsb",
        teacher=False,
    )[2]
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
    kd = parse(
        "--small_teacher",
        "s",
        "--large_teacher",
        "l",
        "--uncertainty_mode",
        "soft",
        teacher=False,
        defaults={"uncertainty_mode": "hard"},
    )[2]
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


# --- the custom task: the user's own files --------------------------------------------------


@pytest.fixture
def custom_files(tmp_path):
    """A three-class train.csv/dev.csv pair with premise/hypothesis/verdict columns."""
    (tmp_path / "train.csv").write_text("premise,hypothesis,verdict\na,b,yes\nc,d,no\ne,f,maybe\n")
    (tmp_path / "dev.csv").write_text("premise,hypothesis,verdict\na,b,no\n")
    return ["--train_file", str(tmp_path / "train.csv"), "--validation_file", str(tmp_path / "dev.csv")]


def parse_custom(tmp_path, *extra):
    argv = ["--model_name_or_path", "m", "--teacher", "t", "--output_dir", str(tmp_path / "out"), "--report_to", "none"]
    return parse_args(argv + list(extra), DataArguments, ModelArguments, DistillationArguments)


@pytest.mark.parametrize("task_flag", [[], ["--task_name", "custom"], ["--task_name", "CUSTOM"]])
def test_custom_task_without_a_task_name(tmp_path, custom_files, task_flag):
    data = parse_custom(
        tmp_path, *custom_files, *task_flag, "--text_column", "premise, hypothesis", "--label_column", "verdict"
    )[0]
    assert data.task.text_keys == ("premise", "hypothesis") and data.task.label_column == "verdict"
    assert data.task.labels == ("maybe", "no", "yes")
    assert data.task.name == f"custom:{tmp_path.name}/train.csv+dev.csv"


@pytest.mark.parametrize(
    "extra, expected",
    [
        ([], "lacks column 'sentence'"),  # the defaults: --text_column sentence --label_column label
        (["--text_column", "premise,hypothesis,verdict"], "one column or two"),
        (
            ["--text_column", "premise", "--label_column", "verdict", "--data_dir", "d"],
            "--data_dir holds a registry task's GLUE files",
        ),
        (
            ["--text_column", "premise", "--label_column", "verdict", "--is_regression"],
            "label 'yes' is not a finite number",
        ),
    ],
)
def test_custom_task_errors(tmp_path, custom_files, extra, expected):
    with pytest.raises(ConfigError) as info:
        parse_custom(tmp_path, *custom_files, *extra)
    assert expected in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("extra", [["--text_column", "text"], ["--label_column", "gold"], ["--is_regression"]])
def test_custom_flags_are_refused_with_a_registry_task(fails, extra):
    assert f"{extra[0]} is for your own data" in fails(*extra, task="sst2")


def test_no_task_and_no_files(tmp_path):
    with pytest.raises(ConfigError) as info:
        parse_custom(tmp_path)
    assert "pass --task_name" in str(info.value) and "--train_file" in str(info.value)


def test_custom_regression_refuses_uncertainty(tmp_path):
    (tmp_path / "train.csv").write_text("sentence,label\na,0.5\nb,3\n")
    (tmp_path / "dev.csv").write_text("sentence,label\nc,1\n")
    files = [
        "--train_file",
        str(tmp_path / "train.csv"),
        "--validation_file",
        str(tmp_path / "dev.csv"),
        "--is_regression",
    ]
    assert parse_custom(tmp_path, *files)[0].task.is_regression
    with pytest.raises(ConfigError) as info:
        parse_custom(tmp_path, *files, "--selection_strategy", "entropy", "--selection_ratio", "0.5")
    assert "is a regression task" in str(info.value)


@pytest.mark.parametrize(
    "extra, words",
    [
        (("--temperature", "0"), "--temperature must be a positive number"),
        (("--temperature", "nan"), "--temperature must be a positive number, got nan"),
        (("--kd_kl_alpha", "-1"), "--kd_kl_alpha must be a number >= 0"),
        (("--kd_rep_alpha", "-0.5"), "--kd_rep_alpha must be a number >= 0"),
        (("--ce_alpha", "inf"), "--ce_alpha must be a number >= 0, got inf"),
        (("--small_teacher_alpha", "-1"), "--small_teacher_alpha must be a number >= 0"),
        (("--ce_alpha", "0", "--kd_kl_alpha", "0"), "no loss to train on"),
        (("--teacher_batch_size", "0"), "--teacher_batch_size must be at least 1"),
        (("--per_device_train_batch_size", "0"), "--per_device_train_batch_size must be a positive number"),
        (("--per_device_eval_batch_size", "-8"), "--per_device_eval_batch_size must be a positive number"),
        (("--gradient_accumulation_steps", "0"), "--gradient_accumulation_steps must be a positive number"),
        (("--num_train_epochs", "0"), "--num_train_epochs must be a positive number"),
        (("--learning_rate", "0"), "--learning_rate must be a positive number"),
        (("--learning_rate", "nan"), "--learning_rate must be a positive number"),
        (("--max_grad_norm", "-1"), "--max_grad_norm must be a number >= 0"),
        (("--weight_decay", "-0.01"), "--weight_decay must be a number >= 0"),
        (("--adam_beta2", "1"), "--adam_beta2 must be in [0, 1)"),
        (("--label_smoothing_factor", "1"), "--label_smoothing_factor must be in [0, 1)"),
        (("--label_smoothing_factor", "-0.1"), "--label_smoothing_factor must be in [0, 1)"),
        (("--seed", "-1"), "--seed must be a number >= 0"),
        (("--warmup_steps", "nan"), "--warmup_steps must be a number >= 0, got nan"),
        (("--dataloader_num_workers", "-1"), "--dataloader_num_workers must be a number >= 0"),
        (("--eval_accumulation_steps", "0"), "--eval_accumulation_steps must be a positive number"),
        (("--save_strategy", "steps", "--save_steps", "0"), "--save_steps must be a positive number"),
    ],
)
def test_numeric_flags_without_meaningful_value(fails, extra, words):
    message = fails(*extra)
    assert words in message and ";" in message


def test_numeric_flags_at_their_limits_are_accepted(parse):
    kd, run = parse(
        "--ce_alpha",
        "0",
        "--max_grad_norm",
        "0",
        "--weight_decay",
        "0",
        "--seed",
        "0",
        "--num_train_epochs",
        "0",
        "--max_steps",
        "5",
        "--label_smoothing_factor",
        "0.1",
    )[2:]
    assert kd.ce_alpha == 0 and run.max_steps == 5 and run.label_smoothing_factor == 0.1


@pytest.mark.parametrize(
    "extra, words",
    [
        (("--average_tokens_across_devices", "False"), "--average_tokens_across_devices False is not supported"),
        (("--use_liger_kernel",), "--use_liger_kernel is not supported"),
        (("--neftune_noise_alpha", "5"), "--neftune_noise_alpha is not supported"),
        (("--auto_find_batch_size",), "--auto_find_batch_size is not supported"),
        (("--label_names", "target"), "--label_names is not supported"),
        (("--length_column_name", "n_tokens"), "--length_column_name is not supported"),
        (("--dataloader_drop_last",), "--dataloader_drop_last is not supported"),
        (("--bf16_full_eval",), "--bf16_full_eval is not supported"),
        (("--fp16_full_eval",), "--fp16_full_eval is not supported"),
        (("--prediction_loss_only",), "--prediction_loss_only is not supported"),
        (("--batch_eval_metrics",), "--batch_eval_metrics is not supported"),
        (("--eval_do_concat_batches", "False"), "--eval_do_concat_batches False is not supported"),
        (("--restore_callback_states_from_checkpoint",), "--restore_callback_states_from_checkpoint is not supported"),
        (("--accelerator_config", '{"split_batches": true}'), "split_batches is not supported"),
        (("--do_predict",), "--do_predict is not supported"),
        (("--resume_from_checkpoint", "out/checkpoint-4"), "--resume_from_checkpoint is not supported"),
        (("--fsdp", "full_shard"), "--fsdp is not supported"),
        (("--deepspeed", "ds_config.json"), "--deepspeed is not supported"),
    ],
)
def test_training_arguments_the_trainer_does_not_honour_are_refused(fails, extra, words):
    message = fails(*extra)
    assert words in message and ";" in message


def test_label_smoothing_needs_class_labels(fails, parse):
    assert parse("--label_smoothing_factor", "0.1")[3].label_smoothing_factor == 0.1
    message = fails("--label_smoothing_factor", "0.1", task="stsb")
    assert "--label_smoothing_factor" in message and "stsb" in message and "regression" in message
    # train_teacher.py parses no distillation arguments: the check still applies
    with pytest.raises(ConfigError, match="regression"):
        parse_args(
            [
                "--task_name",
                "stsb",
                "--model_name_or_path",
                "m",
                "--output_dir",
                "o",
                "--label_smoothing_factor",
                "0.1",
            ],
            DataArguments,
            ModelArguments,
        )


def test_epoch_scope_needs_a_selection_strategy_and_its_own_sampler(fails, parse):
    assert "--selection_scope epoch needs a --selection_strategy" in fails("--selection_scope", "epoch")
    epoch = ("--selection_scope", "epoch", "--selection_strategy", "entropy", "--selection_ratio", "0.5")
    assert parse(*epoch)[2].selection_scope == "epoch"
    for extra in (("--group_by_length",), ("--train_sampling_strategy", "sequential")):
        message = fails(*epoch, *extra)
        assert "--selection_scope epoch" in message and "--train_sampling_strategy" in message
    # on STS-B the uncertainty strategies are refused whatever the scope
    assert "regression" in fails(*epoch, task="stsb")
    assert (
        parse("--selection_scope", "epoch", "--selection_strategy", "random", "--selection_ratio", "0.5", task="stsb")[
            2
        ].selection_scope
        == "epoch"
    )


def test_pin_memory_only_with_an_accelerator(parse):
    assert parse()[3].dataloader_pin_memory is False  # this suite runs on CPU
    assert parse("--dataloader_pin_memory")[3].dataloader_pin_memory is True  # asked for: kept
    assert parse("--dataloader_pin_memory", "false")[3].dataloader_pin_memory is False


def test_teacher_store_defaults_under_the_cache_root(parse, monkeypatch, tmp_path):
    monkeypatch.setenv("DYNAMIC_KD_CACHE", str(tmp_path / "root"))
    kd = parse()[2]
    assert (kd.teacher_cache, kd.teacher_cache_dir) == ("memory", str(tmp_path / "root" / "teacher_outputs"))
    assert parse("--teacher_cache_dir", "~/stores")[2].teacher_cache_dir == os.path.expanduser("~/stores")


@pytest.mark.parametrize(
    "task, given, expected",
    [
        ("sst2", "accuracy", "validation_accuracy"),
        ("sst2", "eval_accuracy", "validation_accuracy"),
        ("sst2", "eval_validation_accuracy", "validation_accuracy"),
        ("sst2", "loss", "validation_loss"),
        ("mrpc", "f1", "validation_f1"),
        ("cola", "matthews_correlation", "validation_matthews_correlation"),
        ("stsb", "pearson", "validation_pearson"),
        ("mnli", "accuracy", "validation_matched_accuracy"),
    ],
)
def test_best_model_metric_takes_the_names_users_know(parse, task, given, expected):
    """The trainer reports eval_<split>_<metric>; before, `accuracy` ended the run in a KeyError."""
    flags = (
        "--load_best_model_at_end",
        "--metric_for_best_model",
        given,
        "--eval_strategy",
        "epoch",
        "--save_strategy",
        "epoch",
    )
    run = parse(*flags, task=task)[3]
    assert run.metric_for_best_model == expected
    assert run.greater_is_better == (given != "loss")


def test_best_model_metric_must_be_one_the_task_reports(fails):
    message = fails("--metric_for_best_model", "f1")
    assert "--metric_for_best_model f1 is not a sst2 metric; choose one of: loss, accuracy" in message


def test_warmup_ratio_is_the_warmup_fraction(parse, fails):
    assert parse("--warmup_ratio", "0.1")[3].warmup_steps == 0.1
    assert "pass one" in fails("--warmup_ratio", "0.1", "--warmup_steps", "10")
    assert "--warmup_ratio must be in [0, 1)" in fails("--warmup_ratio", "1.5")


# --- the flags a run_glue.py user types, through the real entry points --------------------

SST2 = os.path.join(FIXTURES, "glue", "sst2")


def checkpoints(out):
    return sorted(name for name in os.listdir(out) if name.startswith("checkpoint-"))


def logged(results, key):
    return [(entry["step"], entry[key]) for entry in results["log_history"] if key in entry]


def best_model_is_the_best_evaluation(out, results):
    scores = logged(results, "eval_validation_accuracy")
    best = max(score for _, score in scores)
    best_step = next(step for step, score in scores if score == best)  # HF keeps the first of equal scores
    assert results["metrics"]["accuracy"] == best  # the final evaluation scores the loaded checkpoint
    assert results["best_model_checkpoint"].endswith(f"checkpoint-{best_step}")


BEST_MODEL = [
    "--load_best_model_at_end",
    "--eval_strategy",
    "steps",
    "--eval_steps",
    "2",
    "--save_strategy",
    "steps",
    "--save_steps",
    "2",
    "--num_train_epochs",
    "4",
]
# name: (entry point, extra flags, expectation): words of the one-line error (exit 2), or a check of the run (exit 0)
RUN_GLUE_FLAGS = {
    "--do_train --do_eval": ("train_teacher", ["--do_train", "--do_eval"], lambda out, r: None),
    "--do_train False": ("train_teacher", ["--do_train", "False"], "--do_train False: every entry point trains"),
    "--do_eval False": ("train_teacher", ["--do_eval", "False"], "--do_eval False: every entry point trains"),
    "--do_predict": ("train_teacher", ["--do_predict"], "--do_predict is not supported"),
    "--push_to_hub": ("train_teacher", ["--push_to_hub"], "hf upload"),
    "--evaluation_strategy": ("train_teacher", ["--evaluation_strategy", "steps"], "use --eval_strategy"),
    "--per_gpu_train_batch_size": (
        "train_teacher",
        ["--per_gpu_train_batch_size", "8"],
        "use --per_device_train_batch_size",
    ),
    "--logging_dir": ("train_teacher", ["--logging_dir", "runs"], "TENSORBOARD_LOGGING_DIR"),
    "--cache_dir": ("train_teacher", ["--cache_dir", "hf"], "HF_HOME"),
    "--overwrite_cache": ("train_teacher", ["--overwrite_cache"], "never stale"),
    "--fp16 on CPU": ("train_teacher", ["--fp16"], "would train in fp32"),
    "--fp16_full_eval": ("train_teacher", ["--fp16_full_eval"], "--fp16_full_eval is not supported"),
    "--resume_from_checkpoint PATH": (
        "train_teacher",
        ["--resume_from_checkpoint", "somewhere"],
        "rerun the same command",
    ),
    "--warmup_ratio": (
        "train_teacher",
        ["--warmup_ratio", "0.5"],
        # 4 steps, 2 of warmup; each step logs the rate it trained with
        lambda out, r: [lr for _, lr in logged(r, "learning_rate")] == pytest.approx([0, 5e-4, 1e-3, 5e-4]),
    ),
    "--max_steps": ("train_teacher", ["--max_steps", "3"], lambda out, r: logged(r, "train_loss")[0][0] == 3),
    "--eval_strategy steps": (
        "train_teacher",
        ["--eval_strategy", "steps", "--eval_steps", "2"],
        lambda out, r: [step for step, _ in logged(r, "eval_validation_accuracy")] == [2, 4],
    ),
    "--save_total_limit": (
        "train_teacher",
        ["--save_strategy", "steps", "--save_steps", "1", "--save_total_limit", "2"],
        lambda out, r: checkpoints(out) == ["checkpoint-3", "checkpoint-4"],
    ),
    "--load_best_model_at_end accuracy": (
        "train_teacher",
        [*BEST_MODEL, "--metric_for_best_model", "accuracy"],
        best_model_is_the_best_evaluation,
    ),
    "--load_best_model_at_end eval_accuracy": (
        "train_teacher",
        [*BEST_MODEL, "--metric_for_best_model", "eval_accuracy"],
        best_model_is_the_best_evaluation,
    ),
    "--load_best_model_at_end, save steps not on eval steps": (
        "train_teacher",
        ["--load_best_model_at_end", "--eval_strategy", "steps", "--eval_steps", "2", "--save_strategy", "epoch"],
        # HF's message, on one line
        "but found - Evaluation strategy: IntervalStrategy.STEPS - Save strategy: SaveStrategy.EPOCH",
    ),
    # a teacher of another hidden size: the student is wrapped with projections
    "--gradient_checkpointing with a projection": (
        "dynamic_objective",
        ["--gradient_checkpointing"],
        lambda out, r: None,
    ),
    "--activation_checkpointing with a projection": (
        "dynamic_objective",
        ["--activation_checkpointing"],
        lambda out, r: None,
    ),
    # the released code's behaviours (docs/released.md), end to end
    "--uncertainty_grad": ("dynamic_objective", ["--uncertainty_grad"], lambda out, r: None),
    "--teacher_dropout": ("dynamic_objective", ["--teacher_dropout", "--teacher_cache", "none"], lambda out, r: None),
    "--rep_include_padding": ("dynamic_objective", ["--rep_include_padding"], lambda out, r: None),
}


@pytest.fixture(scope="module")
def wide_teacher(tmp_path_factory):
    return make_tiny_bert(tmp_path_factory.mktemp("wide"), num_layers=2, hidden=48, heads=4)


@pytest.mark.parametrize("case", list(RUN_GLUE_FLAGS))
def test_run_glue_flags_act_or_are_refused_in_one_line(case, tiny_bert, wide_teacher, tmp_path, capsys):
    script, extra, expected = RUN_GLUE_FLAGS[case]
    out = str(tmp_path / "out")
    argv = [
        "--model_name_or_path",
        tiny_bert,
        "--task_name",
        "sst2",
        "--data_dir",
        SST2,
        "--output_dir",
        out,
        "--num_train_epochs",
        "1",
        "--per_device_train_batch_size",
        "8",
        "--learning_rate",
        "1e-3",
        "--logging_steps",
        "1",
        "--save_strategy",
        "no",
        "--report_to",
        "none",
        "--disable_tqdm",
        "true",
    ]
    if script == "dynamic_objective":
        argv += [
            "--student_num_layers",
            "2",
            "--teacher",
            wide_teacher,
            "--strategy",
            "uncertainty",
            "--kd_rep_alpha",
            "1",
            "--skip_teacher_check",
        ]
    main = importlib.import_module(script).main
    code = cli(lambda: main(argv + extra))
    err = capsys.readouterr().err
    if isinstance(expected, str):
        lines = [line for line in err.splitlines() if line.strip()]
        assert code == 2 and len(lines) == 1 and expected in lines[0], err[-3000:]
        assert not os.path.exists(os.path.join(out, "results.json"))
        return
    assert code == 0, err[-3000:]
    with open(os.path.join(out, "results.json")) as handle:
        results = json.load(handle)
    assert expected(out, results) in (None, True), case


def test_checking_the_store_folder_creates_nothing(parse, fails, tmp_path):
    """Parsing (and so every sweep's DRY_RUN plan) only checks that the folder could be made."""
    store = tmp_path / "not" / "yet"
    assert parse("--teacher_cache", "disk", "--teacher_cache_dir", str(store))[2].teacher_cache == "disk"
    assert not (tmp_path / "not").exists()
    (tmp_path / "file").write_text("")
    assert "is not a writable folder" in fails("--teacher_cache", "disk", "--teacher_cache_dir", str(tmp_path / "file"))
