"""The sweep scripts (scripts/*.sh) and scripts/prepare_tweets.py, offline.

DRY_RUN=1 plans are checked command by command; one tiny real sweep checks logging, skipping a
finished run and resuming a killed one; prepare_tweets.py runs on a small fake CSV.
"""
import csv
import importlib.util
import json
import os
import shlex
import signal
import subprocess
import sys
import time

import pytest

from conftest import FIXTURES, make_tiny_bert

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = os.path.join(REPO, "scripts")
# Every variable the scripts read: a value in the caller's environment must not leak into a test.
SCRIPT_VARIABLES = (
    "TASKS SEEDS RATIOS SELECTIONS SELECTION_SCOPE KD_BASELINE KD_LOSS MODES STRATEGIES REP_ALPHA REP_LAYERS "
    "STAGES TEACHER_SIZES BASE_MODEL LARGE_MODEL STUDENT_MODEL STUDENT_LAYERS STUDENT_LAYER_INIT BASE_TEACHER "
    "LARGE_TEACHER TEACHER LR EPOCHS TEACHER_LR TEACHER_EPOCHS TEACHER_SEED MAX_LEN BATCH EVAL_BATCH REPORT_TO "
    "SAVE_ARGS DATA_ROOT EXTRA_ARGS OUT_ROOT GPUS NPROC_PER_RUN TORCHRUN DRY_RUN SHOW_OUTPUT REGRESSION_TASKS"
).split()


