"""Tests for dynamic_kd.sweeps and its grids (scripts/grids.py): plans, the local launcher and (with a live
Slurm) the Slurm launcher.

Plans are checked in-process through DRY_RUN=1, command by command. Real runs use tiny models
built in the test. The Slurm test needs a throwaway single-node Slurm: `bash scripts/test_slurm.sh`
starts one and runs it (and CI does).
"""

import os
import re
import shlex
import subprocess
import sys
import time

import pytest
from conftest import FIXTURES, holding_python, make_tiny_bert, wait_until_held

from dynamic_kd import sweeps
from dynamic_kd.strategies import OBJECTIVE_STRATEGIES, SELECTION_STRATEGIES, TEACHER_MODES

GLUE = os.path.join(FIXTURES, "glue")
PAPER = {**sweeps.VARIABLES, **sweeps.grids().PAPER}  # the paper sweeps' variables


def run_sweep(name, capsys, **settings):
    """main() with exactly these settings (nothing from the caller's environment): (exit code, stdout, stderr)."""
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/tmp"),
        "PYTHON": sys.executable,
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
    }
    code = sweeps.main([name], {**env, **{k: str(v) for k, v in settings.items()}})
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def plan(name, capsys, tmp_path, **settings):
    """DRY_RUN=1: (commands as argv lists, comment lines)."""
    settings.setdefault("OUT_ROOT", str(tmp_path / "out"))
    code, out, err = run_sweep(name, capsys, DRY_RUN=1, **settings)
    assert code == 0, err
    lines = [line for line in out.splitlines() if line.strip()]
    return [shlex.split(line) for line in lines if not line.startswith("#")], [
        line for line in lines if line.startswith("#")
    ]


def flag(argv, name):
    return argv[argv.index(name) + 1] if name in argv else None


def dirs(commands):
    return [flag(argv, "--output_dir") for argv in commands]


# --- grids ---------------------------------------------------------------------------------


def test_default_grids_come_from_the_strategy_registries():
    s = sweeps.Settings({}, PAPER)
    assert s.words("MODES") == list(TEACHER_MODES)
    assert s.words("SELECTIONS") == [name for name in SELECTION_STRATEGIES if name != "none"]
    assert s.words("STRATEGIES") == list(OBJECTIVE_STRATEGIES)
    assert s["TEACHER"] == "outputs/teachers/{task}-base" and s["TEACHER_LR"] == s["LR"]
    assert sweeps.Settings({"LR": "1e-4", "OUT_ROOT": "/o"}, PAPER)["TEACHER_LR"] == "1e-4"
    assert sweeps.Settings({"OUT_ROOT": "/o"}, PAPER)["LARGE_TEACHER"] == "/o/teachers/{task}-large"


def test_teachers_plan(capsys, tmp_path):
    out = tmp_path / "out"
    commands, _ = plan("teachers", capsys, tmp_path, PROFILE="library", TASKS="rte mrpc")
    assert [(argv[1], flag(argv, "--model_name_or_path"), flag(argv, "--output_dir")) for argv in commands] == [
        ("train_teacher.py", "bert-base-uncased", f"{out}/teachers/rte-base"),
        ("train_teacher.py", "bert-large-uncased", f"{out}/teachers/rte-large"),
        ("train_teacher.py", "bert-base-uncased", f"{out}/teachers/mrpc-base"),
        ("train_teacher.py", "bert-large-uncased", f"{out}/teachers/mrpc-large"),
    ]
    assert all(
        "--seed" not in argv and "--student_num_layers" not in argv for argv in commands
    )  # seed 42 = the default
    commands, _ = plan(
        "teachers",
        capsys,
        tmp_path,
        PROFILE="library",
        TASKS="rte",
        TEACHER_SIZES="large",
        LARGE_MODEL="roberta-large",
        LARGE_TEACHER="/models/{task}/big",
        TEACHER_LR="1e-5",
        TEACHER_EPOCHS=2,
    )
    assert len(commands) == 1
    assert (
        flag(commands[0], "--model_name_or_path") == "roberta-large"
        and flag(commands[0], "--output_dir") == "/models/rte/big"
    )
    assert flag(commands[0], "--learning_rate") == "1e-5" and flag(commands[0], "--num_train_epochs") == "2"


