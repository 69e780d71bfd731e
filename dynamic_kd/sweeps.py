"""The sweep launcher: a grid's runs turned into commands, run locally or as Slurm job arrays (docs/sweeps.md).

SWEEP is a key of `SWEEPS` in scripts/grids.py (scripts/*.sh call this); its settings (`VARIABLES` and the grid's
own) come from the environment or NAME=VALUE; DRY_RUN=1 prints the commands. Hand-written sbatch, not submitit:
a run is a command line, not a pickled function, and the dependency, the requeue and finding our queued runs
would still be ours to write.
"""

import functools
import importlib.util
import itertools
import json
import logging
import os
import queue
import re
import shlex
import string
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields

import torch

from dynamic_kd.arguments import DataArguments, DistillationArguments, ModelArguments, RunArguments, _OneLineErrorParser
from dynamic_kd.errors import ConfigError
from dynamic_kd.files import write_atomic
from dynamic_kd.precision import choose_precision
from dynamic_kd.runs import RESULTS_FILE

logger = logging.getLogger(__name__)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Every sweep's variables: name -> default; "$NAME" refers to a variable above it.
VARIABLES = {
    "OUT_ROOT": "outputs",
    "MAX_LEN": "128",
    "BATCH": "32",
    "EVAL_BATCH": "128",
    "PRECISION": "fp32",
    "REPORT_TO": "none",
    "SAVE_ARGS": "--save_strategy epoch --save_total_limit 1",
    "DATA_ROOT": "",
    "EXTRA_ARGS": "",
    "KD_ARGS": "",
    "LAUNCHER": "local",
    "PYTHON": sys.executable,
    "GPUS": "",
    "NPROC_PER_RUN": "",
    "TORCHRUN": "",
    "DRY_RUN": "0",
    "SHOW_OUTPUT": "0",
    "SLURM_PARTITION": "",
    "SLURM_TIME": "",
    "SLURM_GPUS_PER_RUN": "",
    "SLURM_CPUS_PER_RUN": "",
    "SLURM_MEM_PER_RUN": "",
    "SLURM_ARRAY_LIMIT": "",
    "SLURM_ARGS": "",
}


