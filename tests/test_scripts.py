"""The sweep scripts (scripts/*.sh, thin wrappers over dynamic_kd/sweeps.py and scripts/grids.py) and
scripts/prepare_tweets.py.

Each script reaches its sweep with the environment's settings (DRY_RUN=1); one tiny real sweep
checks logging, skipping a finished run and resuming a killed one; the quickstart's plan has the
student alone next to every method; prepare_tweets.py runs on a small fake CSV.
"""

import csv
import importlib.util
import json
import os
import re
import shlex
import signal
import subprocess
import sys

from conftest import FIXTURES, holding_python, make_tiny_bert, wait_until_held

from dynamic_kd import sweeps
from dynamic_kd.report import load_runs

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = os.path.join(REPO, "scripts")
# Every variable the scripts read: a value in the caller's environment must not leak into a test.
GRIDS = sweeps.grids()
SCRIPT_VARIABLES = set(sweeps.VARIABLES).union(*(sweep.defaults for sweep in GRIDS.SWEEPS.values()))
SCRIPT_VARIABLES |= {"OUT", "SKIP_INSTALL", "TRAIN_ROWS", "DEV_ROWS", "DATA_SEED"}


def script_env(**overrides):
    env = {k: v for k, v in os.environ.items() if k not in SCRIPT_VARIABLES and not k.startswith("DATA_DIR_")}
    env.update(PYTHON=sys.executable, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    env.update({k: str(v) for k, v in overrides.items()})
    return env


def run_script(name, cwd, timeout=900, **overrides):
    """Run scripts/NAME from an unrelated cwd (the scripts find the repository themselves).

    `timeout` only stops a hung script; a tiny sweep on a busy 2-core machine takes a few minutes."""
    return subprocess.run(
        ["bash", os.path.join(SCRIPTS, name)],
        cwd=cwd,
        env=script_env(**overrides),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def commands(result):
    assert result.returncode == 0, result.stderr
    return [shlex.split(line) for line in result.stdout.splitlines() if line.strip() and not line.startswith("#")]


def flag(argv, name):
    """Value of --name in argv (None if absent)."""
    return argv[argv.index(name) + 1] if name in argv else None


# --- each script is its sweep --------------------------------------------------------------


def test_each_script_plans_its_sweep(tmp_path):
    out = tmp_path / "out"
    common = dict(DRY_RUN=1, OUT_ROOT=out, TASKS="rte", SEEDS=1, RATIOS=0.1, STUDENT_BASELINE=0)
    # all.sh in one go: teachers first, then the three distillation sweeps
    planned = commands(run_script("all.sh", tmp_path, **common))
    scripts = [argv[1] for argv in planned]
    # the released settings: modes hard and soft, the objective's uncertainty next to its static baseline
    assert scripts == (
        ["train_teacher.py"] * 2 + ["dynamic_teacher.py"] * 2 + ["dynamic_data.py"] * 5 + ["dynamic_objective.py"] * 2
    )
    assert all(flag(argv, "--kd_loss") == "mse" for argv in planned[2:])
    planned = commands(run_script("all.sh", tmp_path, **common, PROFILE="library"))
    assert [argv[1] for argv in planned] == (
        ["train_teacher.py"] * 2 + ["dynamic_teacher.py"] * 6 + ["dynamic_data.py"] * 5 + ["dynamic_objective.py"] * 3
    )
    for name, script in (
        ("train_teacher.sh", "train_teacher.py"),
        ("teacher.sh", "dynamic_teacher.py"),
        ("data.sh", "dynamic_data.py"),
        ("objective.sh", "dynamic_objective.py"),
    ):
        planned = commands(run_script(name, tmp_path, **common, LR="3e-5", PROFILE="library"))
        assert planned and {argv[1] for argv in planned} == {script}
        assert all(argv[0] == sys.executable and flag(argv, "--learning_rate") == "3e-5" for argv in planned)


def test_custom_data_sweep_plans_commands_the_entry_points_accept(tmp_path):
    from dynamic_kd.arguments import DataArguments, DistillationArguments, ModelArguments, parse_args

    (tmp_path / "train.csv").write_text("text,score\na,0.5\nb,3\n")
    (tmp_path / "dev.csv").write_text("text,score\nc,1\n")
    files = (
        f"--train_file {tmp_path}/train.csv --validation_file {tmp_path}/dev.csv"
        " --text_column text --label_column score --is_regression"
    )
    result = run_script(
        "data.sh",
        tmp_path,
        DRY_RUN=1,
        OUT_ROOT=tmp_path / "out",
        TASKS="custom",
        SEEDS="1",
        RATIOS="0.1",
        SELECTIONS="random entropy",
        STUDENT_BASELINE=0,
        EXTRA_ARGS=files,
    )
    planned = commands(result)
    assert [flag(argv, "--output_dir") for argv in planned] == [
        f"{tmp_path}/out/data/custom/kd-seed1",
        f"{tmp_path}/out/data/custom/random-r0.1-seed1",
    ]
    assert "entropy" in result.stdout + result.stderr  # the regression task's dropped combination is named
    for argv in planned:
        data_args = parse_args(argv[2:], DataArguments, ModelArguments, DistillationArguments)[0]
        assert data_args.task.name == f"custom:{tmp_path.name}/train.csv+dev.csv" and data_args.task.is_regression


def test_bad_settings_fail_with_one_line(tmp_path):
    result = run_script("teacher.sh", tmp_path, DRY_RUN=1, TASKS="rte", SEEDS="1", NPROC_PER_RUN="two")
    assert result.returncode == 2 and result.stderr.startswith("error: ") and "NPROC_PER_RUN" in result.stderr
    result = run_script("train_teacher.sh", tmp_path, DRY_RUN=1, TASKS="rte", TEACHER_SIZES="huge")
    assert result.returncode == 2 and "TEACHER_SIZES" in result.stderr


def test_quickstart_goes_through_the_sweep_layer(tmp_path):
    model = make_tiny_bert(tmp_path / "model", num_layers=4)
    out = tmp_path / "qs"
    result = run_script(
        "quickstart.sh",
        tmp_path,
        DRY_RUN=1,
        SKIP_INSTALL=1,
        OUT=out,
        MODEL=model,
        TASK="sst2",
        DATA_DIR=os.path.join(FIXTURES, "glue", "sst2"),
        PRECISION="bf16",
    )
    planned = commands(result)
    assert [os.path.relpath(flag(argv, "--output_dir"), out) for argv in planned] == [
        "teachers/sst2-large",
        "teachers/sst2-small",
        "student/sst2/seed1",
        "data/sst2/kd-seed1",
        "teacher/sst2/hard-seed1",
        "data/sst2/entropy-r0.1-seed1",
        "objective/sst2/uncertainty-seed1",
        "combined/sst2/hard+entropy-r0.1+uncertainty-seed1",
    ]
    large, small, alone = planned[:3]
    assert "--student_num_layers" not in large and flag(small, "--student_num_layers") == "2"
    assert alone[1] == "train_teacher.py" and flag(alone, "--student_num_layers") == "2"  # the no-KD student
    assert all(flag(argv, "--logging_steps") == "10" and "--bf16" in argv for argv in planned)  # bf16 autocast on CPU
    assert all(
        flag(argv, "--teacher_cache") == "disk" for argv in planned[3:]
    )  # the students share the teachers' outputs
    fp32 = commands(
        run_script(
            "quickstart.sh",
            tmp_path,
            DRY_RUN=1,
            SKIP_INSTALL=1,
            OUT=out,
            MODEL=model,
            TASK="sst2",
            DATA_DIR=os.path.join(FIXTURES, "glue", "sst2"),
            PRECISION="fp32",
        )
    )
    assert not any("--bf16" in argv for argv in fp32)


def test_miniature_plans_every_row_for_every_seed(tmp_path):
    MINIATURE, MINIATURE_CLAIMS, MINIATURE_COST_ROWS, MINIATURE_ROWS = (
        GRIDS.MINIATURE,
        GRIDS.MINIATURE_CLAIMS,
        GRIDS.MINIATURE_COST_ROWS,
        GRIDS.MINIATURE_ROWS,
    )

    model = make_tiny_bert(tmp_path / "model", num_layers=4)
    corpus = tmp_path / "tweets.csv"
    _write_fake_corpus(corpus)
    data = tmp_path / "tweets"
    subprocess.run(
        [
            sys.executable,
            os.path.join(SCRIPTS, "prepare_tweets.py"),
            "--csv",
            str(corpus),
            "--train",
            "20",
            "--dev",
            "10",
            str(data),
        ],
        check=True,
    )
    out = tmp_path / "mini"
    result = run_script(
        "miniature.sh",
        tmp_path,
        DRY_RUN=1,
        SKIP_INSTALL=1,
        OUT=out,
        MODEL=model,
        DATA_DIR=data,
        SEEDS="1 2",
        PRECISION="fp32",
    )
    planned = commands(result)
    rows = [name for name, _, _ in MINIATURE_ROWS]
    assert [os.path.relpath(flag(argv, "--output_dir"), out) for argv in planned] == (
        ["teachers/large", "teachers/small"] + [f"runs/{row}/seed{seed}" for seed in (1, 2) for row in rows]
    )
    # every row answers a claim
    assert {claim[2] for claim in MINIATURE_CLAIMS} | {claim[3] for claim in MINIATURE_CLAIMS} == set(rows)
    assert len(MINIATURE["SEEDS"].split()) >= 5
    for argv in planned:
        assert flag(argv, "--train_file") == str(data / "train.tsv") and flag(argv, "--task_name") == "custom"
    students = planned[2:]
    assert all(flag(argv, "--student_num_layers") == "1" for argv in students)
    # the cost rows keep a cache of their own (their time and forwards are their own), the others share the store
    for argv in students:
        row = os.path.basename(os.path.dirname(flag(argv, "--output_dir")))
        expected = None if row in MINIATURE_COST_ROWS or argv[1] == "train_teacher.py" else "disk"
        assert flag(argv, "--teacher_cache") == expected, row
    assert len(rows) <= 14 and set(MINIATURE_COST_ROWS) <= set(rows)
    released = [argv for argv in students if "objective-none-released" in flag(argv, "--output_dir")]
    assert len(released) == 2 and all(flag(argv, "--rep_normalization") == "sequence" for argv in released)
    weights = [argv for argv in students if "-w1/" in flag(argv, "--output_dir")]
    assert len(weights) == 4
    assert all(flag(argv, "--small_teacher_alpha") == flag(argv, "--large_teacher_alpha") == "1" for argv in weights)
    # LARGE_MODEL: another classifier (its own tokenizer allowed) as the large teacher, on its own schedule
    other = make_tiny_bert(tmp_path / "other", num_layers=2, seed=3)
    swapped = commands(
        run_script(
            "miniature.sh",
            tmp_path,
            DRY_RUN=1,
            SKIP_INSTALL=1,
            OUT=tmp_path / "mini-other",
            MODEL=model,
            DATA_DIR=data,
            SEEDS="1",
            PRECISION="fp32",
            LARGE_MODEL=other,
            LARGE_LR="3e-5",
        )
    )
    large, small = swapped[0], swapped[1]
    assert flag(large, "--model_name_or_path") == str(other) and flag(large, "--learning_rate") == "3e-5"
    assert flag(small, "--model_name_or_path") == str(model) and flag(small, "--learning_rate") == "1e-4"


# --- a tiny real sweep: logs, skip, resume -------------------------------------------------


def test_tiny_sweep_resumes_a_killed_run_then_skips_it(tmp_path):
    base = make_tiny_bert(tmp_path / "base", num_layers=2)
    out = tmp_path / "out"
    common = dict(
        OUT_ROOT=out,
        TASKS="sst2",
        SEEDS="1",
        DATA_ROOT=os.path.join(FIXTURES, "glue"),
        EPOCHS=1,
        BATCH=8,
        EVAL_BATCH=16,
        MAX_LEN=32,
        LR="1e-3",
        REPORT_TO="none",
        SAVE_ARGS="--save_strategy no",
        EXTRA_ARGS="--disable_tqdm true --use_cpu",
        BASE_MODEL=base,
        STUDENT_MODEL=base,
        STUDENT_LAYERS=1,
    )
    # the teacher, through train_teacher.sh itself
    result = run_script("train_teacher.sh", tmp_path, TEACHER_SIZES="base", **common)
    teacher = out / "teachers" / "sst2-base"
    assert result.returncode == 0, result.stdout + result.stderr
    assert (teacher / "results.json").exists()
    assert f"ok     {teacher}" in result.stdout and "done: 1 ok, 0 failed, 0 skipped" in result.stdout

    # A run killed after its first checkpoint is re-run by the same sweep and resumes.
    # the 1-epoch tiny teacher is at chance on the dev fixture: the teacher check would refuse it
    sweep = dict(
        common,
        SELECTIONS="entropy",
        RATIOS="0.5",
        KD_BASELINE=0,
        STUDENT_BASELINE=0,
        EPOCHS=3,
        BATCH=4,
        SAVE_ARGS="--save_strategy steps --save_steps 2",
        EXTRA_ARGS=common["EXTRA_ARGS"] + " --logging_steps 2 --skip_teacher_check",
    )
    run = out / "data" / "sst2" / "entropy-r0.5-seed1"
    log = out / "data" / "sst2" / "entropy-r0.5-seed1.log"  # next to the run folder, not inside
    hold = holding_python(tmp_path / "hold")  # the run waits after checkpoint-2 until it is killed
    process = subprocess.Popen(
        ["bash", os.path.join(SCRIPTS, "data.sh")],
        cwd=tmp_path,
        env=script_env(**dict(sweep, PYTHON=hold.python)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    wait_until_held(hold, lambda: process.poll() is None, "data.sh")
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    held_at = run / "checkpoint-2" / "trainer_state.json"
    assert held_at.exists() and not (run / "results.json").exists(), log.read_text()

    result = run_script("data.sh", tmp_path, **sweep)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"start  {run} (resuming)" in result.stdout and f"ok     {run}" in result.stdout
    assert "Resuming from checkpoint" in log.read_text()
    assert len(re.findall(r"^=== \d{4}-", log.read_text(), re.M)) == 2  # one header per attempt, appended
    finished = run / "results.json"
    assert "dynamic_kd.report" in result.stdout
    # results.json carries the data source and the training history with the dkd/* values
    record = json.loads(finished.read_text())
    assert record["method"] == "kd+data/entropy/r0.5+mse"  # the released logit MSE
    assert record["data"]["source"] == "data_dir" and record["data"]["location"] == os.path.join(
        FIXTURES, "glue", "sst2"
    )
    assert any("dkd/selected_fraction" in entry for entry in record["log_history"])
    runs, skipped = load_runs([str(out)])
    assert len(runs) == 2 and not skipped and set(runs.data_label) == {"sst2"}

    stamp = finished.stat().st_mtime_ns
    result = run_script("data.sh", tmp_path, **sweep)
    assert result.returncode == 0
    assert f"skip {run} (finished)" in result.stdout and "0 ok, 0 failed, 1 skipped" in result.stdout
    assert finished.stat().st_mtime_ns == stamp


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


def test_prepare_tweets_stratified_and_clean(tmp_path):
    corpus = tmp_path / "tweets.csv"
    _write_fake_corpus(corpus)  # unique: 12 positive, 13 negative, 6 neutral
    script = os.path.join(SCRIPTS, "prepare_tweets.py")
    args = [sys.executable, script, "--csv", str(corpus), "--train", "20", "--dev", "10", "--seed", "3"]
    result = subprocess.run(args + [str(tmp_path / "a")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    texts = {}
    # 10 rows of 31 in the proportions 13:6:12 -> 4.19, 1.94, 3.87: 4, 1, 3 plus the two largest remainders
    for split, size, counts in (
        ("train", 20, {"negative": 8, "neutral": 4, "positive": 8}),
        ("dev", 10, {"negative": 4, "neutral": 2, "positive": 4}),
    ):
        header, rows = _read_tsv(tmp_path / "a" / f"{split}.tsv")
        assert header == "sentence\tlabel"
        assert len(rows) == size and all(len(row) == 2 for row in rows)  # no tab inside a text
        labels = [row[1] for row in rows]
        assert {label: labels.count(label) for label in counts} == counts
        texts[split] = [row[0] for row in rows]
        for text, label in rows:
            assert text and text == text.strip() and "\r" not in text
            kind = (
                "positive"
                if ("great" in text or "tab here" in text or "latte" in text)
                else "neutral"
                if text.startswith("a day")
                else "negative"
            )
            assert kind == label
    assert not set(texts["train"]) & set(texts["dev"])
    everything = texts["train"] + texts["dev"]
    assert len(everything) == len(set(everything))

    result = subprocess.run(args + [str(tmp_path / "b")], capture_output=True, text=True, timeout=60)
    for split in ("train", "dev"):
        assert (tmp_path / "a" / f"{split}.tsv").read_bytes() == (tmp_path / "b" / f"{split}.tsv").read_bytes()

    # 40 rows of 31 unique: 16 negative rows are needed and 13 exist
    result = subprocess.run(
        [sys.executable, script, "--csv", str(corpus), "--train", "20", "--dev", "20", str(tmp_path / "c")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "only 13 negative rows" in result.stderr
    assert not (tmp_path / "c").exists()


def test_prepare_tweets_reads_every_kind_of_row(tmp_path):
    corpus = tmp_path / "tweets.csv"
    _write_fake_corpus(corpus)
    spec = importlib.util.spec_from_file_location("prepare_tweets", os.path.join(SCRIPTS, "prepare_tweets.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    by_label = module.read_rows(str(corpus))
    assert {label: len(texts) for label, texts in by_label.items()} == {
        "negative": 13,
        "neutral": 6,
        "positive": 12,
    }  # duplicate and empty rows dropped
    assert "tab here and a newline" in by_label["positive"] and "caf\u00e9 latte" in by_label["positive"]
    assert "caf\u00e9 closed" in by_label["negative"]  # the Latin-1 row, decoded