def test_data_plan(capsys, tmp_path):
    out = tmp_path / "out"
    commands, comments = plan("data", capsys, tmp_path, PROFILE="library", TASKS="rte", SEEDS="1 2", RATIOS="0.1 0.5")
    # per seed: the student alone, plain KD, 4 strategies x 2 ratios
    assert len(commands) == 2 * (1 + 1 + 4 * 2)
    expected = set()
    for seed in (1, 2):
        expected |= {f"{out}/student/rte/seed{seed}", f"{out}/data/rte/kd-seed{seed}"}
        expected |= {
            f"{out}/data/rte/{s}-r{r}-seed{seed}" for s in ("random", "entropy", "margin", "lc") for r in ("0.1", "0.5")
        }
    assert set(dirs(commands)) == expected
    for argv in commands:
        name = os.path.basename(flag(argv, "--output_dir"))
        assert argv[0] == sys.executable
        assert argv[1] == ("train_teacher.py" if name.startswith("seed") else "dynamic_data.py")
        assert flag(argv, "--task_name") == "rte" and flag(argv, "--model_name_or_path") == "bert-base-uncased"
        assert flag(argv, "--student_num_layers") == "6" and flag(argv, "--learning_rate") == "2e-5"
        assert flag(argv, "--per_device_train_batch_size") == "32" and flag(argv, "--seed") == name[-1]
        # the entry points' defaults are not repeated, finished runs are never overwritten
        assert (
            "--num_train_epochs" not in argv and "--max_seq_length" not in argv and "--overwrite_output_dir" not in argv
        )
        if name.startswith("seed") or name.startswith("kd-"):
            assert "--selection_strategy" not in argv
            assert flag(argv, "--teacher") == (None if name.startswith("seed") else f"{out}/teachers/rte-base")
        else:
            assert (
                name
                == f"{flag(argv, '--selection_strategy')}-r{flag(argv, '--selection_ratio')}-seed{flag(argv, '--seed')}"
            )
    assert (
        comments[-1] == f"# {sys.executable} -m dynamic_kd.report {out}/data {out}/student"
        f" --out {out}/data/results.md --plot {out}/data/plots"
    )

    commands, _ = plan(
        "data",
        capsys,
        tmp_path,
        PROFILE="library",
        TASKS="rte mrpc",
        SEEDS="3",
        SELECTIONS="entropy",
        RATIOS="0.1",
        KD_BASELINE=0,
        STUDENT_BASELINE=0,
        SELECTION_SCOPE="epoch",
    )
    assert dirs(commands) == [f"{out}/data/rte/entropy-r0.1-epoch-seed3", f"{out}/data/mrpc/entropy-r0.1-epoch-seed3"]
    assert flag(commands[0], "--selection_scope") == "epoch"


def test_teacher_plan_gives_single_teacher_modes_only_their_teacher(capsys, tmp_path):
    out = tmp_path / "out"
    commands, _ = plan("teacher", capsys, tmp_path, PROFILE="library", TASKS="rte", SEEDS="1", STUDENT_BASELINE=0)
    assert [flag(argv, "--uncertainty_mode") for argv in commands] == list(TEACHER_MODES)
    for argv in commands:
        mode = flag(argv, "--uncertainty_mode")
        assert argv[1] == "dynamic_teacher.py" and flag(argv, "--output_dir") == f"{out}/teacher/rte/{mode}-seed1"
        assert (flag(argv, "--small_teacher") == f"{out}/teachers/rte-base") == (mode != "single-large")
        assert (flag(argv, "--large_teacher") == f"{out}/teachers/rte-large") == (mode != "single-small")


def test_objective_plan(capsys, tmp_path):
    out = tmp_path / "out"
    commands, _ = plan("objective", capsys, tmp_path, PROFILE="library", TASKS="rte", SEEDS="3", STUDENT_BASELINE=0)
    assert dirs(commands) == [f"{out}/objective/rte/{s}-seed3" for s in OBJECTIVE_STRATEGIES]
    assert [flag(argv, "--strategy") for argv in commands] == [
        None,
        "uncertainty",
        "uncertainty-r",
    ]  # none is the default
    assert all(flag(argv, "--kd_rep_alpha") == "1.0" and "--rep_layers" not in argv for argv in commands)
    commands, _ = plan(
        "objective",
        capsys,
        tmp_path,
        PROFILE="library",
        TASKS="rte",
        SEEDS="1",
        STRATEGIES="uncertainty",
        REP_LAYERS="cls",
        REP_ALPHA="0.5",
    )
    assert dirs(commands) == [f"{out}/student/rte/seed1", f"{out}/objective/rte/uncertainty-cls-seed1"]
    assert flag(commands[1], "--rep_layers") == "cls" and flag(commands[1], "--kd_rep_alpha") == "0.5"


def test_all_plan_runs_teachers_first_and_the_student_baseline_once(capsys, tmp_path):
    commands, comments = plan("all", capsys, tmp_path, PROFILE="library", TASKS="rte", SEEDS="1", RATIOS="0.1")
    scripts = [argv[1] for argv in commands]
    assert scripts == (
        ["train_teacher.py"] * 2
        + ["train_teacher.py"]
        + ["dynamic_teacher.py"] * 6
        + ["dynamic_data.py"] * 5
        + ["dynamic_objective.py"] * 3
    )
    assert comments[0] == "# stage 1" and comments[1].startswith("# stage 2")
    assert sum("dynamic_kd.report" in line for line in comments) == 3
    commands, _ = plan(
        "all", capsys, tmp_path, PROFILE="library", TASKS="rte", SEEDS="1", RATIOS="0.1", STAGES="data objective"
    )
    assert {argv[1] for argv in commands} == {"train_teacher.py", "dynamic_data.py", "dynamic_objective.py"}


