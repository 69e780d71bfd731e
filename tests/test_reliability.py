"""The four entry points as real processes: bad input, crash + resume, divergence, determinism,
and 2-process runs (gloo on CPU).

Every run here is `python <entry point> ...` in its own process, judged only by what a user sees:
exit code, stderr, and the files in --output_dir. Starting Python with torch + transformers costs
~6 s of CPU, and this file makes ~40 runs, so single-process runs go through a fork server: one
warm interpreter that has imported the package forks a child per run, and the child executes the
entry point as `__main__` with its own argv, stdout/stderr files, process group and exit code,
then exits through the normal interpreter teardown. The server computes nothing itself and runs
with OMP_NUM_THREADS=1, so no thread pool exists to break in the forked children. Runs that
must go through torchrun use the real torchrun.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from types import SimpleNamespace

import pytest
import torch
from conftest import FIXTURES, holding_python, make_tiny_bert, wait_until_held
from safetensors.torch import load_file, save_file

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SST2 = os.path.join(FIXTURES, "glue", "sst2")
STSB = os.path.join(FIXTURES, "glue", "stsb")
ENV = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "WANDB_DISABLED": "true",
    "OMP_NUM_THREADS": "1",
    "PYTHONUNBUFFERED": "1",
}
# Small and quiet: every run trains a 2-4 layer, hidden-32 BERT on 32 rows.
QUIET = ["--report_to", "none", "--disable_tqdm", "true", "--per_device_eval_batch_size", "16"]


# --- running entry points ------------------------------------------------------------------

SERVER = r"""
import json, os, runpy, signal, sys, time
import dynamic_kd.recipe  # torch, transformers, datasets: the imports every run shares


