"""Sweeps as data: grids of runs turned into commands, run locally or as Slurm job arrays.

    python -m dynamic_kd.sweeps SWEEP [NAME=VALUE ...]      (scripts/*.sh call this)

SWEEP is one of `SWEEPS`. Settings are the environment variables in `VARIABLES` (the names the
scripts document), overridden by NAME=VALUE arguments; an unset or empty variable takes its
default: the paper sweeps' (teachers, teacher, data, objective, all) from PROFILE's entry of
`PROFILES` (released = the released scripts' settings, library = our defaults), then `VARIABLES`.
A sweep is a list of stages (students need the teachers of the stage before); a run is
an entry point, its flags and an --output_dir. Method grids are enumerated from the strategy
registries, and a combination a task cannot run (an uncertainty strategy on a regression task)
is dropped by the entry points' own check, `DistillationArguments.check_task`. Flags equal to
the shared argument set's defaults are left out of the commands.

A folder holding results.json is finished and never run or submitted again; any other folder is
(re)run with the same command and the entry point resumes from its newest complete checkpoint.
Each run's output is appended to <output_dir>.log, closed by a line with its exit code, wall time,
CPU time and peak RSS (`RUN_END`, read back by `run_end`). Relative paths are relative to the repository.

LAUNCHER=local runs one run after another or, with GPUS="0 1 2 3", one run per GPU (group of
NPROC_PER_RUN GPUs) at a time; LAUNCHER=slurm submits one job array per stage (`sbatch --array`,
the next stage `--dependency=afterany` on it), each task one run, `--requeue`d on preemption so
the same command resumes from its checkpoint; runs already in the queue are not submitted again.
DRY_RUN=1 prints the commands and runs nothing.
"""
import functools
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

from dynamic_kd.arguments import DataArguments, DistillationArguments, ModelArguments, RunArguments, _OneLineErrorParser
from dynamic_kd.errors import ConfigError
from dynamic_kd.files import write_atomic
from dynamic_kd.strategies import OBJECTIVE_STRATEGIES, SELECTION_STRATEGIES, TEACHER_MODES

logger = logging.getLogger(__name__)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# name -> default; "$NAME" refers to a variable above it, "{task}" is replaced per task.
VARIABLES = {
    "PROFILE": "released", "TASKS": "rte mrpc cola sst2 qnli", "SEEDS": "1 2 3", "OUT_ROOT": "outputs",
    "BASE_MODEL": "bert-base-uncased", "LARGE_MODEL": "bert-large-uncased",
    "STUDENT_MODEL": "bert-base-uncased", "STUDENT_LAYERS": "6", "STUDENT_LAYER_INIT": "first",
    "BASE_TEACHER": "$OUT_ROOT/teachers/{task}-base", "LARGE_TEACHER": "$OUT_ROOT/teachers/{task}-large",
    "TEACHER": "$BASE_TEACHER", "TEACHER_SIZES": "base large", "STUDENT_ROOT": "$OUT_ROOT/student",
    "LR": "2e-5", "EPOCHS": "3", "WARMUP": "0", "TEACHER_LR": "$LR", "BASE_TEACHER_LR": "$TEACHER_LR",
    "LARGE_TEACHER_LR": "$TEACHER_LR", "TEACHER_EPOCHS": "$EPOCHS", "TEACHER_WARMUP": "$WARMUP", "TEACHER_SEED": "42",
    "MAX_LEN": "128", "PAD_TO_MAX": "0", "BATCH": "32", "EVAL_BATCH": "128", "PRECISION": "fp32", "REPORT_TO": "none",
    "SAVE_ARGS": "--save_strategy epoch --save_total_limit 1", "DATA_ROOT": "", "EXTRA_ARGS": "", "KD_ARGS": "",
    "STUDENT_BASELINE": "1", "KD_BASELINE": "1", "TEACHER_CACHE": "disk", "TEACHER_ALPHAS": "",
    "MODES": " ".join(TEACHER_MODES), "SELECTIONS": " ".join(s for s in SELECTION_STRATEGIES if s != "none"),
    "RATIOS": "0.1 0.3 0.5 0.7", "SELECTION_SCOPE": "batch", "KD_LOSS": "auto",
    "STRATEGIES": " ".join(OBJECTIVE_STRATEGIES), "REP_ALPHA": "1.0", "REP_LAYERS": "all",
    "STATIC_REP_NORMALIZATION": "hidden",
    "STAGES": "teachers teacher data objective",
    "LAUNCHER": "local", "PYTHON": sys.executable, "GPUS": "", "NPROC_PER_RUN": "", "TORCHRUN": "",
    "DRY_RUN": "0", "SHOW_OUTPUT": "0",
    "SLURM_PARTITION": "", "SLURM_TIME": "", "SLURM_GPUS_PER_RUN": "", "SLURM_CPUS_PER_RUN": "",
    "SLURM_MEM_PER_RUN": "", "SLURM_ARRAY_LIMIT": "", "SLURM_ARGS": "",
}
# The paper sweeps' defaults by PROFILE, over `VARIABLES`: "*" for every paper sweep, then the
# sweep's own. released: the released scripts' settings (docs/released.md; WARMUP as a fraction
# of the training steps, which --warmup_steps < 1 means in transformers 5); library: our defaults,
# in their own OUT_ROOT so that a finished run of one profile is never taken for the other's.
PROFILES = {
    "released": {
        "*": {"KD_LOSS": "mse", "PAD_TO_MAX": "1", "EVAL_BATCH": "64", "PRECISION": "fp16",
              "STATIC_REP_NORMALIZATION": "sequence"},
        "teachers": {"BASE_TEACHER_LR": "2e-5", "LARGE_TEACHER_LR": "5e-5", "TEACHER_WARMUP": "0.05"},
        # batch 16: the student alone at that batch is a run of its own
        "teacher": {"BATCH": "16", "WARMUP": "0.05", "TEACHER_ALPHAS": "1 1", "MODES": "hard soft",
                    "STUDENT_ROOT": "$OUT_ROOT/student-batch16"},
        "data": {"WARMUP": "0.1"},
        # the released objective.sh runs uncertainty; `none` is the static baseline it is compared with
        "objective": {"WARMUP": "0.1", "STRATEGIES": "none uncertainty"},
    },
    "library": {"*": {"OUT_ROOT": "outputs/library"}},
}
# The quickstart's own variables (scripts/quickstart.sh): empty ones get a value that depends on
# TASK (the offline tweets demo when unset, the paper's setting for a real task) or on MODEL.
QUICKSTART = {
    "OUT_ROOT": "outputs/quickstart", "TASK": "", "MODEL": "", "DATA_DIR": "", "SEED": "1", "PRECISION": "auto",
    "LARGE_LAYERS": "", "SMALL_LAYERS": "", "STUDENT_LAYERS": "", "MAX_LEN": "", "SAVE_ARGS": "--save_strategy no",
    "LARGE_EPOCHS": "", "LARGE_LR": "", "SMALL_EPOCHS": "", "SMALL_LR": "", "STUDENT_EPOCHS": "", "STUDENT_LR": "",
    "SHOW_OUTPUT": "1",
}
# The cost benchmarks (benchmarks/distillation_cost.py), grids `cost` and `shared-store`: by default a
# MiniLM teacher fine-tuned on the tweets in DATA_DIR and a 2-layer student, fp32. TEACHER (a model
# folder) skips the fine-tuning.
COST = {"OUT_ROOT": "outputs/benchmark", "MODEL": "", "DATA_DIR": "$OUT_ROOT/tweets", "TEACHER": "",
        "STUDENT_LAYERS": "2", "MAX_LEN": "64", "BATCH": "32", "EVAL_BATCH": "128", "EPOCHS": "3", "PRECISION": "fp32",
        "ONLY": "", "SAVE_ARGS": "--save_strategy no"}