def test_combinations_a_task_cannot_run_are_dropped_by_the_entry_point_check(capsys, tmp_path):
    out = tmp_path / "out"
    commands, comments = plan(
        "all",
        capsys,
        tmp_path,
        PROFILE="library",
        TASKS="stsb",
        SEEDS="1",
        RATIOS="0.1",
        STAGES="teacher data objective",
    )
    assert dirs(commands) == [f"{out}/student/stsb/seed1"] + [
        f"{out}/teacher/stsb/{m}-seed1" for m in ("single-small", "single-large", "average")
    ] + [f"{out}/data/stsb/kd-seed1", f"{out}/data/stsb/random-r0.1-seed1", f"{out}/objective/stsb/none-seed1"]
    dropped = [line for line in comments if "not applicable" in line]
    assert len(dropped) == 3 + 3 + 2
    # the message is DistillationArguments.check_task's, the one the entry point would print
    assert (
        f"# skip {out}/data/stsb/entropy-r0.1-seed1 (not applicable: stsb is a regression task"
        " and --selection_strategy needs class probabilities)" in comments
    )


def custom_data(folder):
    """A tiny three-class custom task (train.tsv, dev.tsv), the layout of scripts/prepare_tweets.py."""
    folder.mkdir()
    rows = "".join(f"text number {i}\t{label}\n" for i, label in enumerate(("negative", "neutral", "positive") * 2))
    for name in ("train.tsv", "dev.tsv"):
        (folder / name).write_text("sentence\tlabel\n" + rows)
    return folder


def test_shared_store_plan_runs_kd_and_every_selection_on_one_store_between_students(capsys, tmp_path):
    out, data = tmp_path / "out", custom_data(tmp_path / "tweets")
    commands, _ = plan("shared-store", capsys, tmp_path, MODEL="/m/minilm", DATA_DIR=data, STUDENT_RUNS=3)
    teachers, runs = commands[:2], commands[2:]
    assert dirs(teachers) == [f"{out}/teacher-6L", f"{out}/teacher-3L"] and "--student_num_layers" not in teachers[0]
    selections = [f"{name}-r{ratio}" for name in SELECTION_STRATEGIES if name != "none" for ratio in ("0.1", "0.5")]
    assert len(selections) == 8  # KD + 4 strategies x 2 ratios: the 9 runs
    names = [os.path.relpath(flag(argv, "--output_dir"), out / "sweep") for argv in runs]
    assert names == [
        "student-1",
        "kd",
        *selections[:3],
        "student-2",
        *selections[3:],
        "student-3",
    ]  # 4 | 5 distilled runs
    distilled = [argv for argv in runs if argv[1] == "dynamic_data.py"]
    assert len(distilled) == 9 and all(flag(argv, "--teacher") == f"{out}/teacher-6L" for argv in distilled)
    # one store for all nine, inside the sweep's folder (so a fresh sweep starts cold)
    assert {(flag(argv, "--teacher_cache"), flag(argv, "--teacher_cache_dir")) for argv in distilled} == {
        ("disk", f"{out}/sweep/teacher_outputs")
    }
    assert [(flag(argv, "--selection_strategy"), flag(argv, "--selection_ratio")) for argv in distilled[1:]] == [
        tuple(name.rsplit("-r", 1)) for name in selections
    ]
    # the students alone are the distilled runs' student, nothing more
    alone = [argv for argv in runs if argv[1] == "train_teacher.py"]
    assert len(alone) == 3 and all(
        distilled[0][2 : len(argv) - 2] == argv[2:-2] for argv in alone
    )  # same flags up to --output_dir
    assert flag(alone[0], "--student_num_layers") == "2" and flag(alone[0], "--max_seq_length") == "64"
    commands, _ = plan(
        "shared-store",
        capsys,
        tmp_path,
        MODEL="/m/minilm",
        DATA_DIR=data,
        STUDENT_RUNS=0,
        SELECTIONS="entropy",
        RATIOS="0.3",
    )
    assert [os.path.relpath(flag(argv, "--output_dir"), out / "sweep") for argv in commands[2:]] == [
        "kd",
        "entropy-r0.3",
    ]