def child(job):
    os.setpgid(0, 0)  # own process group: a kill reaches the run and anything it started
    os.chdir(job["cwd"])
    for fd, path, flags in ((0, os.devnull, os.O_RDONLY),
                            (1, job["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
                            (2, job["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)):
        os.dup2(os.open(path, flags, 0o644), fd)
    os.environ.update(job["env"])
    sys.argv = [job["script"], *job["args"]]
    runpy.run_path(job["script"], run_name="__main__")  # ends in sys.exit(cli(main))


def wait(pid, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return {"rc": os.waitstatus_to_exitcode(status)}
        time.sleep(0.02)
    os.killpg(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return {"rc": None}


while line := sys.stdin.readline():
    job = json.loads(line)
    if "wait" in job:
        reply = wait(job["wait"], job["timeout"])
    else:
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            child(job)
            sys.exit(0)
        os.setpgid(pid, pid)
        reply = {"pid": pid}
    print(json.dumps(reply), flush=True)
"""


@dataclass
class Result:
    rc: int | None  # None: killed after the timeout; negative: killed by that signal
    stdout: str
    stderr: str

    @property
    def last_line(self) -> str:
        lines = [line for line in self.stderr.splitlines() if line.strip()]
        return lines[-1] if lines else ""


@dataclass
class Job:
    pid: int
    stdout: str
    stderr: str


class Launcher:
    """Client of the fork server: start(...) -> Job, wait(job) -> Result, run(...) = both."""

    def __init__(self, log_dir):
        self.log_dir, self.count = str(log_dir), 0
        self.server_log = open(os.path.join(self.log_dir, "server.log"), "w")
        self.server = subprocess.Popen(
            [sys.executable, "-c", SERVER],
            cwd=REPO,
            env={**os.environ, **ENV},
            text=True,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.server_log,
        )

    def _ask(self, request: dict) -> dict:
        self.server.stdin.write(json.dumps(request) + "\n")
        self.server.stdin.flush()
        line = self.server.stdout.readline()
        assert line, f"the fork server died; see {self.server_log.name}"
        return json.loads(line)

    def start(self, script, args, env=None, hold=None) -> Job:
        """hold: a `conftest.holding_python` whose script runs the entry point (held at its checkpoint)."""
        self.count += 1
        out = os.path.join(self.log_dir, f"{self.count:03d}-{script}")
        args = [os.path.join(REPO, script), *args] if hold else args
        job = {
            "script": hold.script if hold else os.path.join(REPO, script),
            "args": [str(a) for a in args],
            "cwd": REPO,
            "env": env or {},
            "stdout": out + ".out",
            "stderr": out + ".err",
        }
        return Job(self._ask(job)["pid"], job["stdout"], job["stderr"])

    def wait(self, job: Job, timeout=240) -> Result:
        rc = self._ask({"wait": job.pid, "timeout": timeout})["rc"]
        with open(job.stdout) as out, open(job.stderr) as err:
            return Result(rc, out.read(), err.read())

    def run(self, script, args, env=None, timeout=240) -> Result:
        return self.wait(self.start(script, args, env), timeout)

    def close(self):
        self.server.stdin.close()
        try:
            self.server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.server.kill()
        self.server_log.close()


def alive(pid: int) -> bool:
    """Whether a run the fork server started is still running (a zombie has ended)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_ranks(launcher, script, args, world_size=2, timeout=240) -> list[Result]:
    """A 2-process job: the environment torchrun gives its workers, forked from the warm server."""
    port = str(free_port())
    jobs = [
        launcher.start(
            script,
            args,
            env={
                "RANK": str(rank),
                "LOCAL_RANK": str(rank),
                "WORLD_SIZE": str(world_size),
                "LOCAL_WORLD_SIZE": str(world_size),
                "MASTER_ADDR": "127.0.0.1",
                "MASTER_PORT": port,
            },
        )
        for rank in range(world_size)
    ]
    return [launcher.wait(job, timeout) for job in jobs]


def torchrun(script, args, log, timeout=240) -> Result:
    """The real launcher (elastic agent + workers), as users start multi-process runs."""
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(free_port()),
        os.path.join(REPO, script),
        *map(str, args),
    ]
    with open(f"{log}.out", "w") as out, open(f"{log}.err", "w") as err:
        process = subprocess.Popen(
            command, cwd=REPO, env={**os.environ, **ENV}, stdout=out, stderr=err, start_new_session=True
        )
        try:
            rc = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            rc = None
    with open(f"{log}.out") as out, open(f"{log}.err") as err:
        return Result(rc, out.read(), err.read())


def read_results(output_dir) -> dict:
    with open(os.path.join(output_dir, "results.json")) as handle:
        return json.load(handle)


def weights(output_dir) -> dict:
    return load_file(os.path.join(output_dir, "model.safetensors"))


def assert_same_weights(a, b):
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    different = [name for name in wa if not torch.equal(wa[name], wb[name])]
    assert not different, f"weights differ in {different[:5]}"


def tree(folder) -> dict:
    """{relative path: bytes} of every file under `folder` ({} if it does not exist)."""
    if os.path.isfile(folder):
        with open(folder, "rb") as handle:
            return {".": handle.read()}
    files = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as handle:
                files[os.path.relpath(path, folder)] = handle.read()
    return files


def ok(result: Result) -> str:
    """Assertion message for a run that should have succeeded."""
    return f"exit {result.rc}\n--- stderr (end) ---\n{result.stderr[-4000:]}"


# --- models ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def launcher(tmp_path_factory):
    server = Launcher(tmp_path_factory.mktemp("runs"))
    yield server
    server.close()


def teacher_args(base, output_dir):
    # 10 epochs: enough for the tiny teacher to beat the majority class on the dev fixture
    # (0.875 vs 0.5), so distillation from it passes the teacher check.
    return [
        "--model_name_or_path",
        base,
        "--task_name",
        "sst2",
        "--data_dir",
        SST2,
        "--output_dir",
        output_dir,
        "--num_train_epochs",
        "10",
        "--per_device_train_batch_size",
        "8",
        "--learning_rate",
        "1e-3",
        "--save_strategy",
        "no",
        "--seed",
        "3",
        *QUIET,
    ]


def student_args(zoo, output_dir, *extra, epochs=1, batch=8):
    return [
        "--model_name_or_path",
        zoo.base,
        "--student_num_layers",
        "2",
        "--task_name",
        "sst2",
        "--data_dir",
        SST2,
        "--output_dir",
        output_dir,
        "--num_train_epochs",
        str(epochs),
        "--per_device_train_batch_size",
        str(batch),
        "--learning_rate",
        "1e-3",
        "--save_strategy",
        "no",
        "--seed",
        "5",
        *QUIET,
        *extra,
    ]


@pytest.fixture(scope="session")
def zoo(tmp_path_factory, tiny_bert, launcher):
    """Teachers for every check: a trained one, and folders that are wrong in one way each."""
    root = tmp_path_factory.mktemp("zoo")
    teacher = str(root / "teacher")
    result = launcher.run("train_teacher.py", teacher_args(tiny_bert, teacher))
    assert result.rc == 0, ok(result)
    zoo = SimpleNamespace(root=root, base=tiny_bert, teacher=teacher)
    # The trained teacher with its classes swapped and generic LABEL_i names: the label-order
    # check of its config cannot see the swap, the teacher check on dev examples must.
    zoo.permuted = _copy_teacher(teacher, root / "permuted")
    state = weights(zoo.permuted)
    for name in ("classifier.weight", "classifier.bias"):
        state[name] = state[name].flip(0).contiguous()
    save_file(state, os.path.join(zoo.permuted, "model.safetensors"), metadata={"format": "pt"})
    config_path = os.path.join(zoo.permuted, "config.json")
    with open(config_path) as handle:
        config = json.load(handle)
    config.update(id2label={"0": "LABEL_0", "1": "LABEL_1"}, label2id={"LABEL_0": 0, "LABEL_1": 1})
    with open(config_path, "w") as handle:
        json.dump(config, handle)
    # Random-head classifiers are valid teachers for the checks that never reach training; runs
    # that do train from one (zoo.wide, zoo.nan) pass --skip_teacher_check.
    zoo.wide = make_tiny_bert(root / "wide", num_layers=2, hidden=48, heads=2)
    zoo.three_labels = make_tiny_bert(root / "three_labels", num_layers=2, num_labels=3)
    # Another vocabulary and no tokenizer files: nothing says how it reads text.
    zoo.other_vocab = make_tiny_bert(root / "other_vocab", num_layers=2, extra_vocab=("zebra", "yak"))
    for name in os.listdir(zoo.other_vocab):
        if name.startswith(("tokenizer", "vocab", "special_tokens")):
            os.remove(os.path.join(zoo.other_vocab, name))
    zoo.truncated = _copy_teacher(teacher, root / "truncated")
    with open(os.path.join(zoo.truncated, "model.safetensors"), "r+b") as handle:
        handle.truncate(os.path.getsize(handle.name) // 3)
    zoo.nan = _copy_teacher(teacher, root / "nan")
    state = weights(zoo.nan)
    state["classifier.weight"] = torch.full_like(state["classifier.weight"], float("nan"))
    save_file(state, os.path.join(zoo.nan, "model.safetensors"), metadata={"format": "pt"})
    return zoo


def _copy_teacher(source, target) -> str:
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("checkpoint-*", "results.json"))
    return str(target)


# --- 1. bad input: one line on stderr, exit 2, no traceback, --output_dir untouched ---------


def _data_dir(root, name, train_text):
    folder = root / name
    folder.mkdir()
    (folder / "train.tsv").write_text(train_text)
    shutil.copy(os.path.join(SST2, "dev.tsv"), folder / "dev.tsv")
    return str(folder)


def _finished_output(folder):
    """A finished run folder: results.json plus a checkpoint, as a previous run left it."""
    os.makedirs(os.path.join(folder, "checkpoint-4"))
    with open(os.path.join(folder, "results.json"), "w") as handle:
        handle.write('{"metrics": {"accuracy": 0.75}}\n')
    with open(os.path.join(folder, "checkpoint-4", "trainer_state.json"), "w") as handle:
        handle.write("{}\n")


def _a_file(path):
    with open(path, "w") as handle:
        handle.write("notes\n")


def _latin1_data_dir(root):
    """A GLUE-format folder whose train.tsv was saved as Latin-1, as many older exports are."""
    folder = root / "latin1"
    folder.mkdir()
    (folder / "train.tsv").write_bytes(
        "sentence\tlabel\nthe movie was good\t1\nthe caf\u00e9 was bad\t0\n".encode("latin-1")
    )
    shutil.copy(os.path.join(SST2, "dev.tsv"), folder / "dev.tsv")
    return str(folder)


def _user_files(root, name, train_text):
    """--train_file/--validation_file pair: `train_text` as train.<ext of name>, the fixture's dev.tsv."""
    path = root / name
    path.write_text(train_text)
    return ["--train_file", str(path), "--validation_file", os.path.join(SST2, "dev.tsv")]


def _without(argv, flag):
    """`argv` without `flag` and its value."""
    argv = list(argv)
    position = argv.index(flag)
    return argv[:position] + argv[position + 2 :]


# Each case: (entry point, argv builder(zoo, tmp, out), words of the error, where it must fail).
# Stages: "args" = before any model is loaded, "models" = before the data is read,
# "data" = while reading the data (before training).
BAD_INPUT = {
    "unknown_task": (
        "train_teacher.py",
        lambda z, t, o: (
            teacher_args(z.base, o)[:2] + ["--task_name", "sst3", "--data_dir", SST2, "--output_dir", o, *QUIET]
        ),
        "unknown --task_name 'sst3'",
        "args",
    ),
    "data_dir_without_files": (
        "train_teacher.py",
        lambda z, t, o: _with(teacher_args(z.base, o), "--data_dir", str(t)),
        "lacks train.tsv",
        "data",
    ),
    "missing_column": (
        "train_teacher.py",
        lambda z, t, o: _with(teacher_args(z.base, o), "--data_dir", _data_dir(t, "d", "text\tlabel\nthe movie\t1\n")),
        "lacks column 'sentence'",
        "data",
    ),
    "label_outside_set": (
        "dynamic_data.py",
        lambda z, t, o: _with(
            student_args(z, o, "--teacher", z.teacher),
            "--data_dir",
            _data_dir(t, "d", "sentence\tlabel\nthe movie\t1\na film\t7\n"),
        ),
        "label '7' is not a sst2 label",
        "data",
    ),
    "empty_training_file": (
        "train_teacher.py",
        lambda z, t, o: _with(teacher_args(z.base, o), "--data_dir", _data_dir(t, "d", "")),
        "no labeled data rows",
        "data",
    ),
    "selection_ratio_zero": (
        "dynamic_data.py",
        lambda z, t, o: student_args(
            z, o, "--teacher", z.teacher, "--selection_strategy", "entropy", "--selection_ratio", "0"
        ),
        "--selection_ratio must be in (0, 1]",
        "args",
    ),
    "selection_ratio_above_one": (
        "dynamic_data.py",
        lambda z, t, o: student_args(
            z, o, "--teacher", z.teacher, "--selection_strategy", "entropy", "--selection_ratio", "1.5"
        ),
        "--selection_ratio must be in (0, 1]",
        "args",
    ),
    "unknown_selection_strategy": (
        "dynamic_data.py",
        lambda z, t, o: student_args(z, o, "--teacher", z.teacher, "--selection_strategy", "entropi"),
        "unknown --selection_strategy 'entropi'",
        "args",
    ),
    "unknown_uncertainty_mode": (
        "dynamic_teacher.py",
        lambda z, t, o: student_args(
            z, o, "--small_teacher", z.teacher, "--large_teacher", z.teacher, "--uncertainty_mode", "hardest"
        ),
        "unknown --uncertainty_mode 'hardest'",
        "args",
    ),
    "unknown_objective_strategy": (
        "dynamic_objective.py",
        lambda z, t, o: student_args(z, o, "--teacher", z.teacher, "--strategy", "certainty"),
        "unknown --strategy 'certainty'",
        "args",
    ),
    "teacher_does_not_exist": (
        "dynamic_data.py",
        lambda z, t, o: student_args(z, o, "--teacher", str(t / "nowhere")),
        "does not exist",
        "models",
    ),
    "teacher_not_a_model_folder": (
        "dynamic_data.py",
        lambda z, t, o: student_args(z, o, "--teacher", SST2),
        "is not a model folder",
        "models",
    ),
    "teacher_num_labels": (
        "dynamic_data.py",
        lambda z, t, o: student_args(z, o, "--teacher", z.three_labels),
        "predicts 3 labels but sst2 has 2",
        "models",
    ),
    "teacher_without_tokenizer": (
        "dynamic_data.py",
        lambda z, t, o: student_args(z, o, "--teacher", z.other_vocab),
        "save the teacher's tokenizer next to it",
        "models",
    ),
    "student_zero_layers": (
        "dynamic_data.py",
        lambda z, t, o: _with(student_args(z, o, "--teacher", z.teacher), "--student_num_layers", "0"),
        "--student_num_layers must be at least 1",
        "args",
    ),
    "student_too_many_layers": (
        "train_teacher.py",
        lambda z, t, o: teacher_args(z.base, o) + ["--student_num_layers", "9"],
        "--student_num_layers 9 is out of range",
        "models",
    ),
    "hidden_sizes_without_projection": (
        "dynamic_objective.py",
        lambda z, t, o: student_args(z, o, "--teacher", z.wide, "--rep_projection", "False"),
        "needs equal hidden sizes",
        "models",
    ),
    "entropy_on_regression": (
        "dynamic_data.py",
        lambda z, t, o: _with(
            student_args(z, o, "--teacher", z.teacher, "--selection_strategy", "entropy", "--selection_ratio", "0.5"),
            "--task_name",
            "stsb",
            "--data_dir",
            STSB,
        ),
        "stsb is a regression task",
        "args",
    ),
    "finished_output_dir": (
        "dynamic_data.py",
        lambda z, t, o: _finished_output(o) or student_args(z, o, "--teacher", z.teacher),
        "already holds a finished results.json",
        "args",
    ),
    "output_dir_is_a_file": (
        "train_teacher.py",
        lambda z, t, o: _a_file(o) or teacher_args(z.base, o),
        "is a file",
        "args",
    ),
    "overwrite_keeps_finished_run_on_error": (
        "dynamic_data.py",
        lambda z, t, o: (
            _finished_output(o) or student_args(z, o, "--teacher", str(t / "nowhere"), "--overwrite_output_dir")
        ),
        "does not exist",
        "models",
    ),
    "truncated_teacher_weights": (
        "dynamic_data.py",
        lambda z, t, o: student_args(z, o, "--teacher", z.truncated),
        "unreadable weights",
        "models",
    ),
    # files the loader cannot read (issue 10, item 7)
    "data_file_not_utf8": (
        "train_teacher.py",
        lambda z, t, o: _with(teacher_args(z.base, o), "--data_dir", _latin1_data_dir(t)),
        "line 3 is not valid UTF-8 (byte 0xe9",
        "data",
    ),
    "data_line_not_a_json_object": (
        "train_teacher.py",
        lambda z, t, o: (
            _without(teacher_args(z.base, o), "--data_dir")
            + _user_files(t, "train.jsonl", '{"sentence": "good", "label": 1}\n["bad", 0]\n')
        ),
        "line 2 is not a JSON object",
        "data",
    ),
    "data_ragged_row": (
        "train_teacher.py",
        lambda z, t, o: _with(
            teacher_args(z.base, o), "--data_dir", _data_dir(t, "d", "sentence\tlabel\ngood\t1\nbad\tmovie\t0\n")
        ),
        "line 3 has 3 fields but the header has 2",
        "data",
    ),
    "data_header_only": (
        "train_teacher.py",
        lambda z, t, o: _with(teacher_args(z.base, o), "--data_dir", _data_dir(t, "d", "sentence\tlabel\n")),
        "no labeled data rows",
        "data",
    ),
    "data_file_is_a_folder": (
        "train_teacher.py",
        lambda z, t, o: (
            (t / "train.csv").mkdir()
            or _without(teacher_args(z.base, o), "--data_dir")
            + ["--train_file", str(t / "train.csv"), "--validation_file", os.path.join(SST2, "dev.tsv")]
        ),
        "is a folder",
        "data",
    ),
    # numeric flags with no meaningful value, and flags the trainer would not honour (items 3, 7)
    "temperature_zero": (
        "dynamic_data.py",
        lambda z, t, o: student_args(z, o, "--teacher", z.teacher, "--temperature", "0"),
        "--temperature must be a positive number",
        "args",
    ),
    "batch_size_zero": (
        "train_teacher.py",
        lambda z, t, o: _with(teacher_args(z.base, o), "--per_device_train_batch_size", "0"),
        "--per_device_train_batch_size must be a positive number",
        "args",
    ),
    "epochs_zero": (
        "train_teacher.py",
        lambda z, t, o: _with(teacher_args(z.base, o), "--num_train_epochs", "0"),
        "--num_train_epochs must be a positive number",
        "args",
    ),
    "negative_alpha": (
        "dynamic_objective.py",
        lambda z, t, o: student_args(z, o, "--teacher", z.teacher, "--kd_kl_alpha", "-1"),
        "--kd_kl_alpha must be a number >= 0",
        "args",
    ),
    "teacher_batch_size_zero": (
        "dynamic_data.py",
        lambda z, t, o: student_args(z, o, "--teacher", z.teacher, "--teacher_batch_size", "0"),
        "--teacher_batch_size must be at least 1",
        "args",
    ),
    "label_smoothing_on_regression": (
        "train_teacher.py",
        lambda z, t, o: (
            _with(teacher_args(z.base, o), "--task_name", "stsb", "--data_dir", STSB)
            + ["--label_smoothing_factor", "0.1"]
        ),
        "stsb is a regression task",
        "args",
    ),
    "unhonoured_training_flag": (
        "dynamic_data.py",
        lambda z, t, o: student_args(z, o, "--teacher", z.teacher, "--use_liger_kernel"),
        "--use_liger_kernel is not supported",
        "args",
    ),
    "epoch_scope_without_selection": (
        "dynamic_data.py",
        lambda z, t, o: student_args(z, o, "--teacher", z.teacher, "--selection_scope", "epoch"),
        "--selection_scope epoch needs a --selection_strategy",
        "args",
    ),
    # a teacher whose classes are in another order than the task's (item 5): caught before training
    "teacher_with_permuted_labels": (
        "dynamic_data.py",
        lambda z, t, o: student_args(z, o, "--teacher", z.permuted),
        "no better than always predicting the majority class",
        "data",
    ),
    "unwritable_teacher_cache_dir": (
        "dynamic_data.py",
        lambda z, t, o: student_args(
            z,
            o,
            "--teacher",
            z.teacher,
            "--teacher_cache",
            "disk",
            "--teacher_cache_dir",
            os.path.join(SST2, "train.tsv", "cache"),
        ),
        "--teacher_cache_dir",
        "args",
    ),
}


def _with(argv, *pairs):
    """`argv` with the given flags' values replaced (flags must already be present)."""
    argv = list(argv)
    for flag, value in zip(pairs[::2], pairs[1::2]):
        argv[argv.index(flag) + 1] = value
    return argv


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_is_one_line_and_touches_nothing(case, zoo, launcher, tmp_path):
    script, make_argv, words, stage = BAD_INPUT[case]
    output_dir = str(tmp_path / "out")
    argv = make_argv(zoo, tmp_path, output_dir)
    before = tree(output_dir)

    result = launcher.run(script, argv)

    assert result.rc == 2, ok(result)
    assert "Traceback" not in result.stderr, result.stderr[-4000:]
    assert result.last_line.startswith("error: "), result.stderr[-2000:]
    assert words in result.last_line
    assert [line for line in result.stderr.splitlines() if line.startswith("error:")] == [result.last_line]
    assert ";" in result.last_line, "the message should name the fix after a ';'"
    assert tree(output_dir) == before  # nothing created, overwritten or removed
    if not before:
        assert not os.path.exists(output_dir)
    # Fails as early as it can: flag mistakes before loading models, model mistakes before the data.
    if stage == "args":
        assert "dynamic_kd.models: student:" not in result.stderr
    if stage in ("args", "models"):
        assert "dynamic_kd.data: loaded" not in result.stderr
    assert "train_runtime" not in result.stdout + result.stderr


def test_teacher_scores_are_checked_and_reported(zoo, launcher, tmp_path):
    """Each teacher is scored on the dev examples before training; results.json keeps the scores."""
    good = str(tmp_path / "good")
    result = launcher.run("dynamic_data.py", student_args(zoo, good, "--teacher", zoo.teacher))
    assert result.rc == 0, ok(result)
    assert f"teacher teacher ({zoo.teacher}) on the first 16 validation examples: accuracy 0.875" in result.stderr
    assert read_results(good)["teacher_metrics"] == {
        "teacher": {"accuracy": 0.875, "majority_class_rate": 0.5, "examples": 16}
    }

    # the override trains anyway, warns, and still reports the (bad) scores
    permuted = str(tmp_path / "permuted")
    result = launcher.run(
        "dynamic_data.py", student_args(zoo, permuted, "--teacher", zoo.permuted, "--skip_teacher_check")
    )
    assert result.rc == 0, ok(result)
    assert "--skip_teacher_check: distilling from it anyway" in result.stderr
    assert read_results(permuted)["teacher_metrics"]["teacher"]["accuracy"] == 0.125


# --- 2. crash and resume ----------------------------------------------------------------------


def resume_args(zoo, output_dir):
    # 2 epochs x 16 steps of 2 rows, a checkpoint every 2 steps: a long window to kill the run in.
    return student_args(
        zoo,
        output_dir,
        "--teacher",
        zoo.teacher,
        "--selection_strategy",
        "entropy",
        "--selection_ratio",
        "0.5",
        "--save_strategy",
        "steps",
        "--save_steps",
        "2",
        "--save_total_limit",
        "2",
        "--logging_steps",
        "1",
        epochs=2,
        batch=2,
    )


@pytest.mark.parametrize("cache", ["memory", "disk"])
def test_killed_run_resumes_to_the_same_result(zoo, launcher, tmp_path, cache):
    reference, resumed = str(tmp_path / "reference"), str(tmp_path / "resumed")
    # disk: each run gets its own store, so the resumed run cannot borrow the reference's outputs
    store = (
        (lambda name: ["--teacher_cache", "disk", "--teacher_cache_dir", str(tmp_path / name)])
        if cache == "disk"
        else (lambda name: [])
    )
    result = launcher.run("dynamic_data.py", resume_args(zoo, reference) + store("reference-store"))
    assert result.rc == 0, ok(result)

    hold = holding_python(tmp_path / "hold")  # the run waits after checkpoint-2 until it is killed
    job = launcher.start("dynamic_data.py", resume_args(zoo, resumed) + store("resumed-store"), hold=hold)
    wait_until_held(hold, lambda: alive(job.pid), "the run")
    os.killpg(job.pid, signal.SIGKILL)
    killed = launcher.wait(job)
    assert killed.rc == -signal.SIGKILL, ok(killed)
    assert not os.path.exists(os.path.join(resumed, "results.json"))  # a killed run is never "finished"

    again = launcher.run("dynamic_data.py", resume_args(zoo, resumed) + store("resumed-store"))
    assert again.rc == 0, ok(again)
    resumed_line = next((line for line in again.stderr.splitlines() if "Resuming from checkpoint" in line), "")
    assert os.path.join(resumed, "checkpoint-") in resumed_line, again.stderr[-3000:]
    assert "cached outputs" in again.stderr  # the teacher outputs came back with the checkpoint

    expected, actual = read_results(reference), read_results(resumed)
    assert actual["metrics"] == expected["metrics"]
    if cache == "memory":
        assert actual["teacher_forward_examples"] == expected["teacher_forward_examples"]
    else:  # rows the killed run stored after its last checkpoint stay in the store: never recomputed
        assert "in the shared store" in again.stderr
        assert actual["teacher_forward_examples"] <= expected["teacher_forward_examples"]
    assert_same_weights(reference, resumed)  # bitwise: CPU, fp32, same seed


def test_resume_skips_a_half_written_checkpoint(tmp_path):
    from dynamic_kd.recipe import last_complete_checkpoint

    for step, state in ((2, "{}"), (4, '{"global_st'), (6, None)):  # 4: truncated, 6: no trainer_state
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        if state is not None:
            (folder / "trainer_state.json").write_text(state)
    (tmp_path / "checkpoint-9.tmp").mkdir()
    assert last_complete_checkpoint(str(tmp_path)) == str(tmp_path / "checkpoint-2")
    assert last_complete_checkpoint(str(tmp_path / "checkpoint-6")) is None


# --- 3. NaN / Inf -------------------------------------------------------------------------------


def test_nan_teacher_stops_with_one_line_and_exit_3(zoo, launcher, tmp_path):
    output_dir = str(tmp_path / "out")
    # --skip_teacher_check: the teacher check would catch these NaN logits before training; this
    # test is about a loss that turns NaN during training.
    result = launcher.run(
        "dynamic_data.py",
        student_args(zoo, output_dir, "--teacher", zoo.nan, "--logging_steps", "1", "--skip_teacher_check"),
    )

    assert result.rc == 3, ok(result)
    assert "Traceback" not in result.stderr, result.stderr[-4000:]
    assert result.last_line.startswith("error: loss is nan at step "), result.stderr[-2000:]
    assert "kd nan" in result.last_line or "ce nan" in result.last_line
    assert not os.path.exists(os.path.join(output_dir, "results.json"))


# --- 4. determinism ------------------------------------------------------------------------------

DETERMINISM = {
    "dynamic_teacher.py": lambda z, o: student_args(
        z, o, "--small_teacher", z.teacher, "--large_teacher", z.wide, "--skip_teacher_check"
    ),
    "dynamic_data.py": lambda z, o: student_args(
        z, o, "--teacher", z.teacher, "--selection_strategy", "random", "--selection_ratio", "0.5"
    ),
    "dynamic_objective.py": lambda z, o: student_args(
        z, o, "--teacher", z.wide, "--strategy", "uncertainty", "--skip_teacher_check"
    ),
}


def test_train_teacher_is_deterministic(zoo, launcher, tmp_path):
    again = str(tmp_path / "again")
    result = launcher.run("train_teacher.py", teacher_args(zoo.base, again))
    assert result.rc == 0, ok(result)
    assert read_results(again)["metrics"] == read_results(zoo.teacher)["metrics"]
    assert_same_weights(zoo.teacher, again)


@pytest.mark.parametrize("script", list(DETERMINISM))
def test_distillation_is_deterministic(script, zoo, launcher, tmp_path):
    runs = [str(tmp_path / name) for name in ("first", "second")]
    for output_dir in runs:
        result = launcher.run(script, DETERMINISM[script](zoo, output_dir))
        assert result.rc == 0, ok(result)
    first, second = map(read_results, runs)
    assert first["metrics"] == second["metrics"]
    assert first["teacher_forward_examples"] == second["teacher_forward_examples"]
    assert_same_weights(*runs)


# --- 5. multi-process -----------------------------------------------------------------------------

DDP = ["--ddp_backend", "gloo", "--use_cpu"]
TORCHRUN = {
    # script: (argv builder, expected teacher_forward_examples over both ranks)
    "train_teacher.py": (lambda z, o: teacher_args(z.base, o) + DDP, 0),
    # hard mode routes each row to exactly one teacher; the memory cache computes it once
    "dynamic_teacher.py": (
        lambda z, o: student_args(
            z, o, "--small_teacher", z.teacher, "--large_teacher", z.wide, "--skip_teacher_check", *DDP, batch=4
        ),
        32,
    ),
    # 2 epochs: caches are all-gathered at epoch end, so epoch 2 needs no teacher forward
    "dynamic_data.py": (lambda z, o: student_args(z, o, "--teacher", z.teacher, *DDP, epochs=2, batch=4), 32),
    # full-token hidden states are never cached: one forward per row
    "dynamic_objective.py": (
        lambda z, o: student_args(
            z, o, "--teacher", z.wide, "--strategy", "uncertainty", "--skip_teacher_check", *DDP, batch=4
        ),
        32,
    ),
}


@pytest.mark.parametrize("script", list(TORCHRUN))
def test_torchrun_two_processes(script, zoo, tmp_path):
    make_argv, forwards = TORCHRUN[script]
    output_dir = str(tmp_path / "out")
    result = torchrun(script, make_argv(zoo, output_dir), tmp_path / "torchrun")

    assert result.rc == 0, ok(result)
    assert "Traceback" not in result.stderr, result.stderr[-4000:]
    results = read_results(output_dir)
    assert results["train_examples"] == 32
    assert results["teacher_forward_examples"] == forwards
    # rank 0 alone finishes the run: one summary line, one results.json, no temp file left
    assert sum(f"-> {output_dir}" in line for line in result.stderr.splitlines()) == 1
    assert [name for name in os.listdir(output_dir) if name.startswith("results.json")] == ["results.json"]


def test_two_processes_fill_and_reuse_one_disk_store(zoo, launcher, tmp_path):
    runs = [str(tmp_path / name) for name in ("first", "second")]
    for output_dir, forwards in zip(runs, (32, 0)):
        argv = student_args(
            zoo,
            output_dir,
            "--teacher",
            zoo.teacher,
            "--teacher_cache",
            "disk",
            "--teacher_cache_dir",
            str(tmp_path / "stores"),
            *DDP,
            epochs=2,
            batch=4,
        )
        results = run_ranks(launcher, "dynamic_data.py", argv)
        for rank, result in enumerate(results):
            assert result.rc == 0, f"rank {rank}: {ok(result)}"
        assert read_results(output_dir)["teacher_forward_examples"] == forwards
        # the teacher check too is paid once: the second run reads its scores from the store
        assert ("dev scores from" in results[0].stderr) == (forwards == 0)
    assert read_results(runs[0])["metrics"] == read_results(runs[1])["metrics"]
    assert read_results(runs[0])["teacher_metrics"] == read_results(runs[1])["teacher_metrics"]
    assert_same_weights(*runs)


def test_two_process_teardown_is_clean_every_time(zoo, launcher, tmp_path):
    """A bare gloo teardown aborted ~1 run in 5; every run must now exit 0 on every rank."""
    for attempt in range(5):
        output_dir = str(tmp_path / f"run{attempt}")
        results = run_ranks(
            launcher, "dynamic_data.py", student_args(zoo, output_dir, "--teacher", zoo.teacher, *DDP, batch=4)
        )
        for rank, result in enumerate(results):
            assert result.rc == 0, f"attempt {attempt} rank {rank}: {ok(result)}"
        assert read_results(output_dir)["teacher_forward_examples"] == 32


def test_one_failing_rank_ends_the_job_instead_of_hanging(zoo, launcher, tmp_path):
    """Rank 1 fails while rank 0 trains on: rank 1 must not wait for rank 0 at a barrier."""
    output_dir = str(tmp_path / "out")
    argv = student_args(
        zoo,
        output_dir,
        "--teacher",
        zoo.teacher,
        "--save_strategy",
        "steps",
        "--save_steps",
        "2",
        *DDP,
        epochs=2,
        batch=4,
    )
    for rank, result in enumerate(run_ranks(launcher, "dynamic_data.py", argv)):
        assert result.rc == 0, f"rank {rank}: {ok(result)}"
    # Back to a run killed after its first checkpoint, whose rank-1 RNG file got corrupted.
    for name in os.listdir(output_dir):
        if name != "checkpoint-2":
            path = os.path.join(output_dir, name)
            shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
    with open(os.path.join(output_dir, "checkpoint-2", "rng_state_1.pth"), "wb") as handle:
        handle.write(b"not a torch file")

    # A hang lasts --ddp_timeout (30 min by default); a failing job ends in seconds, or a few
    # minutes on a busy machine: 10 minutes tell the two apart without guessing the machine's speed.
    result = torchrun("dynamic_data.py", argv, tmp_path / "torchrun", timeout=600)

    assert result.rc not in (0, None), ok(result)  # None: still hanging after 10 minutes
    assert not os.path.exists(os.path.join(output_dir, "results.json"))