# The shared-store sweep: KD and every selection strategy x RATIOS on one teacher-output store, and
# STUDENT_RUNS runs of the student alone spread evenly between them.
SHARED_STORE = {**{k: v for k, v in COST.items() if k != "ONLY"}, "RATIOS": "0.1 0.5", "STUDENT_RUNS": "9"}


class Settings(dict):
    """Resolved variables: the environment (non-empty values) over the defaults, "$NAME" expanded."""

    @classmethod
    def of(cls, env, name):
        """The settings of sweep `name`: `VARIABLES`, its own defaults and, for a paper sweep, PROFILE's."""
        defaults = {**VARIABLES, **(SWEEPS[name].defaults or {})}
        if SWEEPS[name].profiled:
            profile = env.get("PROFILE") or VARIABLES["PROFILE"]
            if profile not in PROFILES:
                raise ConfigError(f"PROFILE takes {' or '.join(PROFILES)}, got '{profile}'")
            defaults.update({**PROFILES[profile].get("*", {}), **PROFILES[profile].get(name, {})})
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

    def int(self, name, minimum=1):
        if not self[name].isdigit() or int(self[name]) < minimum:
            raise ConfigError(f"{name} must be an integer >= {minimum}, got '{self[name]}'")
        return int(self[name])


@dataclass(frozen=True)
class Job:
    """One run: `script` (an entry point in the repository) with `flags`, writing to `out`."""

    out: str
    script: str
    flags: tuple

    @property
    def path(self):
        return os.path.join(REPO, self.out)

    def finished(self):
        return os.path.exists(os.path.join(self.path, "results.json"))


# ---------------------------------------------------------------- flags

_DEFAULTS = {f.name: f.default for cls in (DataArguments, ModelArguments, DistillationArguments, RunArguments) for f in fields(cls)}


def _same(a, b):
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return str(a) == str(b)


def flags(**values):
    """``--name value`` for every value that differs from the entry points' default (None = leave out)."""
    out = []
    for name, value in values.items():
        if value is not None and value != "" and not _same(value, _DEFAULTS.get(name)):
            out += [f"--{name}", str(value)]
    return out


def train_flags(s, task, seed, lr, epochs, data_dir=None, files=None):
    """Task, data, schedule and bookkeeping flags shared by every run (BATCH is the global batch).

    files: (train file, validation file) of the custom task (task "custom"), e.g. `tweet_files`."""
    nproc = s.int("NPROC_PER_RUN") if s["NPROC_PER_RUN"] else 1
    batch = s.int("BATCH")
    if batch % nproc:
        raise ConfigError(f"BATCH={batch} is not divisible by NPROC_PER_RUN={nproc}; the global batch is split over the processes")
    if data_dir is None:
        data_dir = s.env.get(f"DATA_DIR_{task.upper().replace('-', '_')}") or (os.path.join(s["DATA_ROOT"], task) if s["DATA_ROOT"] else None)
    if files is not None:
        data_dir = None
    out = ["--task_name", task] + flags(
        data_dir=data_dir, train_file=files and files[0], validation_file=files and files[1], max_seq_length=s["MAX_LEN"], num_train_epochs=epochs, learning_rate=lr,
        per_device_train_batch_size=batch // nproc, per_device_eval_batch_size=s["EVAL_BATCH"], seed=seed,
    )
    if s["REPORT_TO"] not in ("", "none"):
        out += ["--report_to", s["REPORT_TO"]]
    return out + shlex.split(s["SAVE_ARGS"])


def paper_flags(s, warmup):
    """What the paper sweeps add to `train_flags`: warmup (a fraction of the steps below 1), padding, PRECISION."""
    return flags(warmup_steps=warmup) + (["--pad_to_max_length"] if s.on("PAD_TO_MAX") else []) + precision_flags(s)


def model_flags(model, layers=None, init=None):
    """The pretrained model and how many of its layers to keep (None: all)."""
    return flags(model_name_or_path=model, student_num_layers=layers, student_layer_init=init)


def student_flags(s, task, seed):
    student = model_flags(s["STUDENT_MODEL"], s["STUDENT_LAYERS"], s["STUDENT_LAYER_INIT"])
    return student + train_flags(s, task, seed, s["LR"], s["EPOCHS"]) + paper_flags(s, s["WARMUP"])


def _teacher(template, task):
    return template.replace("{task}", task)


# ---------------------------------------------------------------- the grids


def teachers(s):
    """Fine-tune BASE_MODEL and LARGE_MODEL on every task (the teachers of the other sweeps)."""
    jobs = []
    for task in s.words("TASKS"):
        for size in s.words("TEACHER_SIZES"):
            if size not in ("base", "large"):
                raise ConfigError(f"TEACHER_SIZES takes base and/or large, got '{size}'")
            model, out = (s["BASE_MODEL"], s["BASE_TEACHER"]) if size == "base" else (s["LARGE_MODEL"], s["LARGE_TEACHER"])
            # a TEACHER_LR the user sets applies to both sizes, over the profile's rate per size
            lr = s.env.get(f"{size.upper()}_TEACHER_LR") or s.env.get("TEACHER_LR") or s[f"{size.upper()}_TEACHER_LR"]
            train = train_flags(s, task, s["TEACHER_SEED"], lr, s["TEACHER_EPOCHS"])
            train += paper_flags(s, s["TEACHER_WARMUP"])
            jobs.append(Job(_teacher(out, task), "train_teacher.py", ("--model_name_or_path", model, *train)))
    return [jobs]


def _students(s, runs):
    """For every task and seed: the no-KD student baseline (STUDENT_BASELINE) and `runs(task, seed)`, each
    distillation run with KD_LOSS and the teacher-output store TEACHER_CACHE (disk: every run of the sweep
    with the same teacher reads the outputs the first one computed)."""
    jobs, kd = [], flags(kd_loss=s["KD_LOSS"], teacher_cache=s["TEACHER_CACHE"])
    for task in s.words("TASKS"):
        for seed in s.words("SEEDS"):
            student = student_flags(s, task, seed)
            if s.on("STUDENT_BASELINE"):
                jobs.append(Job(f"{s['STUDENT_ROOT']}/{task}/seed{seed}", "train_teacher.py", tuple(student)))
            jobs += [Job(out, script, tuple(student + extra + kd)) for out, script, extra in runs(task, seed)]
    return jobs