def test_cost_plan_variants_teachers_and_kd_args(capsys, tmp_path):
    out, data = tmp_path / "out", custom_data(tmp_path / "tweets")
    commands, _ = plan("cost", capsys, tmp_path, MODEL="/m/minilm", DATA_DIR=data, ONLY="student cached")
    assert dirs(commands) == [
        f"{out}/teacher-6L",
        f"{out}/teacher-3L",
        f"{out}/runs/cached",
        f"{out}/runs/student",
    ]  # COST_VARIANTS order
    assert flag(commands[1], "--student_num_layers") == "3" and flag(commands[2], "--teacher") == f"{out}/teacher-6L"
    # a given teacher: nothing to fine-tune; KD_ARGS on the distillation runs only
    commands, _ = plan(
        "cost",
        capsys,
        tmp_path,
        MODEL="/m/bert",
        DATA_DIR=data,
        TEACHER="/m/teacher",
        ONLY="student cached",
        STUDENT_LAYERS=6,
        MAX_LEN=96,
        PRECISION="bf16",
        KD_ARGS="--skip_teacher_check",
    )
    cached, student = commands
    assert (
        flag(cached, "--teacher") == "/m/teacher"
        and "--skip_teacher_check" in cached
        and "--skip_teacher_check" not in student
    )
    assert all(
        flag(argv, "--student_num_layers") == "6" and flag(argv, "--max_seq_length") == "96" and "--bf16" in argv
        for argv in commands
    )
    for settings, message in (
        (dict(ONLY="cachd"), "unknown variant(s) cachd in ONLY"),
        (dict(ONLY="hard", TEACHER="/m/teacher"), "hard-adoption variants need the small teacher"),
    ):
        code, _, err = run_sweep("cost", capsys, DRY_RUN=1, OUT_ROOT=out, MODEL="/m/minilm", DATA_DIR=data, **settings)
        assert code == 2 and message in err and err.count("\n") == 1


def test_run_end_reads_the_latest_attempt(tmp_path):
    log = tmp_path / "run.log"
    log.write_text(
        "=== 2024-01-01 10:00:00 python x.py\n" + sweeps.RUN_END.format(code=1, seconds=3.25, cpu=2.5, rss=100.4) + "\n"
        "=== 2024-01-01 10:01:00 python x.py\nsome output\n"
        + sweeps.RUN_END.format(code=0, seconds=61.04, cpu=58.96, rss=812.6)
        + "\n"
    )
    assert sweeps.run_end(str(tmp_path / "run")) == {
        "exit": 0,
        "seconds": 61.0,
        "cpu_seconds": 59.0,
        "peak_rss_mb": 813.0,
    }
    assert sweeps.run_end(str(tmp_path / "never")) is None


def test_finished_runs_are_skipped(capsys, tmp_path):
    finished = tmp_path / "out" / "data" / "rte" / "kd-seed1"
    finished.mkdir(parents=True)
    (finished / "results.json").write_text("{}")
    (tmp_path / "out" / "data" / "rte" / "random-r0.1-seed1").mkdir()  # unfinished: run again
    commands, comments = plan(
        "data", capsys, tmp_path, TASKS="rte", SEEDS="1", RATIOS="0.1", SELECTIONS="random", STUDENT_BASELINE=0
    )
    assert f"# skip {finished} (finished)" in comments
    assert dirs(commands) == [f"{tmp_path}/out/data/rte/random-r0.1-seed1"]


def test_environment_overrides(capsys, tmp_path):
    commands, _ = plan(
        "data",
        capsys,
        tmp_path,
        TASKS="rte sst2",
        SEEDS="7",
        SELECTIONS="margin",
        RATIOS="0.3",
        KD_BASELINE=0,
        STUDENT_BASELINE=0,
        OUT_ROOT="/runs",
        LR="3e-5",
        EPOCHS=5,
        MAX_LEN=256,
        BATCH=16,
        STUDENT_MODEL="/m/student",
        STUDENT_LAYERS=4,
        TEACHER="/t/{task}",
        DATA_ROOT="/glue",
        DATA_DIR_SST2="/elsewhere/sst",
        EXTRA_ARGS="--bf16 --logging_steps 5",
        REPORT_TO="tensorboard",
        KD_LOSS="mse",
    )
    rte, sst2 = commands
    assert flag(rte, "--output_dir") == "/runs/data/rte/margin-r0.3-seed7"
    assert flag(rte, "--data_dir") == "/glue/rte" and flag(sst2, "--data_dir") == "/elsewhere/sst"
    assert flag(rte, "--teacher") == "/t/rte" and flag(sst2, "--teacher") == "/t/sst2"
    assert flag(rte, "--learning_rate") == "3e-5" and flag(rte, "--num_train_epochs") == "5"
    assert flag(rte, "--max_seq_length") == "256" and flag(rte, "--per_device_train_batch_size") == "16"
    assert flag(rte, "--model_name_or_path") == "/m/student" and flag(rte, "--student_num_layers") == "4"
    assert flag(rte, "--seed") == "7" and flag(rte, "--report_to") == "tensorboard" and flag(rte, "--kd_loss") == "mse"
    assert rte[-3:] == ["--bf16", "--logging_steps", "5"]  # last, so they override