def script_env(**overrides):
    env = {k: v for k, v in os.environ.items() if k not in SCRIPT_VARIABLES and not k.startswith("DATA_DIR_")}
    env.update(PYTHON=sys.executable, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    env.update({k: str(v) for k, v in overrides.items()})
    return env


def run_script(name, cwd, timeout=120, **overrides):
    """Run scripts/NAME from an unrelated cwd (the scripts cd to the repository themselves)."""
    return subprocess.run(
        ["bash", os.path.join(SCRIPTS, name)], cwd=cwd, env=script_env(**overrides),
        capture_output=True, text=True, timeout=timeout,
    )


def plan(name, tmp_path, **overrides):
    """DRY_RUN=1 output: (commands as argv lists, comment lines)."""
    overrides.setdefault("OUT_ROOT", str(tmp_path / "out"))
    result = run_script(name, tmp_path, DRY_RUN=1, **overrides)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    commands = [shlex.split(line) for line in lines if not line.startswith("#")]
    comments = [line for line in lines if line.startswith("#")]
    return commands, comments


def flag(argv, name):
    """Value of --name in argv (None if absent)."""
    return argv[argv.index(name) + 1] if name in argv else None


def output_dirs(commands):
    return [flag(argv, "--output_dir") for argv in commands]


# --- DRY_RUN plans -------------------------------------------------------------------------

def test_data_plan_counts_flags_and_dirs(tmp_path):
    out = tmp_path / "out"
    commands, comments = plan("data.sh", tmp_path, TASKS="rte", SEEDS="1 2", RATIOS="0.1 0.5")
    # per seed: the KD baseline + 4 strategies x 2 ratios
    assert len(commands) == 2 * (1 + 4 * 2)
    expected = set()
    for seed in (1, 2):
        expected.add(f"{out}/data/rte/kd-seed{seed}")
        for strategy in ("random", "entropy", "margin", "lc"):
            for ratio in ("0.1", "0.5"):
                expected.add(f"{out}/data/rte/{strategy}-r{ratio}-seed{seed}")
    assert set(output_dirs(commands)) == expected
    for argv in commands:
        assert argv[0] == sys.executable and argv[1] == "dynamic_data.py"
        assert flag(argv, "--task_name") == "rte"
        assert flag(argv, "--teacher") == f"{out}/teachers/rte-base"
        assert flag(argv, "--model_name_or_path") == "bert-base-uncased"
        assert flag(argv, "--student_num_layers") == "6"
        assert flag(argv, "--learning_rate") == "2e-5"
        assert flag(argv, "--per_device_train_batch_size") == "32"
        # defaults of the entry points are not repeated
        assert "--num_train_epochs" not in argv and "--max_seq_length" not in argv
        assert "--overwrite_output_dir" not in argv
        name = os.path.basename(flag(argv, "--output_dir"))
        assert flag(argv, "--seed") == name.rsplit("seed", 1)[1]
        if name.startswith("kd-"):
            assert "--selection_strategy" not in argv and "--selection_ratio" not in argv
        else:
            assert name == f"{flag(argv, '--selection_strategy')}-r{flag(argv, '--selection_ratio')}-seed{flag(argv, '--seed')}"
    assert any("dynamic_kd.report" in line and f"{out}/data" in line for line in comments)

    commands, _ = plan("data.sh", tmp_path, TASKS="rte mrpc", SEEDS="3", SELECTIONS="entropy", RATIOS="0.1", KD_BASELINE=0)
    assert output_dirs(commands) == [f"{out}/data/rte/entropy-r0.1-seed3", f"{out}/data/mrpc/entropy-r0.1-seed3"]


def test_train_teacher_plan(tmp_path):
    out = tmp_path / "out"
    commands, _ = plan("train_teacher.sh", tmp_path, TASKS="rte mrpc")
    assert [(argv[1], flag(argv, "--model_name_or_path"), flag(argv, "--output_dir")) for argv in commands] == [
        ("train_teacher.py", "bert-base-uncased", f"{out}/teachers/rte-base"),
        ("train_teacher.py", "bert-large-uncased", f"{out}/teachers/rte-large"),
        ("train_teacher.py", "bert-base-uncased", f"{out}/teachers/mrpc-base"),
        ("train_teacher.py", "bert-large-uncased", f"{out}/teachers/mrpc-large"),
    ]
    assert all("--seed" not in argv and "--student_num_layers" not in argv for argv in commands)

    commands, _ = plan("train_teacher.sh", tmp_path, TASKS="rte", TEACHER_SIZES="large", LARGE_MODEL="roberta-large",
                       LARGE_TEACHER="/models/{task}/big", TEACHER_LR="1e-5", TEACHER_EPOCHS=2)
    assert len(commands) == 1
    argv = commands[0]
    assert flag(argv, "--model_name_or_path") == "roberta-large"
    assert flag(argv, "--output_dir") == "/models/rte/big"
    assert flag(argv, "--learning_rate") == "1e-5" and flag(argv, "--num_train_epochs") == "2"


def test_teacher_plan(tmp_path):
    out = tmp_path / "out"
    commands, _ = plan("teacher.sh", tmp_path, TASKS="rte", SEEDS="1 2")
    modes = ["single-small", "single-large", "average", "hard", "soft", "soft-instance"]
    assert len(commands) == len(modes) * 2
    assert output_dirs(commands) == [f"{out}/teacher/rte/{m}-seed{s}" for s in (1, 2) for m in modes]
    for argv in commands:
        assert argv[1] == "dynamic_teacher.py"
        mode = os.path.basename(flag(argv, "--output_dir")).rsplit("-seed", 1)[0]
        # hard is dynamic_teacher.py's default; single-* runs get only their own teacher
        assert flag(argv, "--uncertainty_mode") == (None if mode == "hard" else mode)
        assert (flag(argv, "--small_teacher") is None) == (mode == "single-large")
        assert (flag(argv, "--large_teacher") is None) == (mode == "single-small")
        if mode != "single-large":
            assert flag(argv, "--small_teacher") == f"{out}/teachers/rte-base"
        if mode != "single-small":
            assert flag(argv, "--large_teacher") == f"{out}/teachers/rte-large"

    commands, _ = plan("teacher.sh", tmp_path, TASKS="rte", SEEDS="1", MODES="hard")
    assert output_dirs(commands) == [f"{out}/teacher/rte/hard-seed1"]


def test_objective_plan(tmp_path):
    out = tmp_path / "out"
    commands, _ = plan("objective.sh", tmp_path, TASKS="rte", SEEDS="1 2 3")
    assert len(commands) == 3 * 3
    for argv in commands:
        assert argv[1] == "dynamic_objective.py"
        strategy = os.path.basename(flag(argv, "--output_dir")).rsplit("-seed", 1)[0]
        assert flag(argv, "--strategy") == (None if strategy == "none" else strategy)
        assert flag(argv, "--teacher") == f"{out}/teachers/rte-base"
    assert f"{out}/objective/rte/uncertainty-seed3" in output_dirs(commands)

    commands, _ = plan("objective.sh", tmp_path, TASKS="rte", SEEDS="1", STRATEGIES="uncertainty", REP_LAYERS="cls")
    assert output_dirs(commands) == [f"{out}/objective/rte/uncertainty-cls-seed1"]
    assert flag(commands[0], "--rep_layers") == "cls"


def test_all_plan_runs_teachers_first(tmp_path):
    commands, comments = plan("all.sh", tmp_path, TASKS="rte", SEEDS="1", RATIOS="0.1")
    scripts = [argv[1] for argv in commands]
    assert scripts == ["train_teacher.py"] * 2 + ["dynamic_teacher.py"] * 6 + ["dynamic_data.py"] * 5 + ["dynamic_objective.py"] * 3
    assert sum("dynamic_kd.report" in line for line in comments) == 3

    commands, _ = plan("all.sh", tmp_path, TASKS="rte", SEEDS="1", RATIOS="0.1", STAGES="data objective")
    assert {argv[1] for argv in commands} == {"dynamic_data.py", "dynamic_objective.py"}


def test_environment_overrides(tmp_path):
    commands, _ = plan(
        "data.sh", tmp_path, TASKS="rte sst2", SEEDS="7", SELECTIONS="margin", RATIOS="0.3", KD_BASELINE=0,
        OUT_ROOT="/runs", LR="3e-5", EPOCHS=5, MAX_LEN=256, BATCH=16, STUDENT_MODEL="/m/student", STUDENT_LAYERS=4,
        TEACHER="/t/{task}", DATA_ROOT="/glue", DATA_DIR_SST2="/elsewhere/sst", EXTRA_ARGS="--bf16 --logging_steps 5",
        REPORT_TO="none",
    )
    rte, sst2 = commands
    assert flag(rte, "--output_dir") == "/runs/data/rte/margin-r0.3-seed7"
    assert flag(rte, "--data_dir") == "/glue/rte" and flag(sst2, "--data_dir") == "/elsewhere/sst"
    assert flag(rte, "--teacher") == "/t/rte" and flag(sst2, "--teacher") == "/t/sst2"
    assert flag(rte, "--learning_rate") == "3e-5" and flag(rte, "--num_train_epochs") == "5"
    assert flag(rte, "--max_seq_length") == "256" and flag(rte, "--per_device_train_batch_size") == "16"
    assert flag(rte, "--model_name_or_path") == "/m/student" and flag(rte, "--student_num_layers") == "4"
    assert flag(rte, "--seed") == "7" and "--report_to" not in rte
    assert rte[-3:] == ["--bf16", "--logging_steps", "5"]  # last, so they override


def test_gpus_and_torchrun(tmp_path):
    commands, _ = plan("objective.sh", tmp_path, TASKS="rte", SEEDS="1 2", GPUS="0 1")
    assert len(commands) == 6
    assert [argv[0] for argv in commands] == ["CUDA_VISIBLE_DEVICES=0", "CUDA_VISIBLE_DEVICES=1"] * 3
    assert all(argv[1] == sys.executable for argv in commands)

    commands, _ = plan("objective.sh", tmp_path, TASKS="rte", SEEDS="1", NPROC_PER_RUN=2)
    for argv in commands:
        assert os.path.basename(argv[0]) == "torchrun" or argv[1:3] == ["-m", "torch.distributed.run"]
        assert flag(argv, "--nproc_per_node") == "2" and "--standalone" in argv
        assert flag(argv, "--per_device_train_batch_size") == "16"  # the global batch stays 32

    commands, _ = plan("teacher.sh", tmp_path, TASKS="rte", SEEDS="1", MODES="hard soft", GPUS="0 1 2 3", NPROC_PER_RUN=2)
    assert [argv[0] for argv in commands] == ["CUDA_VISIBLE_DEVICES=0,1", "CUDA_VISIBLE_DEVICES=2,3"]


def test_dry_run_skips_finished_and_regression_mismatches(tmp_path):
    out = tmp_path / "out"
    finished = out / "data" / "rte" / "kd-seed1"
    finished.mkdir(parents=True)
    (finished / "results.json").write_text("{}")
    commands, comments = plan("data.sh", tmp_path, TASKS="rte stsb", SEEDS="1", RATIOS="0.1", SELECTIONS="random entropy")
    assert f"# skip {finished} (finished)" in comments
    assert output_dirs(commands) == [
        f"{out}/data/rte/random-r0.1-seed1", f"{out}/data/rte/entropy-r0.1-seed1",
        f"{out}/data/stsb/kd-seed1", f"{out}/data/stsb/random-r0.1-seed1",  # stsb is regression: no entropy
    ]


def test_custom_data_sweep_plans_commands_the_entry_points_accept(tmp_path):
    from dynamic_kd.arguments import DataArguments, DistillationArguments, ModelArguments, parse_args

    (tmp_path / "train.csv").write_text("text,score\na,0.5\nb,3\n")
    (tmp_path / "dev.csv").write_text("text,score\nc,1\n")
    files = f"--train_file {tmp_path}/train.csv --validation_file {tmp_path}/dev.csv --text_column text --label_column score --is_regression"
    commands, comments = plan("data.sh", tmp_path, TASKS="custom", SEEDS="1", RATIOS="0.1", SELECTIONS="random entropy",
                              REGRESSION_TASKS="custom", EXTRA_ARGS=files)
    assert output_dirs(commands) == [f"{tmp_path}/out/data/custom/kd-seed1", f"{tmp_path}/out/data/custom/random-r0.1-seed1"]
    assert any("entropy" in line and "regression" in line for line in comments)
    for argv in commands:
        data_args = parse_args(argv[2:], DataArguments, ModelArguments, DistillationArguments)[0]
        assert data_args.task.name == f"custom:{tmp_path.name}/train.csv+dev.csv" and data_args.task.is_regression


def test_bad_settings_fail_with_one_line(tmp_path):
    result = run_script("teacher.sh", tmp_path, DRY_RUN=1, TASKS="rte", SEEDS="1", NPROC_PER_RUN="two")
    assert result.returncode == 2 and "NPROC_PER_RUN" in result.stderr
    result = run_script("train_teacher.sh", tmp_path, DRY_RUN=1, TASKS="rte", TEACHER_SIZES="huge")
    assert result.returncode == 2 and "TEACHER_SIZES" in result.stderr


# --- a tiny real sweep: logs, skip, resume -------------------------------------------------

def test_tiny_sweep_resumes_a_killed_run_then_skips_it(tmp_path):
    base = make_tiny_bert(tmp_path / "base", num_layers=2)
    out = tmp_path / "out"
    common = dict(
        OUT_ROOT=out, TASKS="sst2", SEEDS="1", DATA_ROOT=os.path.join(FIXTURES, "glue"), EPOCHS=1, BATCH=8,
        EVAL_BATCH=16, MAX_LEN=32, LR="1e-3", REPORT_TO="none", SAVE_ARGS="--save_strategy no",
        EXTRA_ARGS="--disable_tqdm true --use_cpu", BASE_MODEL=base, STUDENT_MODEL=base, STUDENT_LAYERS=1,
    )
    # the teacher, through train_teacher.sh itself
    result = run_script("train_teacher.sh", tmp_path, TEACHER_SIZES="base", **common)
    teacher = out / "teachers" / "sst2-base"
    assert result.returncode == 0, result.stdout + result.stderr
    assert (teacher / "results.json").exists()
    assert f"ok     {teacher}" in result.stdout and "done: 1 ok, 0 failed, 0 skipped" in result.stdout

    # A run killed after its first checkpoint is re-run by the same sweep and resumes.
    # the 1-epoch tiny teacher is at chance on the dev fixture: the teacher check would refuse it
    sweep = dict(common, SELECTIONS="entropy", RATIOS="0.5", KD_BASELINE=0, EPOCHS=3, BATCH=4,
                 SAVE_ARGS="--save_strategy steps --save_steps 2",
                 EXTRA_ARGS=common["EXTRA_ARGS"] + " --skip_teacher_check")
    run = out / "data" / "sst2" / "entropy-r0.5-seed1"
    log = out / "data" / "sst2" / "entropy-r0.5-seed1.log"  # next to the run folder, not inside
    process = subprocess.Popen(
        ["bash", os.path.join(SCRIPTS, "data.sh")], cwd=tmp_path, env=script_env(**sweep),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    deadline = time.time() + 90
    while time.time() < deadline and process.poll() is None and not (run / "checkpoint-2" / "trainer_state.json").exists():
        time.sleep(0.01)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert (run / "checkpoint-2").is_dir(), log.read_text()
    # (a later checkpoint may be half written: the entry point resumes from the newest complete one)
    if (run / "results.json").exists():  # lost the race against a fast machine: simulate the kill
        (run / "results.json").unlink()

    result = run_script("data.sh", tmp_path, **sweep)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"start  {run} (resuming)" in result.stdout and f"ok     {run}" in result.stdout
    assert "Resuming from checkpoint" in log.read_text()
    assert log.read_text().count("=== ") == 2  # one header per attempt, appended
    finished = run / "results.json"
    assert json.loads(finished.read_text())["method"] == "kd+data/entropy/r0.5"
    assert "dynamic_kd.report" in result.stdout

    stamp = finished.stat().st_mtime_ns
    result = run_script("data.sh", tmp_path, **sweep)
    assert result.returncode == 0
    assert f"skip {run} (finished)" in result.stdout and "0 ok, 0 failed, 1 skipped" in result.stdout
    assert finished.stat().st_mtime_ns == stamp


STUB_PYTHON = """#!/usr/bin/env bash
# Stand-in interpreter: fails runs whose --output_dir contains "none", finishes the others.
out=""; prev=""
for arg in "$@"; do [[ "$prev" == --output_dir ]] && out=$arg; prev=$arg; done
echo "stub: CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES:-unset} $*"
if [[ "$out" == *none* ]]; then echo "error: stub failure" >&2; exit 3; fi
mkdir -p "$out" && echo '{}' > "$out/results.json"
"""


@pytest.mark.parametrize("gpus", ["", "0 1"])
def test_failed_run_is_reported_and_the_others_continue(tmp_path, gpus):
    stub = tmp_path / "python"
    stub.write_text(STUB_PYTHON)
    stub.chmod(0o755)
    out = tmp_path / "out"
    result = run_script("objective.sh", tmp_path, PYTHON=stub, OUT_ROOT=out, TASKS="rte", SEEDS="1 2", GPUS=gpus)
    assert result.returncode == 1
    assert result.stdout.count("FAILED") == 2 and "done: 4 ok, 2 failed, 0 skipped (of 6 runs)" in result.stdout
    assert "error: stub failure" in result.stdout  # the log's last line is shown
    for seed in (1, 2):
        assert not (out / "objective" / "rte" / f"none-seed{seed}" / "results.json").exists()
        for strategy in ("uncertainty", "uncertainty-r"):
            assert (out / "objective" / "rte" / f"{strategy}-seed{seed}" / "results.json").exists()
            log = (out / "objective" / "rte" / f"{strategy}-seed{seed}.log").read_text()
            assert ("CUDA_VISIBLE_DEVICES=unset" in log) == (not gpus)
    # the failed runs are retried by the next invocation, the finished ones skipped
    result = run_script("objective.sh", tmp_path, PYTHON=stub, OUT_ROOT=out, TASKS="rte", SEEDS="1 2", GPUS=gpus)
    assert "done: 0 ok, 2 failed, 4 skipped (of 6 runs)" in result.stdout


# --- prepare_tweets.py ---------------------------------------------------------------------

def _write_fake_corpus(path):
    rows = [("positive", "0.9", f"great day number {i}") for i in range(10)]
    rows += [("negative", "", f"awful day number {i}") for i in range(12)]
    rows += [("neutral", "1", f"a day number {i}") for i in range(6)]
    rows += [
        ("positive", "0.8", "tab\there and a\nnewline"),  # quoted multi-line field
        ("negative", "0.7", "awful day number 3"),  # duplicate text
        ("negative", "0.5", "   "),  # empty after cleaning
        ("positive", "1", "caf\u00e9 latte"),
    ]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["sentiment", "confidence", "text"])
        writer.writerows(rows)
    with open(path, "ab") as handle:  # a legacy 8-bit row, as in the real corpus
        handle.write(b"negative,0.6,caf\xe9 closed\r\n")


def _read_tsv(path):
    with open(path, encoding="utf-8") as handle:
        lines = handle.read().split("\n")
    assert lines[-1] == ""
    return lines[0], [line.split("\t") for line in lines[1:-1]]


def test_prepare_tweets_balanced_and_clean(tmp_path):
    corpus = tmp_path / "tweets.csv"
    _write_fake_corpus(corpus)
    script = os.path.join(SCRIPTS, "prepare_tweets.py")
    args = [sys.executable, script, "--csv", str(corpus), "--train", "12", "--dev", "6", "--seed", "3"]
    result = subprocess.run(args + [str(tmp_path / "a")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    texts = {}
    for split, size in (("train", 12), ("dev", 6)):
        header, rows = _read_tsv(tmp_path / "a" / f"{split}.tsv")
        assert header == "sentence\tlabel"
        assert len(rows) == size and all(len(row) == 2 for row in rows)  # no tab inside a text
        labels = [row[1] for row in rows]
        assert labels.count("0") == labels.count("1") == size // 2
        texts[split] = [row[0] for row in rows]
        for text, label in rows:
            assert text and text == text.strip() and "\r" not in text
            assert not text.startswith("a day"), "neutral rows are dropped"
            assert ("great" in text or "tab here" in text or "latte" in text) == (label == "1")
    assert not set(texts["train"]) & set(texts["dev"])
    everything = texts["train"] + texts["dev"]
    assert len(everything) == len(set(everything))

    result = subprocess.run(args + [str(tmp_path / "b")], capture_output=True, text=True, timeout=60)
    for split in ("train", "dev"):
        assert (tmp_path / "a" / f"{split}.tsv").read_bytes() == (tmp_path / "b" / f"{split}.tsv").read_bytes()

    # 12 unique positives (incl. the multi-line and UTF-8 ones): 12 train + 14 dev needs 13 per class
    result = subprocess.run(
        [sys.executable, script, "--csv", str(corpus), "--train", "12", "--dev", "14", str(tmp_path / "c")],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2 and "positive" in result.stderr
    assert not (tmp_path / "c").exists()


def test_prepare_tweets_reads_every_kind_of_row(tmp_path):
    corpus = tmp_path / "tweets.csv"
    _write_fake_corpus(corpus)
    spec = importlib.util.spec_from_file_location("prepare_tweets", os.path.join(SCRIPTS, "prepare_tweets.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    by_label = module.read_rows(str(corpus))
    assert len(by_label[1]) == 12 and len(by_label[0]) == 13  # duplicate, empty and neutral rows dropped
    assert "tab here and a newline" in by_label[1] and "caf\u00e9 latte" in by_label[1]
    assert "caf\u00e9 closed" in by_label[0]  # the Latin-1 row, decoded