def teacher(s):
    """Paper Sec. 3.1: every --uncertainty_mode (single-small, single-large, average are the baselines).

    TEACHER_ALPHAS "SMALL LARGE": the two teachers' KD weights of every two-teacher mode (as the
    released teacher.sh passes them; hard and average use them), empty = the entry points' defaults."""
    alphas = s.words("TEACHER_ALPHAS")
    if len(alphas) not in (0, 2):
        raise ConfigError(f"TEACHER_ALPHAS takes two weights, small then large (e.g. \"1 1\"), "
                          f"got '{s['TEACHER_ALPHAS']}'")
    weights = flags(small_teacher_alpha=alphas[0], large_teacher_alpha=alphas[1]) if alphas else []

    def runs(task, seed):
        paths = {"small": _teacher(s["BASE_TEACHER"], task), "large": _teacher(s["LARGE_TEACHER"], task)}
        for mode in s.words("MODES"):
            needed = TEACHER_MODES[mode].teachers if mode in TEACHER_MODES else ("small", "large")
            pool = [arg for name in needed for arg in (f"--{name}_teacher", paths[name])]
            pool += weights if len(needed) == 2 else []
            yield f"{s['OUT_ROOT']}/teacher/{task}/{mode}-seed{seed}", "dynamic_teacher.py", pool + ["--uncertainty_mode", mode]
    return [_students(s, runs)]


def data(s):
    """Paper Sec. 3.2: every selection strategy x ratio, plus plain KD (KD_BASELINE)."""
    scope = "" if s["SELECTION_SCOPE"] == "batch" else f"-{s['SELECTION_SCOPE']}"
    common = flags(selection_scope=s["SELECTION_SCOPE"])

    def runs(task, seed):
        kd = ["--teacher", _teacher(s["TEACHER"], task)]
        if s.on("KD_BASELINE"):
            yield f"{s['OUT_ROOT']}/data/{task}/kd-seed{seed}", "dynamic_data.py", kd
        for strategy in s.words("SELECTIONS"):
            for ratio in s.words("RATIOS"):
                yield (f"{s['OUT_ROOT']}/data/{task}/{strategy}-r{ratio}{scope}-seed{seed}", "dynamic_data.py",
                       kd + ["--selection_strategy", strategy, "--selection_ratio", ratio] + common)
    return [_students(s, runs)]


def objective(s):
    """Paper Sec. 3.3: every --strategy (none = the static PKD-style baseline, its REP normalised along
    STATIC_REP_NORMALIZATION: sequence in the released code, see losses.hidden_state_alignment)."""
    layers = "" if s["REP_LAYERS"] == "all" else f"-{s['REP_LAYERS']}"
    if s["REP_LAYERS"] == "cls" and s["STATIC_REP_NORMALIZATION"] == "sequence" and "none" in s.words("STRATEGIES"):
        raise ConfigError("STATIC_REP_NORMALIZATION=sequence normalises over the tokens, REP_LAYERS=cls keeps one; "
                          "set REP_LAYERS=all or STATIC_REP_NORMALIZATION=hidden")

    def runs(task, seed):
        for strategy in s.words("STRATEGIES"):
            norm = flags(rep_normalization=s["STATIC_REP_NORMALIZATION"]) if strategy == "none" else []
            rep = flags(strategy=strategy, rep_alpha=s["REP_ALPHA"], rep_layers=s["REP_LAYERS"]) + norm
            yield (f"{s['OUT_ROOT']}/objective/{task}/{strategy}{layers}-seed{seed}", "dynamic_objective.py",
                   ["--teacher", _teacher(s["TEACHER"], task)] + rep)
    return [_students(s, runs)]


def everything(s):
    """STAGES: the teachers first, then the three distillation sweeps as one stage."""
    unknown = set(s.words("STAGES")) - {"teachers", "teacher", "data", "objective"}
    if unknown:
        raise ConfigError(f"unknown stage(s) {', '.join(sorted(unknown))}; STAGES takes: teachers teacher data objective")
    first = teachers(Settings.of(s.env, "teachers"))[0] if "teachers" in s.words("STAGES") else []
    students = [job for stage in s.words("STAGES") if stage != "teachers"
                for job in SWEEPS[stage].build(Settings.of(s.env, stage))[0]]
    return [first, list({job.out: job for job in students}.values())]  # the student baseline once


def tweet_files(folder):
    """The offline demo data written by scripts/prepare_tweets.py: three-class tweets, the custom task."""
    return os.path.join(folder, "train.tsv"), os.path.join(folder, "dev.tsv")


@functools.lru_cache(maxsize=None)
def _log_once(message):
    """A note about the whole sweep: `all` resolves the settings of each of its sweeps, logged once."""
    logger.info(message)


def precision_flags(s):
    """PRECISION (auto | bf16 | fp16 | fp32) as flags; auto asks `precision.choose_precision` (bf16 on a CPU
    only where it is native or measured faster) and logs what it chose and why; fp16 (the released
    scripts') is --fp16 on CUDA, and fp32 elsewhere, logged once."""
    import torch

    from dynamic_kd.precision import choose_precision

    precision = s["PRECISION"]
    if precision == "auto":
        precision, why = choose_precision()
        logger.info("PRECISION=auto: %s (%s)", precision, why)
        s["PRECISION"] = precision
    if precision == "fp16":
        if torch.cuda.is_available():
            return ["--fp16"]
        _log_once("PRECISION=fp16 needs CUDA, which this machine lacks: the runs train in fp32")
        s["PRECISION"] = precision = "fp32"
    if precision not in ("bf16", "fp32"):
        raise ConfigError(f"PRECISION takes auto, bf16, fp16 or fp32, got '{precision}'")
    if precision == "fp32":
        return []
    return ["--bf16"] + ([] if torch.cuda.is_available() else ["--use_cpu"])