def test_gpus_and_torchrun(capsys, tmp_path):
    commands, _ = plan(
        "objective", capsys, tmp_path, PROFILE="library", TASKS="rte", SEEDS="1 2", GPUS="0 1", STUDENT_BASELINE=0
    )
    assert [argv[0] for argv in commands] == ["CUDA_VISIBLE_DEVICES=0", "CUDA_VISIBLE_DEVICES=1"] * 3
    assert all(argv[1] == sys.executable for argv in commands)
    commands, _ = plan("objective", capsys, tmp_path, TASKS="rte", SEEDS="1", NPROC_PER_RUN=2)
    for argv in commands:
        assert os.path.basename(argv[0]) == "torchrun" or argv[1:3] == ["-m", "torch.distributed.run"]
        assert flag(argv, "--nproc_per_node") == "2" and "--standalone" in argv
        assert flag(argv, "--per_device_train_batch_size") == "16"  # the global batch stays 32
    commands, _ = plan(
        "teacher",
        capsys,
        tmp_path,
        TASKS="rte",
        SEEDS="1",
        MODES="hard soft",
        GPUS="0 1 2 3",
        NPROC_PER_RUN=2,
        STUDENT_BASELINE=0,
    )
    assert [argv[0] for argv in commands] == ["CUDA_VISIBLE_DEVICES=0,1", "CUDA_VISIBLE_DEVICES=2,3"]


def test_slurm_plan_names_its_sbatch_options(capsys, tmp_path):
    _, comments = plan(
        "objective",
        capsys,
        tmp_path,
        TASKS="rte",
        SEEDS="1",
        LAUNCHER="slurm",
        SLURM_PARTITION="gpu",
        SLURM_TIME="04:00:00",
        SLURM_CPUS_PER_RUN=8,
        SLURM_ARGS="--account=nlp --qos=high",
    )
    comments = [line for line in comments if "sbatch" in line]  # after the fp32-without-CUDA note
    assert comments[0].endswith(
        "sbatch --partition=gpu --time=04:00:00 --cpus-per-task=8 --gres=gpu:1 --account=nlp --qos=high"
    )
    _, comments = plan("objective", capsys, tmp_path, TASKS="rte", SEEDS="1", LAUNCHER="slurm", NPROC_PER_RUN=2)
    comments = [line for line in comments if "sbatch" in line]
    assert comments[0].endswith("sbatch --gres=gpu:2")
    _, comments = plan("objective", capsys, tmp_path, TASKS="rte", SEEDS="1", LAUNCHER="slurm", SLURM_GPUS_PER_RUN=0)
    comments = [line for line in comments if "sbatch" in line]
    assert comments[0].endswith("sbatch ")


@pytest.mark.parametrize(
    "settings, message",
    [
        (dict(NPROC_PER_RUN="two"), "NPROC_PER_RUN must be an integer"),
        (dict(BATCH=30, NPROC_PER_RUN=4), "BATCH=30 is not divisible by NPROC_PER_RUN=4"),
        (dict(GPUS="0 a"), "GPUS is a list of GPU indices"),
        (
            dict(RATIOS="1.5"),
            "--selection_ratio must be in (0, 1]",
        ),  # the entry points' own check, before anything runs
        (dict(SELECTIONS="entrpy"), "unknown --selection_strategy 'entrpy'"),
        (dict(LAUNCHER="pbs"), "LAUNCHER takes local or slurm"),
        (dict(LAUNCHER="slurm", GPUS="0 1"), "under Slurm set SLURM_GPUS_PER_RUN"),
        (
            dict(EXTRA_ARGS="--temperature 0"),
            "--temperature must be a positive number",
        ),  # EXTRA_ARGS are checked with the grid's flags
    ],
)
def test_bad_settings_fail_with_one_line(capsys, tmp_path, settings, message):
    code, out, err = run_sweep("data", capsys, DRY_RUN=1, TASKS="rte", SEEDS="1", OUT_ROOT=tmp_path, **settings)
    assert code == 2 and err.startswith("error: ") and message in err and err.count("\n") == 1


def test_usage(capsys):
    assert sweeps.main(["paper"], {}) == 2
    assert "usage: python -m dynamic_kd.sweeps" in capsys.readouterr().err
    assert sweeps.main(["data", "TASKS"], {}) == 2
    assert "is not NAME=VALUE" in capsys.readouterr().err


# --- the local launcher, for real --------------------------------------------------------