@functools.cache
def grids():
    """scripts/grids.py (beside the shell scripts, not in the package)."""
    spec = importlib.util.spec_from_file_location("dynamic_kd_grids", os.path.join(REPO, "scripts", "grids.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class Sweep:
    build: object  # (Settings) -> stages, each a list of Jobs
    reports: tuple  # folders below OUT_ROOT to print a report command for
    defaults: dict  # its own variables and defaults
    profiles: dict = None  # PROFILE -> {"*": every sweep's defaults, sweep name: its own}


class Settings(dict):
    """The environment's non-empty values over the defaults, "$NAME" expanded."""

    @classmethod
    def of(cls, env, name):
        sweep = grids().SWEEPS[name]
        defaults = {**VARIABLES, **sweep.defaults}
        if sweep.profiles:
            profile = env.get("PROFILE") or defaults["PROFILE"]
            if profile not in sweep.profiles:
                raise ConfigError(f"PROFILE takes {' or '.join(sweep.profiles)}, got '{profile}'")
            defaults.update({**sweep.profiles[profile]["*"], **sweep.profiles[profile].get(name, {})})
        return cls(env, defaults)

    def __init__(self, env, defaults):
        super().__init__()
        self.env = env
        for name, default in defaults.items():
            self[name] = env.get(name) or string.Template(default).safe_substitute(self)

    def words(self, name):
        return self[name].replace(",", " ").split()

    def on(self, name):
        return self[name].lower() in ("1", "true", "yes")

    def int(self, name, minimum=1, unset=None):
        if unset is not None and not self[name]:
            return unset
        if not self[name].isdigit() or int(self[name]) < minimum:
            raise ConfigError(f"{name} must be an integer >= {minimum}, got '{self[name]}'")
        return int(self[name])


@dataclass(frozen=True)
class Job:
    out: str
    script: str
    flags: tuple

    @property
    def path(self):
        return os.path.join(REPO, self.out)

    def finished(self):
        return os.path.exists(os.path.join(self.path, RESULTS_FILE))


# --- flags

_KD_ARGUMENTS = (DataArguments, ModelArguments, DistillationArguments)
_DEFAULTS = {f.name: f.default for cls in (*_KD_ARGUMENTS, RunArguments) for f in fields(cls)}


def _same(a, b):
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return str(a) == str(b)


def flags(**values):
    """``--name value`` for each value but None that is not the entry points' default."""
    out = []
    for name, value in values.items():
        if value not in (None, "") and not _same(value, _DEFAULTS.get(name)):
            out += [f"--{name}", str(value)]
    return out


def train_flags(s, task, seed, lr, epochs, data_dir=None, files=None):
    """Task, data, schedule and bookkeeping flags; BATCH is the global batch."""
    nproc = s.int("NPROC_PER_RUN", unset=1)
    batch = s.int("BATCH")
    if batch % nproc:
        raise ConfigError(f"BATCH={batch} is not divisible by NPROC_PER_RUN={nproc}, the processes that share it")
    if data_dir is None:
        data_dir = s.env.get(f"DATA_DIR_{task.upper().replace('-', '_')}") or (
            os.path.join(s["DATA_ROOT"], task) if s["DATA_ROOT"] else None
        )
    out = ["--task_name", task] + flags(
        data_dir=None if files else data_dir,
        train_file=files and files[0],
        validation_file=files and files[1],
        max_seq_length=s["MAX_LEN"],
        num_train_epochs=epochs,
        learning_rate=lr,
        per_device_train_batch_size=batch // nproc,
        per_device_eval_batch_size=s["EVAL_BATCH"],
        seed=seed,
    )
    if s["REPORT_TO"] not in ("", "none"):
        out += ["--report_to", s["REPORT_TO"]]
    return out + shlex.split(s["SAVE_ARGS"])


def model_flags(model, layers=None, init=None):
    return flags(model_name_or_path=model, student_num_layers=layers, student_layer_init=init)


@functools.cache
def _log_once(message):  # `all` resolves the settings of each of its sweeps
    logger.info(message)


def precision_flags(s):
    """PRECISION as flags; fp16 (the released scripts') is fp32 without CUDA."""
    if s["PRECISION"] == "auto":
        s["PRECISION"], why = choose_precision()
        logger.info("PRECISION=auto: %s (%s)", s["PRECISION"], why)
    cuda = torch.cuda.is_available()
    if s["PRECISION"] == "fp16" and not cuda:
        _log_once("PRECISION=fp16 needs CUDA, which this machine lacks: the runs train in fp32")
        s["PRECISION"] = "fp32"
    choices = {"fp32": [], "fp16": ["--fp16"], "bf16": ["--bf16"] + ([] if cuda else ["--use_cpu"])}
    if s["PRECISION"] not in choices:
        raise ConfigError(f"PRECISION takes auto, bf16, fp16 or fp32, got '{s['PRECISION']}'")
    return choices[s["PRECISION"]]


# --- planning


def extra_flags(job, s):
    return shlex.split(s["EXTRA_ARGS"]) + (shlex.split(s["KD_ARGS"]) if job.script != "train_teacher.py" else [])


def command(job, s):
    launcher = [s["PYTHON"]]
    if s["NPROC_PER_RUN"]:
        tool = os.path.join(os.path.dirname(s["PYTHON"]), "torchrun")
        torchrun = shlex.split(s["TORCHRUN"]) or (
            [tool] if os.path.exists(tool) else [*launcher, "-m", "torch.distributed.run"]
        )
        launcher = torchrun + ["--standalone", "--nproc_per_node", str(s.int("NPROC_PER_RUN"))]
    return launcher + [job.script, *job.flags, "--output_dir", job.out] + extra_flags(job, s)


def not_applicable(job, parser, s):
    """Why the task cannot run this setting (the entry points' own check), or None."""
    if job.script == "train_teacher.py":
        return None
    argv = [*job.flags, *extra_flags(job, s)]
    data_args, _, kd_args, _ = parser.parse_args_into_dataclasses(argv, return_remaining_strings=True)
    try:
        kd_args.check_task(data_args.task)
    except ConfigError as error:
        return f"not applicable: {str(error).split(';')[0]}"


def plan(stages, s):
    """(stages of jobs to run, notes on the finished and not-applicable runs)."""
    parser, todo, notes, seen = _OneLineErrorParser(_KD_ARGUMENTS), [], [], set()
    for number, stage in enumerate(stages):
        todo.append([])
        for job in stage:
            if job.out not in seen:
                seen.add(job.out)
                reason = "finished" if job.finished() else not_applicable(job, parser, s)
                if reason:
                    notes.append((number, f"skip {job.out} ({reason})"))
                else:
                    todo[-1].append(job)
    return todo, notes


def gpu_slots(s):
    """CUDA_VISIBLE_DEVICES of each parallel run: GPUS in groups of NPROC_PER_RUN, or [None]."""
    gpus = s.words("GPUS")
    if not gpus:
        return [None]
    if not all(g.isdigit() for g in gpus):
        raise ConfigError(f"GPUS is a list of GPU indices like \"0 1 2 3\", got '{s['GPUS']}'")
    per = s.int("NPROC_PER_RUN", unset=1)
    if len(gpus) < per:
        raise ConfigError(f"NPROC_PER_RUN={per} needs at least {per} GPUs, GPUS has {len(gpus)}")
    return [",".join(gpus[i : i + per]) for i in range(0, len(gpus) - per + 1, per)]


# --- running locally

# The last line a run adds to its log, read back by `run_end`.
RUN_END = "=== exit {code} after {seconds:.1f} s, CPU {cpu:.1f} s, peak RSS {rss:.0f} MB"
_RUN_END = re.compile(r"^=== exit (-?\d+) after ([\d.]+) s, CPU ([\d.]+) s, peak RSS (\d+) MB$", re.MULTILINE)


def run_end(out):
    """The latest attempt's exit, seconds, cpu_seconds (what other jobs on the machine do not change) and
    peak_rss_mb, or None."""
    try:
        with open(os.path.join(REPO, out) + ".log", encoding="utf-8", errors="replace") as handle:
            ends = _RUN_END.findall(handle.read())
    except FileNotFoundError:
        return None
    if not ends:
        return None
    code, seconds, cpu, rss = ends[-1]
    return {"exit": int(code), "seconds": float(seconds), "cpu_seconds": float(cpu), "peak_rss_mb": float(rss)}


def execute(job, argv, gpu=None, show=False):
    """Run one command, logged to <out>.log between a header and `RUN_END`; its exit code."""
    log = job.path + ".log"
    os.makedirs(os.path.dirname(log), exist_ok=True)
    env = dict(os.environ, **({"CUDA_VISIBLE_DEVICES": gpu} if gpu else {}))
    where = f"CUDA_VISIBLE_DEVICES={gpu} " if gpu else ""
    if os.environ.get("SLURM_JOB_ID"):
        e = os.environ
        where += (
            f"[slurm job {e['SLURM_JOB_ID']}, array {e.get('SLURM_ARRAY_JOB_ID')}_"
            f"{e.get('SLURM_ARRAY_TASK_ID')}, restart {e.get('SLURM_RESTART_COUNT', 0)}] "
        )
    logger.info("%s start  %s%s (log: %s)", _stamp(), job.out, " (resuming)" if os.path.isdir(job.path) else "", log)
    start = time.time()
    with open(log, "a", encoding="utf-8") as handle:
        handle.write(f"=== {time.strftime('%Y-%m-%d %H:%M:%S')} {where}{shlex.join(argv)}\n")
        handle.flush()
        output = subprocess.PIPE if show else handle
        process = subprocess.Popen(argv, cwd=REPO, env=env, stdout=output, stderr=subprocess.STDOUT, text=True)
        for line in process.stdout if show else ():
            handle.write(line)
            sys.stdout.write(line)
        # wait4: the kernel's resource usage of the run and its children
        _, status, usage = os.wait4(process.pid, 0)
        code = process.returncode = os.waitstatus_to_exitcode(status)
        rss = usage.ru_maxrss / (2**20 if sys.platform == "darwin" else 2**10)  # bytes on macOS, KiB on Linux
        cpu = usage.ru_utime + usage.ru_stime
        handle.write(RUN_END.format(code=code, seconds=time.time() - start, cpu=cpu, rss=rss) + "\n")
    took = _clock(time.time() - start)
    if code == 0:
        logger.info("%s ok     %s (%s)", _stamp(), job.out, took)
        return code
    with open(log, encoding="utf-8", errors="replace") as handle:  # universal newlines: a \r ends a line too
        last = [line for line in map(str.strip, handle) if line and not _RUN_END.match(line)][-1]
    logger.info("%s FAILED %s (exit %d after %s; log: %s)\n         %s", _stamp(), job.out, code, took, log, last[:300])
    return code


_START = time.time()


def _clock(seconds):
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return (
        f"{hours}h{minutes:02d}m{seconds:02d}s" if hours else f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"
    )


def _stamp():
    return f"[{time.strftime('%H:%M:%S')} +{_clock(time.time() - _START)}]"


def run_local(stages, s):
    """Run the stages in order, one run per GPU slot at a time; the failed runs."""
    slots, free, failed = gpu_slots(s), queue.SimpleQueue(), []
    show = s.on("SHOW_OUTPUT") and len(slots) == 1
    for slot in slots:
        free.put(slot)

    def work(job):
        gpu = free.get()
        try:
            return job, execute(job, command(job, s), gpu, show)
        finally:
            free.put(gpu)

    for stage in stages:
        with ThreadPoolExecutor(len(slots)) as pool:
            failed += [job for job, code in pool.map(work, stage) if code != 0]
    return failed


# --- Slurm


def _manifest(path):
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def queued_runs():
    """Output folder (absolute) -> array job id of our runs in Slurm's queue."""
    squeue = ["squeue", "--me", "--noheader", "--array", "--format=%F %K %o"]
    result = subprocess.run(squeue, capture_output=True, text=True)
    if result.returncode != 0:
        raise ConfigError(f"squeue failed ({result.stderr.strip()}); is Slurm reachable from here?")
    queued, manifests = {}, functools.cache(_manifest)
    for line in result.stdout.splitlines():
        job, task, script = (line.split(maxsplit=2) + ["", ""])[:3]
        manifest = os.path.join(os.path.dirname(script), "manifest.json")
        if task.isdigit() and os.path.exists(manifest):
            queued[manifests(manifest)[int(task)]["path"]] = job
    return queued


def sbatch_options(s):
    """sbatch flags of the SLURM_* variables (GPUs per run: NPROC_PER_RUN, else 1)."""
    gpus = s["SLURM_GPUS_PER_RUN"] or s["NPROC_PER_RUN"] or "1"
    named = ("partition", "SLURM_PARTITION"), ("time", "SLURM_TIME"), ("cpus-per-task", "SLURM_CPUS_PER_RUN")
    options = [f"--{flag}={s[name]}" for flag, name in (*named, ("mem", "SLURM_MEM_PER_RUN")) if s[name]]
    return options + ([f"--gres=gpu:{gpus}"] if gpus != "0" else []) + shlex.split(s["SLURM_ARGS"])


def submit(stages, s, name):
    """One job array per stage, each after the stage before; the submitted job ids."""
    queued, submitted, after = queued_runs(), [], set()
    for number, stage in enumerate(stages):
        waiting, todo = set(), []
        for job in stage:
            if job.path in queued:
                logger.info("queued %s (already in Slurm job %s)", job.out, queued[job.path])
                waiting.add(queued[job.path])
            else:
                todo.append(job)
        if todo:
            stamp = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{name}-{number}"
            folder = os.path.join(REPO, s["OUT_ROOT"], ".slurm", stamp)
            manifest = os.path.join(folder, "manifest.json")
            entries = [{"out": job.out, "path": job.path, "argv": command(job, s)} for job in todo]
            write_atomic(manifest, json.dumps(entries, indent=1))
            python = shlex.quote(os.path.abspath(s["PYTHON"]))
            task = f"#!/bin/sh\nexec {python} -m dynamic_kd.sweeps --slurm-task {shlex.quote(manifest)}\n"
            limit = f"%{s.int('SLURM_ARRAY_LIMIT')}" if s["SLURM_ARRAY_LIMIT"] else ""
            argv = ["sbatch", "--parsable", f"--array=0-{len(todo) - 1}{limit}", f"--job-name=dkd-{name}", "--requeue"]
            argv += ["--open-mode=append", f"--output={folder}/%A_%a.out", f"--chdir={REPO}", *sbatch_options(s)]
            argv += [f"--dependency=afterany:{':'.join(sorted(after))}"] if after else []
            script = write_atomic(os.path.join(folder, "task.sh"), task)
            result = subprocess.run([*argv, script], capture_output=True, text=True)
            if result.returncode != 0:
                raise ConfigError(f"sbatch failed: {' '.join(result.stderr.split())}; check the SLURM_* settings")
            job_id = result.stdout.strip().split(";")[0]
            logger.info(
                "submitted job array %s: %d runs (stage %d; tasks log to %s)", job_id, len(todo), number + 1, folder
            )
            submitted.append(job_id)
            waiting.add(job_id)
        after = waiting
    return submitted


def slurm_task(manifest):
    """Run the manifest's entry SLURM_ARRAY_TASK_ID unless it finished meanwhile."""
    entry = _manifest(manifest)[int(os.environ["SLURM_ARRAY_TASK_ID"])]
    job = Job(entry["out"], entry["argv"][1], ())
    if job.finished():
        logger.info("skip %s (finished)", job.out)
        return 0
    return execute(job, entry["argv"])


# --- command line


def report_command(s, sweep):
    lines = []
    for folder in sweep.reports:
        first = os.path.join(s["OUT_ROOT"], folder) if folder else s["OUT_ROOT"]
        dirs = [first]
        if folder and s.on("STUDENT_BASELINE"):
            dirs.append(Settings.of(s.env, folder)["STUDENT_ROOT"])
        out = ["--out", os.path.join(first, "results.md"), "--plot", os.path.join(first, "plots")]
        lines.append(shlex.join([s["PYTHON"], "-m", "dynamic_kd.report", *dirs, *out]))
    return lines


def plan_text(stages, notes, s, reports):
    """DRY_RUN: the commands as a runnable script, everything else as # comments."""
    slots, lines = itertools.cycle(gpu_slots(s) if s["LAUNCHER"] == "local" else [None]), []
    if s["LAUNCHER"] == "slurm":
        sbatch = shlex.join(sbatch_options(s))
        lines.append(f"# LAUNCHER=slurm: one job array per stage, each line one array task of: sbatch {sbatch}")
    for number, stage in enumerate(stages):
        if len(stages) > 1:
            lines.append(f"# stage {number + 1}" + (" (after the stage before)" if number else ""))
        lines += [f"# {note}" for at, note in notes if at == number]
        for job in stage:
            gpu = next(slots)
            lines.append((f"CUDA_VISIBLE_DEVICES={gpu} " if gpu else "") + shlex.join(command(job, s)))
    lines.append(f"# {sum(map(len, stages))} runs to go ({len(notes)} skipped). Turn the results into tables with:")
    return "".join(f"{line}\n" for line in lines + [f"# {line}" for line in reports])


def main(argv=None, env=None):
    """Returns 0, 1 (a run failed) or 2 (bad settings)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    env = dict(os.environ if env is None else env)
    handler = logging.StreamHandler(sys.stdout)  # progress lines are the program's output
    logger.handlers, logger.propagate = [handler], False
    logger.setLevel(logging.INFO)
    _log_once.cache_clear()  # once per sweep, not per process
    if argv[:1] == ["--slurm-task"]:
        return slurm_task(argv[1])
    sweeps = grids().SWEEPS
    if not argv or argv[0] not in sweeps:
        sys.stderr.write(f"usage: python -m dynamic_kd.sweeps {{{','.join(sweeps)}}} [NAME=VALUE ...]\n{__doc__}")
        return 0 if argv[:1] in (["-h"], ["--help"]) else 2
    try:
        for assignment in argv[1:]:
            name, equals, value = assignment.partition("=")
            if not equals:
                raise ConfigError(f"'{assignment}' is not NAME=VALUE; settings are variables like TASKS=rte")
            env[name] = value
        s = Settings.of(env, argv[0])
        if s.on("DRY_RUN"):  # the plan is a runnable script: what planning logs is a comment
            handler.setFormatter(logging.Formatter("# %(message)s"))
        if s["LAUNCHER"] not in ("local", "slurm"):
            raise ConfigError(f"LAUNCHER takes local or slurm, got '{s['LAUNCHER']}'")
        if s["LAUNCHER"] == "slurm" and s["GPUS"]:
            raise ConfigError("GPUS picks GPUs for LAUNCHER=local; under Slurm set SLURM_GPUS_PER_RUN")
        stages, notes = plan(sweeps[argv[0]].build(s), s)
        reports = report_command(s, sweeps[argv[0]])
        if s.on("DRY_RUN"):
            sys.stdout.write(plan_text(stages, notes, s, reports))
            return 0
        for _, note in notes:
            logger.info(note)
        if s["LAUNCHER"] == "slurm":
            ids = submit(stages, s, argv[0])
            logger.info("%s; follow with: squeue --me", f"submitted {', '.join(ids)}" if ids else "nothing to submit")
            logger.info("Tables and figures, once they finished:\n" + "".join(f"  {line}\n" for line in reports))
            return 0
        failed = run_local(stages, s)
    except ConfigError as error:
        sys.stderr.write(f"error: {error}\n")
        return 2
    except KeyboardInterrupt:  # the runs got the same Ctrl-C; each resumes when rerun
        logger.info("%s interrupted", _stamp())
        return 130
    total = sum(map(len, stages))
    done = (total - len(failed), len(failed), len(notes), total + len(notes))
    logger.info("%s done: %d ok, %d failed, %d skipped (of %d runs)", _stamp(), *done)
    for job in failed:
        logger.info("  failed: %s (log: %s.log)", job.out, job.out)
    if reports:
        logger.info("Tables and figures:\n" + "".join(f"  {line}\n" for line in reports).rstrip())
    return 1 if failed else 0


if __name__ == "__main__":  # the grids import dynamic_kd.sweeps: run that module, not a copy
    from dynamic_kd.sweeps import main

    sys.exit(main())