def quickstart(s):
    """The quickstart: two teachers, then the student alone, KD and every dynamic method (one seed)."""
    from transformers import AutoConfig

    demo = not s["TASK"]
    task, label = (s["TASK"], s["TASK"]) if not demo else ("custom", "tweets")
    files = tweet_files(s["DATA_DIR"]) if demo else None
    if not s["MODEL"]:
        raise ConfigError("MODEL is not set; pass a model folder or hub id (scripts/quickstart.sh sets the MiniLM demo model)")
    depth = AutoConfig.from_pretrained(s["MODEL"]).num_hidden_layers
    s["MAX_LEN"] = s["MAX_LEN"] or ("64" if demo else "128")
    extra = ["--logging_steps", "10"] + precision_flags(s)
    store = ["--teacher_cache", "disk"]  # every student of the sweep reuses the teachers' outputs

    def role(name, layers, epochs, lr):  # a model of `layers` layers cut from MODEL, with its own schedule
        lr = s[f"{name}_LR"] or (lr if demo else "2e-5")
        epochs = s[f"{name}_EPOCHS"] or (epochs if demo else "3")
        cut = None if layers == depth else layers
        return model_flags(s["MODEL"], cut) + train_flags(s, task, s["SEED"], lr, epochs, s["DATA_DIR"] or None, files) + extra

    root = s["OUT_ROOT"]
    large, small = f"{root}/teachers/{label}-large", f"{root}/teachers/{label}-small"
    student = role("STUDENT", s.int("STUDENT_LAYERS") if s["STUDENT_LAYERS"] else 2 if depth < 12 else 6, "3", "1e-4")
    both = ["--small_teacher", small, "--large_teacher", large, "--uncertainty_mode", "hard"]
    entropy = ["--selection_strategy", "entropy", "--selection_ratio", "0.1"]
    uncertainty = ["--strategy", "uncertainty", "--rep_alpha", "1.0"]
    runs = [
        (f"{root}/student/{label}/seed{s['SEED']}", "train_teacher.py", []),
        (f"{root}/data/{label}/kd-seed{s['SEED']}", "dynamic_data.py", ["--teacher", large] + store),
        (f"{root}/teacher/{label}/hard-seed{s['SEED']}", "dynamic_teacher.py", both + store),
        (f"{root}/data/{label}/entropy-r0.1-seed{s['SEED']}", "dynamic_data.py", ["--teacher", large] + entropy + store),
        (f"{root}/objective/{label}/uncertainty-seed{s['SEED']}", "dynamic_objective.py", ["--teacher", large] + uncertainty + store),
        (f"{root}/combined/{label}/hard+entropy-r0.1+uncertainty-seed{s['SEED']}", "dynamic_teacher.py", both + entropy + uncertainty + store),
    ]
    return [
        [Job(large, "train_teacher.py", tuple(role("LARGE", s.int("LARGE_LAYERS") if s["LARGE_LAYERS"] else depth, "3", "5e-5"))),
         Job(small, "train_teacher.py", tuple(role("SMALL", s.int("SMALL_LAYERS") if s["SMALL_LAYERS"] else (depth + 1) // 2, "3", "1e-4")))],
        [Job(out, script, tuple(student + extra_flags)) for out, script, extra_flags in runs],
    ]


def miniature(s):
    """The paper in miniature (scripts/miniature.sh): its three experiments on three-class tweets.

    Teachers: MiniLM-L6 (large) and its first 3 layers (small), fine-tuned once; LARGE_MODEL (any
    classifier folder, e.g. the 12-layer MPNet of benchmarks/README.md, with its own tokenizer) replaces
    the large one, trained at LARGE_LR for LARGE_EPOCHS (give it its own OUT_ROOT: finished runs are
    skipped by folder). Students: the
    first STUDENT_LAYERS layers, every row of `MINIATURE_ROWS` for every seed in SEEDS, in
    OUT_ROOT/runs/<row>/seed<seed> (the report pairs rows by seed: `report.claims_table`). One
    OUT_ROOT per draw of the tweets (scripts/miniature.sh: DATA_SEED); `python -m dynamic_kd.report
    DRAW1/runs DRAW2/runs --claims miniature` puts the draws side by side.
    """
    if not s["MODEL"]:
        raise ConfigError("MODEL is not set; pass a model folder (scripts/miniature.sh sets the MiniLM demo model)")
    root, files = s["OUT_ROOT"], tweet_files(s["DATA_DIR"])
    extra = ["--logging_steps", "25", "--disable_tqdm", "True"] + precision_flags(s)

    def role(layers, seed, lr, epochs, model=s["MODEL"]):
        return model_flags(model, layers) + train_flags(s, "custom", seed, lr, epochs, files=files) + extra

    large, small = f"{root}/teachers/large", f"{root}/teachers/small"
    large_model = s["LARGE_MODEL"] or s["MODEL"]
    teachers = [Job(large, "train_teacher.py", tuple(role(None, s["TEACHER_SEED"], s["LARGE_LR"], s["LARGE_EPOCHS"], large_model))),
                Job(small, "train_teacher.py", tuple(role(s.int("SMALL_LAYERS"), s["TEACHER_SEED"], s["SMALL_LR"], s["TEACHER_EPOCHS"])))]
    paths = {"large": large, "small": small}
    students = []
    for seed in s.words("SEEDS"):
        student = role(s.int("STUDENT_LAYERS"), seed, s["LR"], s["EPOCHS"])
        for row, script, extra_flags in MINIATURE_ROWS:
            if script != "train_teacher.py":
                extra_flags = [paths.get(flag, flag) for flag in extra_flags]
                if row not in MINIATURE_COST_ROWS:
                    extra_flags += ["--teacher_cache", "disk"]
            students.append(Job(f"{root}/runs/{row}/seed{seed}", script, tuple(student + list(extra_flags))))
    return [teachers, students]


_HARD = ["--small_teacher", "small", "--large_teacher", "large", "--uncertainty_mode"]
# the released hard/average teacher weights (1 + 1), as the released profile's teacher.sh passes them
_RELEASED_WEIGHTS = flags(**dict(zip(("small_teacher_alpha", "large_teacher_alpha"),
                                     PROFILES["released"]["teacher"]["TEACHER_ALPHAS"].split())))
_REP = ["--rep_alpha", "1.0", "--rep_layers", "cls"]  # [CLS] states are cached with the logits: no teacher pass per step
# (row name, entry point, flags after the student's; "small"/"large" stand for the teachers' folders).
# 13 rows x 5 seeds per draw of the data, sized for ~70 min of student runs on 2 fp32 CPU cores at
# ~60 s a run (the released static baseline counted twice: every token's states need a teacher pass
# per step). Cut from the 23-row grid of the first (3-seed) run, as no claim below needs them:
# kd-small, soft and soft-instance adoption, entropy and lc selection, the ratios 0.1 and 0.3 (r = 0.5
# is the released data.sh's), the reversed objective (uncertainty-r). Added: the released teacher
# weights (1 + 1) for hard and average and single-large KD at weight 2 (is §3.1's gain the teacher
# choice or the doubled KD weight?), and the released static REP baseline (every token, each hidden
# unit normalised over the tokens).
MINIATURE_ROWS = (
    ("student-alone", "train_teacher.py", ()),
    ("kd-large", "dynamic_data.py", ("--teacher", "large")),
    ("kd-large-w2", "dynamic_data.py", ("--teacher", "large", "--kd_alpha", "2")),
    ("teacher-hard", "dynamic_teacher.py", (*_HARD, "hard")),
    ("teacher-hard-w1", "dynamic_teacher.py", (*_HARD, "hard", *_RELEASED_WEIGHTS)),
    ("teacher-average", "dynamic_teacher.py", (*_HARD, "average")),
    ("teacher-average-w1", "dynamic_teacher.py", (*_HARD, "average", *_RELEASED_WEIGHTS)),
    *((f"data-{strategy}-r0.5", "dynamic_data.py",
       ("--teacher", "large", "--selection_strategy", strategy, "--selection_ratio", "0.5"))
      for strategy in ("random", "margin")),
    *((f"objective-{strategy}", "dynamic_objective.py", ("--teacher", "large", "--strategy", strategy, *_REP))
      for strategy in ("none", "uncertainty")),
    ("objective-none-released", "dynamic_objective.py",
     ("--teacher", "large", "--rep_alpha", "1.0", "--rep_layers", "all", "--rep_normalization", "sequence")),
    ("combined", "dynamic_teacher.py", (*_HARD, "hard", "--selection_strategy", "entropy", "--selection_ratio", "0.5", "--strategy", "uncertainty", *_REP)),
)
# Rows whose cost the rows table compares (full KD against selection: training time, teacher forwards)
# keep a teacher cache of their own, so both are theirs; every other row reads the shared store.
MINIATURE_COST_ROWS = ("kd-large", "data-random-r0.5", "data-margin-r0.5")
# §3.2's "selection matches full KD" is a non-inferiority claim, so it needs a margin: 1 accuracy
# point, set after the first full run was seen; no verdict of that run changes for any margin in [0, 1].
NONINFERIORITY_MARGIN = 1.0
# (paper section, claim, row, baseline[, margin]): each claim says `row` scores higher than
# `baseline`, or with a margin, at most `margin` points lower (report.claims_table).
MINIATURE_CLAIMS = (
    ("KD", "distilling from the large teacher beats training the student alone", "kd-large", "student-alone"),
    ("3.1", "hard adoption beats the large teacher alone", "teacher-hard", "kd-large"),
    ("3.1", "hard adoption beats averaging both teachers", "teacher-hard", "teacher-average"),
    # the released weights (1 + 1) give hard and average twice single-teacher KD's weight: teacher choice or weight?
    ("3.1", "hard adoption at the released weights (1 + 1) beats the large teacher alone",
     "teacher-hard-w1", "kd-large"),
    ("3.1", "hard adoption (1 + 1) beats the large teacher alone at the same KD weight 2",
     "teacher-hard-w1", "kd-large-w2"),
    ("3.1", "hard adoption at 1 + 1 beats hard adoption at 0.5 + 0.5", "teacher-hard-w1", "teacher-hard"),
    ("3.1", "the large teacher at KD weight 2 beats it at weight 1", "kd-large-w2", "kd-large"),
    ("3.1", "averaging both teachers (1 + 1) beats the large teacher alone at KD weight 2",
     "teacher-average-w1", "kd-large-w2"),
    ("3.2", "margin selection beats random selection at r=0.5", "data-margin-r0.5", "data-random-r0.5"),
    ("3.2", f"margin selection at r=0.5 is at most {NONINFERIORITY_MARGIN:g} point below full KD",
     "data-margin-r0.5", "kd-large", NONINFERIORITY_MARGIN),
    ("3.3", "uncertainty-weighted objective beats the static KD + REP objective", "objective-uncertainty", "objective-none"),
    ("3.3", "uncertainty-weighted objective beats the released static baseline (REP normalised over the tokens)",
     "objective-uncertainty", "objective-none-released"),
    ("all", "the three combined beat plain KD from the large teacher", "combined", "kd-large"),
)
# The miniature's own variables (scripts/miniature.sh): budget sized for ~70 min a data draw on 2 fp32 CPU cores.
MINIATURE = {
    "OUT_ROOT": "outputs/miniature", "MODEL": "", "DATA_DIR": "", "SEEDS": "1 2 3 4 5", "PRECISION": "auto",
    "MAX_LEN": "64", "BATCH": "32", "EVAL_BATCH": "128", "SAVE_ARGS": "--save_strategy no",
    # rates set once, before any result (a cut with fewer pretrained layers needs a higher one to
    # leave chance level: the quickstart's 3-layer teacher sits at 0.50 for an epoch at 5e-5)
    "TEACHER_LR": "5e-5", "TEACHER_EPOCHS": "3", "SMALL_LAYERS": "3", "SMALL_LR": "1e-4",
    "STUDENT_LAYERS": "1", "LR": "2e-4", "EPOCHS": "2",
    "LARGE_MODEL": "", "LARGE_LR": "$TEACHER_LR", "LARGE_EPOCHS": "$TEACHER_EPOCHS",
}


# The variants of benchmarks/distillation_cost.py: (entry point, flags after the student's), in run
# order: the student alone between the two cached runs it is compared with, so a machine whose load
# drifts (other jobs) biases the ratios least.
COST_VARIANTS = {
    "original": ("dynamic_data.py", ["--teacher", "{large}", "--teacher_cache", "none", "--pad_to_max_length"]),
    "cached": ("dynamic_data.py", ["--teacher", "{large}"]),
    "student": ("train_teacher.py", []),
    "cached-bf16": ("dynamic_data.py", ["--teacher", "{large}", "--teacher_dtype", "bfloat16"]),
    "epoch-r0.1": ("dynamic_data.py", ["--teacher", "{large}", "--selection_strategy", "entropy", "--selection_ratio", "0.1", "--selection_scope", "epoch"]),
    "uncached": ("dynamic_data.py", ["--teacher", "{large}", "--teacher_cache", "none"]),
    "batch-r0.1": ("dynamic_data.py", ["--teacher", "{large}", "--selection_strategy", "entropy", "--selection_ratio", "0.1"]),
    "hard-nocache": ("dynamic_teacher.py", ["--small_teacher", "{small}", "--large_teacher", "{large}", "--uncertainty_mode", "hard", "--teacher_cache", "none"]),
    "hard": ("dynamic_teacher.py", ["--small_teacher", "{small}", "--large_teacher", "{large}", "--uncertainty_mode", "hard"]),
}


def _cost_runs(s, small_teacher):
    """The cost grids' common part: (teacher stage, the student's flags, {"large": .., "small": ..} teacher folders).

    Without TEACHER: MODEL (all its layers) fine-tuned on DATA_DIR as the large teacher and its
    first 3 layers as the small one (benchmarks/strategy_grid.py uses both). With TEACHER there is
    no small teacher, an error where `small_teacher` is needed. The student: MODEL's first STUDENT_LAYERS.
    """
    if not s["MODEL"]:
        raise ConfigError("MODEL is not set; pass a model folder (benchmarks/distillation_cost.py sets the MiniLM demo model)")
    root, files = s["OUT_ROOT"], tweet_files(s["DATA_DIR"])
    extra = ["--disable_tqdm", "True"] + precision_flags(s)

    def train(lr, epochs):
        return train_flags(s, "custom", 1, lr, epochs, files=files) + extra

    if s["TEACHER"]:
        if small_teacher:
            raise ConfigError("the hard-adoption variants need the small teacher fine-tuned from MODEL; leave TEACHER unset or leave them out of ONLY")
        stage, teachers = [], {"large": s["TEACHER"], "small": None}
    else:
        teachers = {"large": f"{root}/teacher-6L", "small": f"{root}/teacher-3L"}
        # The 3-layer cut starts further from a classifier: it needs a higher rate to leave chance level.
        stage = [Job(teachers["large"], "train_teacher.py", tuple(model_flags(s["MODEL"]) + train("5e-5", "1"))),
                 Job(teachers["small"], "train_teacher.py", tuple(model_flags(s["MODEL"], 3) + train("2e-4", "2")))]
    return stage, model_flags(s["MODEL"], s.int("STUDENT_LAYERS")) + train("1e-4", s["EPOCHS"]), teachers


def cost(s):
    """What distillation costs: the COST_VARIANTS of the student (ONLY: a subset), after their teachers."""
    only = s.words("ONLY") or list(COST_VARIANTS)
    unknown = set(only) - set(COST_VARIANTS)
    if unknown:
        raise ConfigError(f"unknown variant(s) {', '.join(sorted(unknown))} in ONLY; the variants: {' '.join(COST_VARIANTS)}")
    chosen = {name: COST_VARIANTS[name] for name in COST_VARIANTS if name in only}
    stage, student, teachers = _cost_runs(s, any("{small}" in flag for _, extra in chosen.values() for flag in extra))
    variants = [Job(f"{s['OUT_ROOT']}/runs/{name}", script, tuple(student + [flag.format(**teachers) for flag in extra]))
                for name, (script, extra) in chosen.items()]
    return [stage, variants] if stage else [variants]


def shared_store(s):
    """A sweep on one task as the paper runs it, on one shared store: KD, then every selection strategy
    of SELECTIONS x RATIOS (batch scope, one seed), all with `--teacher_cache disk` in one store folder
    inside OUT_ROOT/sweep (so it starts cold), and STUDENT_RUNS runs of the student alone, spread evenly
    between them (the first before KD, the last after the last selection run)."""
    stage, student, teachers = _cost_runs(s, False)
    root = f"{s['OUT_ROOT']}/sweep"
    kd = ["--teacher", teachers["large"], "--teacher_cache", "disk", "--teacher_cache_dir", f"{root}/teacher_outputs"]
    distilled = [Job(f"{root}/kd", "dynamic_data.py", tuple(student + kd))] + [
        Job(f"{root}/{strategy}-r{ratio}", "dynamic_data.py", tuple(student + kd + ["--selection_strategy", strategy, "--selection_ratio", ratio]))
        for strategy in s.words("SELECTIONS") for ratio in s.words("RATIOS")]
    alone = s.int("STUDENT_RUNS", minimum=0)
    runs = list(distilled)
    for number in reversed(range(alone)):  # student i goes before distilled run round(i * n / (k - 1))
        at = round(number * len(distilled) / max(alone - 1, 1))
        runs.insert(at, Job(f"{root}/student-{number + 1}", "train_teacher.py", tuple(student)))
    return [stage, runs] if stage else [runs]


@dataclass(frozen=True)
class Sweep:
    build: object          # (Settings) -> list of stages, each a list of Jobs
    reports: tuple = ()    # folders below OUT_ROOT whose tables the sweep prints the command for
    defaults: dict = None  # variables (and defaults) besides VARIABLES
    profiled: bool = False  # a paper sweep: PROFILE picks its defaults (`PROFILES`)


SWEEPS = {
    "teachers": Sweep(teachers, ("teachers",), profiled=True),
    "teacher": Sweep(teacher, ("teacher",), profiled=True),
    "data": Sweep(data, ("data",), profiled=True),
    "objective": Sweep(objective, ("objective",), profiled=True),
    "all": Sweep(everything, ("teacher", "data", "objective"), profiled=True),
    "quickstart": Sweep(quickstart, ("",), QUICKSTART),
    "miniature": Sweep(miniature, (), MINIATURE),
    "cost": Sweep(cost, (), COST),
    "shared-store": Sweep(shared_store, (), SHARED_STORE),
}


# ---------------------------------------------------------------- planning


def _check_parser():
    return _OneLineErrorParser((DataArguments, ModelArguments, DistillationArguments))


def not_applicable(job, parser, extra=()):
    """Why the task cannot run this distillation setting (the entry points' own check), or None.

    `extra` are the flags appended to the command (`extra_flags`). Any other problem with the
    flags is the user's and stops the sweep before anything runs.
    """
    if job.script == "train_teacher.py":
        return None
    data_args, _, kd_args, _ = parser.parse_args_into_dataclasses(args=[*job.flags, *extra], return_remaining_strings=True)
    try:
        kd_args.check_task(data_args.task)
    except ConfigError as error:
        return str(error).split(";")[0]
    return None


def command(job, s):
    """The argv of a run: the launcher (python, or torchrun with NPROC_PER_RUN), the script, its flags, then
    EXTRA_ARGS (every run) and KD_ARGS (distillation runs only: flags train_teacher.py does not take)."""
    if s["NPROC_PER_RUN"]:
        torchrun = shlex.split(s["TORCHRUN"]) or (
            [os.path.join(os.path.dirname(s["PYTHON"]), "torchrun")] if os.path.exists(os.path.join(os.path.dirname(s["PYTHON"]), "torchrun"))
            else [s["PYTHON"], "-m", "torch.distributed.run"])
        launcher = torchrun + ["--standalone", "--nproc_per_node", str(s.int("NPROC_PER_RUN"))]
    else:
        launcher = [s["PYTHON"]]
    return launcher + [job.script, *job.flags, "--output_dir", job.out] + extra_flags(job, s)


def extra_flags(job, s):
    """EXTRA_ARGS, plus KD_ARGS for a distillation run."""
    return shlex.split(s["EXTRA_ARGS"]) + (shlex.split(s["KD_ARGS"]) if job.script != "train_teacher.py" else [])


def plan(stages, s):
    """(stages of jobs to run, notes): finished and not-applicable runs become notes, in plan order."""
    parser, todo, notes, seen = _check_parser(), [], [], set()
    for stage in stages:
        todo.append([])
        for job in stage:
            if job.out in seen:
                continue
            seen.add(job.out)
            reason = "finished" if job.finished() else not_applicable(job, parser, extra_flags(job, s))
            if reason:
                notes.append((len(todo) - 1, f"skip {job.out} ({reason if reason == 'finished' else 'not applicable: ' + reason})"))
            else:
                todo[-1].append(job)
    return todo, notes


def gpu_slots(s):
    """CUDA_VISIBLE_DEVICES of each parallel local run: GPUS cut into groups of NPROC_PER_RUN, or [None]."""
    gpus = s.words("GPUS")
    if not gpus:
        return [None]
    if not all(g.isdigit() for g in gpus):
        raise ConfigError(f"GPUS is a list of GPU indices like \"0 1 2 3\", got '{s['GPUS']}'")
    per = s.int("NPROC_PER_RUN") if s["NPROC_PER_RUN"] else 1
    if len(gpus) < per:
        raise ConfigError(f"NPROC_PER_RUN={per} needs at least {per} GPUs, GPUS has {len(gpus)}")
    return [",".join(gpus[i:i + per]) for i in range(0, len(gpus) - per + 1, per)]


# ---------------------------------------------------------------- running


# The last line a run adds to its log: what the benchmarks read back with `run_end`.
RUN_END = "=== exit {code} after {seconds:.1f} s, CPU {cpu:.1f} s, peak RSS {rss:.0f} MB"
_RUN_END = re.compile(r"^=== exit (-?\d+) after ([\d.]+) s, CPU ([\d.]+) s, peak RSS (\d+) MB$", re.MULTILINE)


def run_end(out):
    """{"exit", "seconds", "cpu_seconds", "peak_rss_mb"} of the latest attempt of the run writing to `out`,
    from its log (None: none ended).

    seconds: the run's wall time (start to exit, model loading and evaluation included); CPU: user +
    system time of the run and the processes it waited for (on a shared machine, the part of the
    wall time that other jobs do not change); peak RSS: its largest process (ru_maxrss), in MiB."""
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
    """Run one command, its output appended to <out>.log between a header line and a `RUN_END` line; return its exit code."""
    log = job.path + ".log"
    os.makedirs(os.path.dirname(log), exist_ok=True)
    env = dict(os.environ, **({"CUDA_VISIBLE_DEVICES": gpu} if gpu else {}))
    where = f"CUDA_VISIBLE_DEVICES={gpu} " if gpu else ""
    if os.environ.get("SLURM_JOB_ID"):
        where += f"[slurm job {os.environ['SLURM_JOB_ID']}, array {os.environ.get('SLURM_ARRAY_JOB_ID')}_{os.environ.get('SLURM_ARRAY_TASK_ID')}, restart {os.environ.get('SLURM_RESTART_COUNT', 0)}] "
    logger.info("%s start  %s%s (log: %s)", _stamp(), job.out, " (resuming)" if os.path.isdir(job.path) else "", log)
    start = time.time()
    with open(log, "a", encoding="utf-8") as handle:
        handle.write(f"=== {time.strftime('%Y-%m-%d %H:%M:%S')} {where}{shlex.join(argv)}\n")
        handle.flush()
        process = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE if show else handle, stderr=subprocess.STDOUT, text=True)
        for line in process.stdout if show else ():
            handle.write(line)
            sys.stdout.write(line)
        # wait4, not wait: the kernel's resource usage of this run (and the processes it waited for)
        _, status, usage = os.wait4(process.pid, 0)
        code = process.returncode = os.waitstatus_to_exitcode(status)
        rss = usage.ru_maxrss / (2 ** 20 if sys.platform == "darwin" else 2 ** 10)  # bytes on macOS, KiB on Linux
        handle.write(RUN_END.format(code=code, seconds=time.time() - start, cpu=usage.ru_utime + usage.ru_stime, rss=rss) + "\n")
    took = _clock(time.time() - start)
    if code == 0:
        logger.info("%s ok     %s (%s)", _stamp(), job.out, took)
    else:
        with open(log, encoding="utf-8", errors="replace") as handle:
            last = [line.strip() for line in handle.read().replace("\r", "\n").splitlines() if line.strip() and not _RUN_END.match(line)][-1:]
        logger.info("%s FAILED %s (exit %d after %s; log: %s)%s", _stamp(), job.out, code, took, log, "".join(f"\n         {t[:300]}" for t in last))
    return code


_START = time.time()


def _clock(seconds):
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m{seconds % 60:02d}s" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def _stamp():
    return f"[{time.strftime('%H:%M:%S')} +{_clock(time.time() - _START)}]"


def run_local(stages, s):
    """Run the stages in order; within a stage one run per GPU slot at a time. Returns the failed runs."""
    slots = gpu_slots(s)
    show = s.on("SHOW_OUTPUT") and len(slots) == 1
    failed = []
    for stage in stages:
        free = queue.SimpleQueue()
        for slot in slots:
            free.put(slot)

        def work(job):
            gpu = free.get()
            try:
                return job, execute(job, command(job, s), gpu, show)
            finally:
                free.put(gpu)

        with ThreadPoolExecutor(len(slots)) as pool:
            failed += [job for job, code in pool.map(work, stage) if code != 0]
    return failed


def queued_runs():
    """Output folder (absolute) -> array job id of every run of ours waiting or running in Slurm."""
    result = subprocess.run(["squeue", "--me", "--noheader", "--array", "--format=%F %K %o"], capture_output=True, text=True)
    if result.returncode != 0:
        raise ConfigError(f"squeue failed ({result.stderr.strip()}); is Slurm reachable from here?")
    queued, manifests = {}, {}
    for line in result.stdout.splitlines():
        job, task, script = (line.split(maxsplit=2) + ["", ""])[:3]
        manifest = os.path.join(os.path.dirname(script), "manifest.json")
        if task.isdigit() and os.path.exists(manifest):
            if manifest not in manifests:
                with open(manifest, encoding="utf-8") as handle:
                    manifests[manifest] = json.load(handle)
            queued[manifests[manifest][int(task)]["path"]] = job
    return queued


def sbatch_options(s):
    """sbatch flags from the SLURM_* variables (GPUs per run default to NPROC_PER_RUN, else 1)."""
    gpus = s["SLURM_GPUS_PER_RUN"] or s["NPROC_PER_RUN"] or "1"
    options = [f"--{flag}={s[name]}" for flag, name in (("partition", "SLURM_PARTITION"), ("time", "SLURM_TIME"),
               ("cpus-per-task", "SLURM_CPUS_PER_RUN"), ("mem", "SLURM_MEM_PER_RUN")) if s[name]]
    return options + ([f"--gres=gpu:{gpus}"] if gpus != "0" else []) + shlex.split(s["SLURM_ARGS"])


def submit(stages, s, name):
    """One job array per stage, each after the previous stage's arrays; returns the submitted job ids."""
    queued = queued_runs()
    submitted, after = [], set()
    for number, stage in enumerate(stages):
        waiting = {queued[job.path] for job in stage if job.path in queued}
        for job in stage:
            if job.path in queued:
                logger.info("queued %s (already in Slurm job %s)", job.out, queued[job.path])
        todo = [job for job in stage if job.path not in queued]
        if todo:
            folder = os.path.join(REPO, s["OUT_ROOT"], ".slurm", f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{name}-{number}")
            manifest = os.path.join(folder, "manifest.json")
            write_atomic(manifest, json.dumps([{"out": job.out, "path": job.path, "argv": command(job, s)} for job in todo], indent=1))
            script = write_atomic(os.path.join(folder, "task.sh"), f"#!/bin/sh\nexec {shlex.quote(os.path.abspath(s['PYTHON']))} -m dynamic_kd.sweeps --slurm-task {shlex.quote(manifest)}\n")
            limit = f"%{s.int('SLURM_ARRAY_LIMIT')}" if s["SLURM_ARRAY_LIMIT"] else ""
            argv = ["sbatch", "--parsable", f"--array=0-{len(todo) - 1}{limit}", f"--job-name=dkd-{name}", "--requeue",
                    "--open-mode=append", f"--output={folder}/%A_%a.out", f"--chdir={REPO}", *sbatch_options(s)]
            argv += [f"--dependency=afterany:{':'.join(sorted(after))}"] if after else []
            result = subprocess.run(argv + [script], capture_output=True, text=True)
            if result.returncode != 0:
                raise ConfigError(f"sbatch failed: {' '.join(result.stderr.split())}; check the SLURM_* settings")
            job_id = result.stdout.strip().split(";")[0]
            logger.info("submitted job array %s: %d runs (stage %d; tasks log to %s)", job_id, len(todo), number + 1, folder)
            submitted.append(job_id)
            waiting.add(job_id)
        after = waiting
    return submitted


def slurm_task(manifest):
    """Inside a Slurm array task: run the manifest's entry for SLURM_ARRAY_TASK_ID (nothing if it finished meanwhile)."""
    with open(manifest, encoding="utf-8") as handle:
        entry = json.load(handle)[int(os.environ["SLURM_ARRAY_TASK_ID"])]
    job = Job(entry["out"], entry["argv"][1], ())
    if os.path.exists(os.path.join(entry["path"], "results.json")):
        logger.info("skip %s (finished)", entry["out"])
        return 0
    return execute(job, entry["argv"])


# ---------------------------------------------------------------- command line


def report_command(s, sweep):
    """The report command(s) that turn a sweep's runs into tables and figures."""
    lines = []
    for folder in sweep.reports:
        own = Settings.of(s.env, folder) if folder in SWEEPS else s  # the sweep's own student folder
        first = os.path.join(s["OUT_ROOT"], folder) if folder else s["OUT_ROOT"]
        dirs = [first] + ([own["STUDENT_ROOT"]] if folder and s.on("STUDENT_BASELINE") else [])
        lines.append(shlex.join([s["PYTHON"], "-m", "dynamic_kd.report", *dirs, "--out", os.path.join(first, "results.md"), "--plot", os.path.join(first, "plots")]))
    return lines


def main(argv=None, env=None):
    """`python -m dynamic_kd.sweeps SWEEP [NAME=VALUE ...]`; returns 0, 1 (a run failed) or 2 (bad settings)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    env = dict(os.environ if env is None else env)
    handler = logging.StreamHandler(sys.stdout)  # progress lines are the program's output, as before in bash
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.handlers, logger.propagate = [handler], False
    logger.setLevel(logging.INFO)
    _log_once.cache_clear()  # once per sweep, not per process
    if argv[:1] == ["--slurm-task"]:
        return slurm_task(argv[1])
    if not argv or argv[0] not in SWEEPS:
        sys.stderr.write(f"usage: python -m dynamic_kd.sweeps {{{','.join(SWEEPS)}}} [NAME=VALUE ...]\n{__doc__}")
        return 0 if argv[:1] in (["-h"], ["--help"]) else 2
    sweep = SWEEPS[argv[0]]
    try:
        for assignment in argv[1:]:
            name, equals, value = assignment.partition("=")
            if not equals:
                raise ConfigError(f"'{assignment}' is not NAME=VALUE; settings are variables like TASKS=rte")
            env[name] = value
        s = Settings.of(env, argv[0])
        if s.on("DRY_RUN"):  # the plan is a runnable script: what the sweep logs while planning is a comment
            handler.setFormatter(logging.Formatter("# %(message)s"))
        if s["LAUNCHER"] not in ("local", "slurm"):
            raise ConfigError(f"LAUNCHER takes local or slurm, got '{s['LAUNCHER']}'")
        if s["LAUNCHER"] == "slurm" and s["GPUS"]:
            raise ConfigError("GPUS picks GPUs for LAUNCHER=local; under Slurm set SLURM_GPUS_PER_RUN (Slurm assigns the GPUs)")
        stages, notes = plan(sweep.build(s), s)
        total = sum(map(len, stages))
        if s.on("DRY_RUN"):
            sys.stdout.write(plan_text(stages, notes, s) + f"# {total} runs to go ({len(notes)} skipped). Turn the results into tables with:\n")
            sys.stdout.write("".join(f"# {line}\n" for line in report_command(s, sweep)))
            return 0
        for _, note in notes:
            logger.info(note)
        if s["LAUNCHER"] == "slurm":
            ids = submit(stages, s, argv[0])
            logger.info("%s; follow with: squeue --me", f"submitted {', '.join(ids)}" if ids else "nothing to submit")
            logger.info("Tables and figures, once they finished:\n" + "".join(f"  {line}\n" for line in report_command(s, sweep)))
            return 0
        failed = run_local(stages, s)
    except ConfigError as error:
        sys.stderr.write(f"error: {error}\n")
        return 2
    except KeyboardInterrupt:  # the runs got the same Ctrl-C; each resumes when the sweep is run again
        logger.info("%s interrupted", _stamp())
        return 130
    logger.info("%s done: %d ok, %d failed, %d skipped (of %d runs)", _stamp(), total - len(failed), len(failed), len(notes), total + len(notes))
    for job in failed:
        logger.info("  failed: %s (log: %s.log)", job.out, job.out)
    if report_command(s, sweep):
        logger.info("Tables and figures:\n" + "".join(f"  {line}\n" for line in report_command(s, sweep)).rstrip())
    return 1 if failed else 0


def plan_text(stages, notes, s):
    """DRY_RUN: the commands, one per line (runnable as a script), everything else as # comments."""
    slots = gpu_slots(s) if s["LAUNCHER"] == "local" else [None]
    lines = [f"# LAUNCHER=slurm: one job array per stage, each line one array task of: sbatch {shlex.join(sbatch_options(s))}"] if s["LAUNCHER"] == "slurm" else []
    for number, stage in enumerate(stages):
        if len(stages) > 1:
            lines.append(f"# stage {number + 1}" + (" (after the stage before)" if number else ""))
        lines += [f"# {note}" for at, note in notes if at == number]
        for job in stage:
            gpu = slots[len([line for line in lines if not line.startswith("#")]) % len(slots)]
            lines.append((f"CUDA_VISIBLE_DEVICES={gpu} " if gpu else "") + shlex.join(command(job, s)))
    return "".join(f"{line}\n" for line in lines)


if __name__ == "__main__":
    sys.exit(main())