def test_a_failed_run_is_reported_and_the_others_go_on(capsys, tmp_path):
    out = tmp_path / "out"
    code, stdout, _ = run_sweep(
        "objective",
        capsys,
        OUT_ROOT=out,
        TASKS="sst2",
        SEEDS="1",
        STRATEGIES="none uncertainty",
        STUDENT_BASELINE=0,
        TEACHER=tmp_path / "missing",
        STUDENT_MODEL=tmp_path / "missing",
        DATA_ROOT=GLUE,
        GPUS="0 1",
    )
    assert code == 1
    assert stdout.count("FAILED") == 2 and "done: 0 ok, 2 failed, 0 skipped (of 2 runs)" in stdout
    assert "error: " in stdout  # the last line of each failed run's log is shown
    logs = sorted((out / "objective" / "sst2").glob("*.log"))
    assert [p.name for p in logs] == ["none-seed1.log", "uncertainty-seed1.log"]
    headers = sorted(p.read_text().splitlines()[0].split(" ")[3] for p in logs)
    assert headers == ["CUDA_VISIBLE_DEVICES=0", "CUDA_VISIBLE_DEVICES=1"]
    # each log ends with the run's exit code, wall time and peak RSS (a Python process holds more than 10 MB)
    end = sweeps.run_end(str(out / "objective" / "sst2" / "none-seed1"))
    assert end["exit"] == 2 and end["seconds"] > 0 and 0 < end["cpu_seconds"] and end["peak_rss_mb"] > 10
    assert logs[0].read_text().splitlines()[-1].startswith("=== exit 2 after ")


# --- Slurm, for real (bash scripts/test_slurm.sh) ----------------------------------------

JOBCOMP = os.environ.get("DKD_TEST_SLURM_JOBCOMP")


def jobcomp_records():
    """Slurm's job-completion log (jobcomp/filetxt): one dict of KEY=VALUE fields per ended job."""
    with open(JOBCOMP) as handle:
        return [dict(field.split("=", 1) for field in line.split() if "=" in field) for line in handle if line.strip()]


def wait_for_slurm(timeout=900):
    deadline = time.time() + timeout
    while subprocess.run(["squeue", "--me", "--noheader"], capture_output=True, text=True).stdout.strip():
        assert time.time() < deadline, subprocess.run(["squeue"], capture_output=True, text=True).stdout
        time.sleep(2)


@pytest.mark.skipif(not JOBCOMP, reason="needs a throwaway single-node Slurm: bash scripts/test_slurm.sh")
def test_tiny_sweep_through_slurm(capsys, tmp_path):
    base = make_tiny_bert(tmp_path / "base", num_layers=2)
    out = tmp_path / "out"
    settings = dict(
        LAUNCHER="slurm",
        SLURM_GPUS_PER_RUN=0,
        SLURM_CPUS_PER_RUN=1,
        SLURM_TIME="00:20:00",
        OUT_ROOT=out,
        TASKS="sst2",
        SEEDS="1",
        DATA_ROOT=GLUE,
        EPOCHS=1,
        BATCH=8,
        EVAL_BATCH=16,
        MAX_LEN=32,
        LR="1e-3",
        SAVE_ARGS="--save_strategy no",
        EXTRA_ARGS="--disable_tqdm true --use_cpu",
        BASE_MODEL=base,
        STUDENT_MODEL=base,
        STUDENT_LAYERS=1,
        TEACHER_SIZES="base",
        STAGES="teachers data",
        SELECTIONS="entropy",
        RATIOS="0.5",
        KD_ARGS="--skip_teacher_check",  # a 1-epoch tiny teacher is at chance on the fixture
    )
    before = len(jobcomp_records())
    code, stdout, err = run_sweep("all", capsys, **settings)
    assert code == 0, err
    arrays = re.findall(r"submitted job array (\d+): (\d+) runs", stdout)
    assert [n for _, n in arrays] == ["1", "3"]  # the teacher, then the student alone, plain KD and entropy selection
    wait_for_slurm()
    records = jobcomp_records()[before:]
    runs = [
        out / "teachers" / "sst2-base",
        out / "student" / "sst2" / "seed1",
        out / "data" / "sst2" / "kd-seed1",
        out / "data" / "sst2" / "entropy-r0.5-seed1",
    ]
    for run in runs:
        assert (run / "results.json").exists(), (run.parent / f"{run.name}.log").read_text()
        header = (run.parent / f"{run.name}.log").read_text().splitlines()[0]
        job, array = re.search(r"\[slurm job (\d+), array (\d+)_\d+", header).groups()
        ended = [r for r in records if r["JobId"] == job]
        assert [(r["JobState"], r["ExitCode"], r["ArrayJobId"]) for r in ended] == [("COMPLETED", "0:0", array)]
    teacher_array, student_array = (a for a, _ in arrays)
    teacher_end = max(r["EndTime"] for r in records if r["ArrayJobId"] == teacher_array)
    assert min(r["StartTime"] for r in records if r["ArrayJobId"] == student_array) >= teacher_end  # --dependency held

    # a rerun submits nothing: every run is finished
    code, stdout, _ = run_sweep("all", capsys, **settings)
    assert code == 0 and "nothing to submit" in stdout and stdout.count("(finished)") == 4
    time.sleep(2)
    assert len(jobcomp_records()) == before + len(records)
    assert not subprocess.run(["squeue", "--me", "--noheader"], capture_output=True, text=True).stdout.strip()


@pytest.mark.skipif(not JOBCOMP, reason="needs a throwaway single-node Slurm: bash scripts/test_slurm.sh")
def test_a_requeued_slurm_task_resumes_from_its_checkpoint(capsys, tmp_path):
    base = make_tiny_bert(tmp_path / "base", num_layers=2)
    out = tmp_path / "out"
    teacher = make_tiny_bert(tmp_path / "teacher", num_layers=2, seed=1)
    settings = dict(
        LAUNCHER="slurm",
        SLURM_GPUS_PER_RUN=0,
        SLURM_CPUS_PER_RUN=1,
        OUT_ROOT=out,
        TASKS="sst2",
        SEEDS="1",
        DATA_ROOT=GLUE,
        EPOCHS=2,
        BATCH=4,
        EVAL_BATCH=16,
        MAX_LEN=32,
        LR="1e-3",
        SAVE_ARGS="--save_strategy steps --save_steps 2",
        EXTRA_ARGS="--disable_tqdm true --use_cpu",
        STUDENT_MODEL=base,
        STUDENT_LAYERS=1,
        TEACHER=teacher,
        SELECTIONS="entropy",
        RATIOS="0.5",
        KD_BASELINE=0,
        STUDENT_BASELINE=0,
        KD_ARGS="--skip_teacher_check",  # the teacher is a random tiny BERT
    )
    # the first attempt waits after checkpoint-2 until it is killed: the requeue never races training
    hold = holding_python(tmp_path / "hold")
    code, stdout, err = run_sweep("data", capsys, **dict(settings, PYTHON=hold.python))
    assert code == 0, err
    array = re.search(r"submitted job array (\d+)", stdout).group(1)
    run = out / "data" / "sst2" / "entropy-r0.5-seed1"
    state = ["squeue", "--noheader", "--format=%T", f"--jobs={array}_0"]

    def queued():
        return subprocess.run(state, capture_output=True, text=True).stdout.strip() not in ("", "COMPLETING")

    wait_until_held(hold, queued, "the Slurm task")
    assert (run / "checkpoint-2" / "trainer_state.json").exists() and not (run / "results.json").exists()
    # what a preemption does: Slurm kills the task and queues it again; start it at once
    subprocess.run(["scontrol", "requeue", f"{array}_0"], check=True)
    deadline = time.time() + 300  # a kill takes seconds; this only stops a broken Slurm from hanging the suite
    while subprocess.run(state, capture_output=True, text=True).stdout.strip() != "PENDING":  # once the kill is done
        assert time.time() < deadline
        time.sleep(0.2)
    os.remove(hold.release)  # the second attempt trains through
    # not in the usual 2 minutes, but not in the second of the kill either: slurmd refuses a launch
    # whose credential is not newer (to the second) than the old one's revocation ("Job credential revoked")
    subprocess.run(["scontrol", "update", f"JobId={array}_0", "StartTime=now+2"], check=True)
    code, stdout, _ = run_sweep("data", capsys, **settings)  # meanwhile: queued runs are not submitted twice
    assert code == 0 and "already in Slurm job" in stdout and "nothing to submit" in stdout
    wait_for_slurm()
    log = (run.parent / f"{run.name}.log").read_text()
    assert (run / "results.json").exists(), log
    assert (
        len(re.findall(r"^=== \d{4}-", log, re.M)) == 2 and ", restart 1] " in log and "Resuming from checkpoint" in log
    )
    states = [r["JobState"] for r in jobcomp_records() if r.get("ArrayJobId") == array]
    assert states[-1] == "COMPLETED" and len(states) == 2  # the killed attempt, then the finished one


# --- profiles: the released scripts' settings by default, the library's on request ------------


def test_paper_sweeps_default_to_the_released_settings(capsys, tmp_path):
    out = tmp_path / "out"
    teachers, comments = plan("teachers", capsys, tmp_path, TASKS="rte")
    rates = [float(flag(argv, "--learning_rate") or sweeps._DEFAULTS["learning_rate"]) for argv in teachers]
    assert [flag(argv, "--model_name_or_path") for argv in teachers] == ["bert-base-uncased", "bert-large-uncased"]
    assert rates == [2e-5, 5e-5]
    for argv in teachers:
        assert flag(argv, "--warmup_steps") == "0.05" and "--pad_to_max_length" in argv
        assert flag(argv, "--per_device_eval_batch_size") == "64"
        assert flag(argv, "--per_device_train_batch_size") == "32"
        assert "--fp16" not in argv  # no CUDA here: fp32, and the plan says so
    assert any("fp16" in line and "CUDA" in line and "fp32" in line for line in comments)

    commands, _ = plan("teacher", capsys, tmp_path, TASKS="rte", SEEDS="1")
    assert dirs(commands) == [
        f"{out}/student-batch16/rte/seed1",
        f"{out}/teacher/rte/hard-seed1",
        f"{out}/teacher/rte/soft-seed1",
    ]
    for argv in commands:
        assert flag(argv, "--per_device_train_batch_size") == "16" and flag(argv, "--warmup_steps") == "0.05"
        assert "--pad_to_max_length" in argv and flag(argv, "--student_num_layers") == "6"
    for argv in commands[1:]:
        assert flag(argv, "--small_teacher_alpha") == "1" and flag(argv, "--large_teacher_alpha") == "1"
        assert flag(argv, "--kd_loss") == "mse" and flag(argv, "--teacher_cache") == "disk"

    commands, _ = plan("data", capsys, tmp_path, TASKS="rte", SEEDS="1")
    assert f"{out}/data/rte/margin-r0.5-seed1" in dirs(commands)
    assert {flag(argv, "--warmup_steps") for argv in commands} == {"0.1"}
    assert {flag(argv, "--per_device_train_batch_size") for argv in commands} == {"32"}

    commands, _ = plan("objective", capsys, tmp_path, TASKS="rte", SEEDS="1", STUDENT_BASELINE=0)
    assert [(flag(argv, "--strategy"), flag(argv, "--rep_normalization")) for argv in commands] == [
        (None, "sequence"),
        ("uncertainty", None),
    ]
    assert all(flag(argv, "--kd_rep_alpha") == "1.0" and flag(argv, "--warmup_steps") == "0.1" for argv in commands)


def test_library_profile_keeps_the_library_defaults_in_its_own_root(capsys, tmp_path):
    code, out, _ = run_sweep("teacher", capsys, DRY_RUN=1, PROFILE="library", TASKS="rte", SEEDS="1")
    commands = [shlex.split(line) for line in out.splitlines() if line.strip() and not line.startswith("#")]
    assert code == 0 and [flag(argv, "--uncertainty_mode") for argv in commands[1:]] == list(TEACHER_MODES)
    assert all(flag(argv, "--output_dir").startswith("outputs/library/") for argv in commands)
    for name in ("--warmup_steps", "--pad_to_max_length", "--kd_loss", "--small_teacher_alpha", "--fp16"):
        assert not any(name in argv for argv in commands)
    code, _, err = run_sweep("data", capsys, DRY_RUN=1, PROFILE="paper", TASKS="rte")
    assert code == 2 and err.startswith("error: PROFILE") and "released" in err and "library" in err


def test_released_fp16_on_cuda(capsys, tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    commands, _ = plan("data", capsys, tmp_path, TASKS="rte", SEEDS="1", SELECTIONS="margin", RATIOS="0.5")
    assert all("--fp16" in argv for argv in commands)


@pytest.mark.parametrize("sweep", ["teacher", "data", "objective", "all"])
def test_every_distillation_run_of_a_sweep_shares_the_teacher_store(capsys, tmp_path, sweep):
    for profile in ("released", "library"):
        commands, _ = plan(sweep, capsys, tmp_path, PROFILE=profile, TASKS="rte", SEEDS="1", RATIOS="0.5")
        distilled = [argv for argv in commands if argv[1] != "train_teacher.py"]
        assert distilled and all(flag(argv, "--teacher_cache") == "disk" for argv in distilled)
        assert not any("--teacher_cache" in argv for argv in commands if argv[1] == "train_teacher.py")
    commands, _ = plan(sweep, capsys, tmp_path, TASKS="rte", SEEDS="1", RATIOS="0.5", TEACHER_CACHE="memory")
    assert not any("--teacher_cache" in argv for argv in commands)  # memory is the entry points' default


def test_the_released_plan_is_accepted_by_the_entry_points(capsys, tmp_path):
    from dynamic_kd.arguments import DataArguments, DistillationArguments, ModelArguments, parse_args

    commands, _ = plan("all", capsys, tmp_path, TASKS="rte", SEEDS="1", RATIOS="0.5", SELECTIONS="margin")
    for argv in commands:
        kinds = (DataArguments, ModelArguments) + ((DistillationArguments,) if argv[1] != "train_teacher.py" else ())
        *_, training = parse_args(argv[2:], *kinds)
        assert training.get_warmup_steps(1000) in (50, 100) and not training.load_best_model_at_end


def test_fp32_without_cuda_is_said_once_per_sweep(capsys, tmp_path):
    _, comments = plan("all", capsys, tmp_path, TASKS="rte", SEEDS="1", RATIOS="0.5")
    assert sum("PRECISION=fp16 needs CUDA" in line for line in comments) == 1
