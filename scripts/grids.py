"""The sweeps' grids, as data next to the scripts that run them through `dynamic_kd.sweeps`.

`SWEEPS`: the paper's (teachers, teacher, data, objective, all: scripts/train_teacher.sh, teacher.sh,
data.sh, objective.sh, all.sh; defaults `PAPER` under PROFILE's entry of `PROFILES`), the quickstart's
and the miniature's (scripts/quickstart.sh, miniature.sh) and the cost benchmarks' (cost,
shared-store: benchmarks/distillation_cost.py). A grid maps resolved `Settings` to stages of `Job`s.
"""

import os

from dynamic_kd.errors import ConfigError
from dynamic_kd.strategies import OBJECTIVE_STRATEGIES, SELECTION_STRATEGIES, TEACHER_MODES
from dynamic_kd.sweeps import Job, Settings, Sweep, flags, model_flags, precision_flags, train_flags

# ---------------------------------------------------------------- the paper's sweeps

# The paper sweeps' variables besides `sweeps.VARIABLES`; "{task}" is replaced per task.
PAPER = {
    "PROFILE": "released",
    "TASKS": "rte mrpc cola sst2 qnli",
    "SEEDS": "1 2 3",
    "BASE_MODEL": "bert-base-uncased",
    "LARGE_MODEL": "bert-large-uncased",
    "STUDENT_MODEL": "bert-base-uncased",
    "STUDENT_LAYERS": "6",
    "STUDENT_LAYER_INIT": "first",
    "BASE_TEACHER": "$OUT_ROOT/teachers/{task}-base",
    "LARGE_TEACHER": "$OUT_ROOT/teachers/{task}-large",
    "TEACHER": "$BASE_TEACHER",
    "TEACHER_SIZES": "base large",
    "STUDENT_ROOT": "$OUT_ROOT/student",
    "LR": "2e-5",
    "EPOCHS": "3",
    "WARMUP": "0",
    "TEACHER_LR": "$LR",
    "BASE_TEACHER_LR": "$TEACHER_LR",
    "LARGE_TEACHER_LR": "$TEACHER_LR",
    "TEACHER_EPOCHS": "$EPOCHS",
    "TEACHER_WARMUP": "$WARMUP",
    "TEACHER_SEED": "42",
    "PAD_TO_MAX": "0",
    "STUDENT_BASELINE": "1",
    "KD_BASELINE": "1",
    "TEACHER_CACHE": "disk",
    "TEACHER_ALPHAS": "",
    "MODES": " ".join(TEACHER_MODES),
    "SELECTIONS": " ".join(s for s in SELECTION_STRATEGIES if s != "none"),
    "RATIOS": "0.1 0.3 0.5 0.7",
    "SELECTION_SCOPE": "batch",
    "KD_LOSS": "auto",
    "STRATEGIES": " ".join(OBJECTIVE_STRATEGIES),
    "REP_ALPHA": "1.0",
    "REP_LAYERS": "all",
    "STATIC_REP_NORMALIZATION": "hidden",
    "STAGES": "teachers teacher data objective",
}
# released: the released scripts' settings (docs/released.md; WARMUP < 1 is a fraction of the steps);
# library: our defaults, in an OUT_ROOT of their own (a finished run is never the other profile's).
PROFILES = {
    "released": {
        "*": {
            "KD_LOSS": "mse",
            "PAD_TO_MAX": "1",
            "EVAL_BATCH": "64",
            "PRECISION": "fp16",
            "STATIC_REP_NORMALIZATION": "sequence",
        },
        "teachers": {"BASE_TEACHER_LR": "2e-5", "LARGE_TEACHER_LR": "5e-5", "TEACHER_WARMUP": "0.05"},
        # batch 16: the student alone at that batch is a run of its own
        "teacher": {
            "BATCH": "16",
            "WARMUP": "0.05",
            "TEACHER_ALPHAS": "1 1",
            "MODES": "hard soft",
            "STUDENT_ROOT": "$OUT_ROOT/student-batch16",
        },
        "data": {"WARMUP": "0.1"},
        # the released objective.sh runs uncertainty; `none` is the static baseline it is compared with
        "objective": {"WARMUP": "0.1", "STRATEGIES": "none uncertainty"},
    },
    "library": {"*": {"OUT_ROOT": "outputs/library"}},
}


def paper_flags(s, warmup):
    """What the paper sweeps add to `train_flags`: warmup (a fraction of the steps below 1), padding, PRECISION."""
    return flags(warmup_steps=warmup) + (["--pad_to_max_length"] if s.on("PAD_TO_MAX") else []) + precision_flags(s)


def student_flags(s, task, seed):
    student = model_flags(s["STUDENT_MODEL"], s["STUDENT_LAYERS"], s["STUDENT_LAYER_INIT"])
    return student + train_flags(s, task, seed, s["LR"], s["EPOCHS"]) + paper_flags(s, s["WARMUP"])


def _teacher(template, task):
    return template.replace("{task}", task)


def teachers(s):
    """Fine-tune BASE_MODEL and LARGE_MODEL on every task (the teachers of the other sweeps)."""
    jobs = []
    for task in s.words("TASKS"):
        for size in s.words("TEACHER_SIZES"):
            if size not in ("base", "large"):
                raise ConfigError(f"TEACHER_SIZES takes base and/or large, got '{size}'")
            model, out = s[f"{size.upper()}_MODEL"], s[f"{size.upper()}_TEACHER"]
            # a TEACHER_LR the user sets applies to both sizes, over the profile's rate per size
            lr = s.env.get(f"{size.upper()}_TEACHER_LR") or s.env.get("TEACHER_LR") or s[f"{size.upper()}_TEACHER_LR"]
            train = train_flags(s, task, s["TEACHER_SEED"], lr, s["TEACHER_EPOCHS"])
            train += paper_flags(s, s["TEACHER_WARMUP"])
            jobs.append(Job(_teacher(out, task), "train_teacher.py", ("--model_name_or_path", model, *train)))
    return [jobs]


def _students(s, runs):
    """For every task and seed: the student alone (STUDENT_BASELINE) and `runs(task, seed)`, each with
    KD_LOSS and the teacher-output store TEACHER_CACHE (disk: runs with one teacher share its outputs)."""
    jobs, kd = [], flags(kd_loss=s["KD_LOSS"], teacher_cache=s["TEACHER_CACHE"])
    for task in s.words("TASKS"):
        for seed in s.words("SEEDS"):
            student = student_flags(s, task, seed)
            if s.on("STUDENT_BASELINE"):
                jobs.append(Job(f"{s['STUDENT_ROOT']}/{task}/seed{seed}", "train_teacher.py", tuple(student)))
            jobs += [Job(out, script, tuple(student + extra + kd)) for out, script, extra in runs(task, seed)]
    return jobs


def teacher(s):
    """Paper Sec. 3.1: every --uncertainty_mode (single-small, single-large, average: the baselines).

    TEACHER_ALPHAS "SMALL LARGE": both teachers' KD weights in every two-teacher mode (empty: the defaults)."""
    alphas = s.words("TEACHER_ALPHAS")
    if len(alphas) not in (0, 2):
        raise ConfigError(
            f"TEACHER_ALPHAS takes two weights, small then large (e.g. \"1 1\"), got '{s['TEACHER_ALPHAS']}'"
        )
    weights = flags(small_teacher_alpha=alphas[0], large_teacher_alpha=alphas[1]) if alphas else []

    def runs(task, seed):
        paths = {"small": _teacher(s["BASE_TEACHER"], task), "large": _teacher(s["LARGE_TEACHER"], task)}
        for mode in s.words("MODES"):
            needed = TEACHER_MODES[mode].teachers if mode in TEACHER_MODES else ("small", "large")
            pool = [arg for name in needed for arg in (f"--{name}_teacher", paths[name])]
            pool += weights if len(needed) == 2 else []
            yield (
                f"{s['OUT_ROOT']}/teacher/{task}/{mode}-seed{seed}",
                "dynamic_teacher.py",
                pool + ["--uncertainty_mode", mode],
            )

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
                yield (
                    f"{s['OUT_ROOT']}/data/{task}/{strategy}-r{ratio}{scope}-seed{seed}",
                    "dynamic_data.py",
                    kd + ["--selection_strategy", strategy, "--selection_ratio", ratio] + common,
                )

    return [_students(s, runs)]


def objective(s):
    """Paper Sec. 3.3: every --strategy (none: the static PKD-style baseline, REP normalised along
    STATIC_REP_NORMALIZATION)."""
    layers = "" if s["REP_LAYERS"] == "all" else f"-{s['REP_LAYERS']}"
    if s["REP_LAYERS"] == "cls" and s["STATIC_REP_NORMALIZATION"] == "sequence" and "none" in s.words("STRATEGIES"):
        raise ConfigError(
            "STATIC_REP_NORMALIZATION=sequence normalises over the tokens, REP_LAYERS=cls keeps one; "
            "set REP_LAYERS=all or STATIC_REP_NORMALIZATION=hidden"
        )

    def runs(task, seed):
        for strategy in s.words("STRATEGIES"):
            norm = flags(rep_normalization=s["STATIC_REP_NORMALIZATION"]) if strategy == "none" else []
            rep = flags(strategy=strategy, rep_alpha=s["REP_ALPHA"], rep_layers=s["REP_LAYERS"]) + norm
            yield (
                f"{s['OUT_ROOT']}/objective/{task}/{strategy}{layers}-seed{seed}",
                "dynamic_objective.py",
                ["--teacher", _teacher(s["TEACHER"], task)] + rep,
            )

    return [_students(s, runs)]


def everything(s):
    """STAGES: the teachers first, then the three distillation sweeps as one stage."""
    unknown = set(s.words("STAGES")) - {"teachers", "teacher", "data", "objective"}
    if unknown:
        raise ConfigError(
            f"unknown stage(s) {', '.join(sorted(unknown))}; STAGES takes: teachers teacher data objective"
        )
    first = teachers(Settings.of(s.env, "teachers"))[0] if "teachers" in s.words("STAGES") else []
    students = [
        job
        for stage in s.words("STAGES")
        if stage != "teachers"
        for job in SWEEPS[stage].build(Settings.of(s.env, stage))[0]
    ]
    return [first, list({job.out: job for job in students}.values())]  # the student baseline once


# ---------------------------------------------------------------- the quickstart and the miniature


def tweet_files(folder):
    """The offline demo data written by scripts/prepare_tweets.py: three-class tweets, the custom task."""
    return os.path.join(folder, "train.tsv"), os.path.join(folder, "dev.tsv")


# The quickstart's variables: empty ones depend on TASK (unset: the tweets demo) or on MODEL.
QUICKSTART = {
    "OUT_ROOT": "outputs/quickstart",
    "TASK": "",
    "MODEL": "",
    "DATA_DIR": "",
    "SEED": "1",
    "PRECISION": "auto",
    "LARGE_LAYERS": "",
    "SMALL_LAYERS": "",
    "STUDENT_LAYERS": "",
    "MAX_LEN": "",
    "SAVE_ARGS": "--save_strategy no",
    "LARGE_EPOCHS": "",
    "LARGE_LR": "",
    "SMALL_EPOCHS": "",
    "SMALL_LR": "",
    "STUDENT_EPOCHS": "",
    "STUDENT_LR": "",
    "SHOW_OUTPUT": "1",
}


def quickstart(s):
    """Two teachers, then the student alone, KD and every dynamic method (one seed)."""
    from transformers import AutoConfig

    demo = not s["TASK"]
    task, label = (s["TASK"], s["TASK"]) if not demo else ("custom", "tweets")
    files = tweet_files(s["DATA_DIR"]) if demo else None
    if not s["MODEL"]:
        raise ConfigError(
            "MODEL is not set; pass a model folder or hub id (scripts/quickstart.sh sets the MiniLM demo model)"
        )
    depth = AutoConfig.from_pretrained(s["MODEL"]).num_hidden_layers
    s["MAX_LEN"] = s["MAX_LEN"] or ("64" if demo else "128")
    extra = ["--logging_steps", "10"] + precision_flags(s)
    store = ["--teacher_cache", "disk"]  # every student of the sweep reuses the teachers' outputs

    def role(name, layers, epochs, lr):  # a model of `layers` layers cut from MODEL, with its own schedule
        lr = s[f"{name}_LR"] or (lr if demo else "2e-5")
        epochs = s[f"{name}_EPOCHS"] or (epochs if demo else "3")
        cut = None if layers == depth else layers
        train = train_flags(s, task, seed, lr, epochs, s["DATA_DIR"] or None, files)
        return model_flags(s["MODEL"], cut) + train + extra

    root, seed = s["OUT_ROOT"], s["SEED"]
    large, small = f"{root}/teachers/{label}-large", f"{root}/teachers/{label}-small"
    student = role("STUDENT", s.int("STUDENT_LAYERS") if s["STUDENT_LAYERS"] else 2 if depth < 12 else 6, "3", "1e-4")
    both = ["--small_teacher", small, "--large_teacher", large, "--uncertainty_mode", "hard"]
    entropy = ["--selection_strategy", "entropy", "--selection_ratio", "0.1"]
    uncertainty = ["--strategy", "uncertainty", "--rep_alpha", "1.0"]
    kd = ["--teacher", large]
    runs = [
        (f"student/{label}/seed{seed}", "train_teacher.py", []),
        (f"data/{label}/kd-seed{seed}", "dynamic_data.py", kd + store),
        (f"teacher/{label}/hard-seed{seed}", "dynamic_teacher.py", both + store),
        (f"data/{label}/entropy-r0.1-seed{seed}", "dynamic_data.py", kd + entropy + store),
        (f"objective/{label}/uncertainty-seed{seed}", "dynamic_objective.py", kd + uncertainty + store),
        (
            f"combined/{label}/hard+entropy-r0.1+uncertainty-seed{seed}",
            "dynamic_teacher.py",
            both + entropy + uncertainty + store,
        ),
    ]
    large_layers = s.int("LARGE_LAYERS") if s["LARGE_LAYERS"] else depth
    small_layers = s.int("SMALL_LAYERS") if s["SMALL_LAYERS"] else (depth + 1) // 2
    return [
        [
            Job(large, "train_teacher.py", tuple(role("LARGE", large_layers, "3", "5e-5"))),
            Job(small, "train_teacher.py", tuple(role("SMALL", small_layers, "3", "1e-4"))),
        ],
        [Job(f"{root}/{out}", script, tuple(student + extra)) for out, script, extra in runs],
    ]


def miniature(s):
    """The paper in miniature (scripts/miniature.sh): its three experiments on three-class tweets.

    Teachers: MiniLM-L6 (large; LARGE_MODEL, any classifier folder, replaces it: give it its own
    OUT_ROOT) and its first 3 layers (small). Students: MODEL's first STUDENT_LAYERS layers, every row of
    `MINIATURE_ROWS` x SEEDS in OUT_ROOT/runs/<row>/seed<seed> (`report --claims miniature` pairs seeds).
    """
    if not s["MODEL"]:
        raise ConfigError("MODEL is not set; pass a model folder (scripts/miniature.sh sets the MiniLM demo model)")
    root, files = s["OUT_ROOT"], tweet_files(s["DATA_DIR"])
    extra = ["--logging_steps", "25", "--disable_tqdm", "True"] + precision_flags(s)

    def role(layers, seed, lr, epochs, model=s["MODEL"]):
        return model_flags(model, layers) + train_flags(s, "custom", seed, lr, epochs, files=files) + extra

    large, small = f"{root}/teachers/large", f"{root}/teachers/small"
    large_model = s["LARGE_MODEL"] or s["MODEL"]
    seed = s["TEACHER_SEED"]
    teachers = [
        Job(large, "train_teacher.py", tuple(role(None, seed, s["LARGE_LR"], s["LARGE_EPOCHS"], large_model))),
        Job(small, "train_teacher.py", tuple(role(s.int("SMALL_LAYERS"), seed, s["SMALL_LR"], s["TEACHER_EPOCHS"]))),
    ]
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
# the released teacher.sh's weights of hard and average (1 + 1)
_RELEASED_WEIGHTS = flags(
    **dict(
        zip(("small_teacher_alpha", "large_teacher_alpha"), PROFILES["released"]["teacher"]["TEACHER_ALPHAS"].split())
    )
)
_REP = ["--rep_alpha", "1.0", "--rep_layers", "cls"]  # [CLS] states are cached with the logits: no teacher pass
# (row name, entry point, flags after the student's; "small"/"large" stand for the teachers' folders).
# 13 rows x 5 seeds per draw, ~70 min of student runs on 2 fp32 CPU cores; why these rows and not the
# first run's 23: README "The paper in miniature".
MINIATURE_ROWS = (
    ("student-alone", "train_teacher.py", ()),
    ("kd-large", "dynamic_data.py", ("--teacher", "large")),
    ("kd-large-w2", "dynamic_data.py", ("--teacher", "large", "--kd_alpha", "2")),
    ("teacher-hard", "dynamic_teacher.py", (*_HARD, "hard")),
    ("teacher-hard-w1", "dynamic_teacher.py", (*_HARD, "hard", *_RELEASED_WEIGHTS)),
    ("teacher-average", "dynamic_teacher.py", (*_HARD, "average")),
    ("teacher-average-w1", "dynamic_teacher.py", (*_HARD, "average", *_RELEASED_WEIGHTS)),
    *(
        (
            f"data-{strategy}-r0.5",
            "dynamic_data.py",
            ("--teacher", "large", "--selection_strategy", strategy, "--selection_ratio", "0.5"),
        )
        for strategy in ("random", "margin")
    ),
    *(
        (f"objective-{strategy}", "dynamic_objective.py", ("--teacher", "large", "--strategy", strategy, *_REP))
        for strategy in ("none", "uncertainty")
    ),
    (
        "objective-none-released",
        "dynamic_objective.py",
        ("--teacher", "large", "--rep_alpha", "1.0", "--rep_layers", "all", "--rep_normalization", "sequence"),
    ),
    (
        "combined",
        "dynamic_teacher.py",
        (
            *_HARD,
            "hard",
            "--selection_strategy",
            "entropy",
            "--selection_ratio",
            "0.5",
            "--strategy",
            "uncertainty",
            *_REP,
        ),
    ),
)
# Rows whose cost is compared (full KD vs selection: time, teacher forwards) keep a teacher cache of their
# own; every other row reads the shared store.
MINIATURE_COST_ROWS = ("kd-large", "data-random-r0.5", "data-margin-r0.5")
# §3.2's "selection matches full KD" is a non-inferiority claim, so it needs a margin: 1 accuracy
# point, set after the first full run was seen; no verdict of that run changes for any margin in [0, 1].
NONINFERIORITY_MARGIN = 1.0
# (paper section, claim, row, baseline[, margin]): each claim says `row` scores higher than
# `baseline`, or with a margin, at most `margin` points lower (claims.claims_table).
MINIATURE_CLAIMS = (
    ("KD", "distilling from the large teacher beats training the student alone", "kd-large", "student-alone"),
    ("3.1", "hard adoption beats the large teacher alone", "teacher-hard", "kd-large"),
    ("3.1", "hard adoption beats averaging both teachers", "teacher-hard", "teacher-average"),
    # the released weights (1 + 1) give hard and average twice single-teacher KD's weight: teacher choice or weight?
    (
        "3.1",
        "hard adoption at the released weights (1 + 1) beats the large teacher alone",
        "teacher-hard-w1",
        "kd-large",
    ),
    (
        "3.1",
        "hard adoption (1 + 1) beats the large teacher alone at the same KD weight 2",
        "teacher-hard-w1",
        "kd-large-w2",
    ),
    ("3.1", "hard adoption at 1 + 1 beats hard adoption at 0.5 + 0.5", "teacher-hard-w1", "teacher-hard"),
    ("3.1", "the large teacher at KD weight 2 beats it at weight 1", "kd-large-w2", "kd-large"),
    (
        "3.1",
        "averaging both teachers (1 + 1) beats the large teacher alone at KD weight 2",
        "teacher-average-w1",
        "kd-large-w2",
    ),
    ("3.2", "margin selection beats random selection at r=0.5", "data-margin-r0.5", "data-random-r0.5"),
    (
        "3.2",
        f"margin selection at r=0.5 is at most {NONINFERIORITY_MARGIN:g} point below full KD",
        "data-margin-r0.5",
        "kd-large",
        NONINFERIORITY_MARGIN,
    ),
    (
        "3.3",
        "uncertainty-weighted objective beats the static KD + REP objective",
        "objective-uncertainty",
        "objective-none",
    ),
    (
        "3.3",
        "uncertainty-weighted objective beats the released static baseline (REP normalised over the tokens)",
        "objective-uncertainty",
        "objective-none-released",
    ),
    ("all", "the three combined beat plain KD from the large teacher", "combined", "kd-large"),
)
# The miniature's variables: ~70 min a draw on 2 fp32 CPU cores.
MINIATURE = {
    "OUT_ROOT": "outputs/miniature",
    "MODEL": "",
    "DATA_DIR": "",
    "SEEDS": "1 2 3 4 5",
    "PRECISION": "auto",
    "MAX_LEN": "64",
    "BATCH": "32",
    "EVAL_BATCH": "128",
    "SAVE_ARGS": "--save_strategy no",
    # rates set once, before any result (a cut with fewer pretrained layers needs a higher one to
    # leave chance level: the quickstart's 3-layer teacher sits at 0.50 for an epoch at 5e-5)
    "TEACHER_LR": "5e-5",
    "TEACHER_EPOCHS": "3",
    "TEACHER_SEED": PAPER["TEACHER_SEED"],
    "SMALL_LAYERS": "3",
    "SMALL_LR": "1e-4",
    "STUDENT_LAYERS": "1",
    "LR": "2e-4",
    "EPOCHS": "2",
    "LARGE_MODEL": "",
    "LARGE_LR": "$TEACHER_LR",
    "LARGE_EPOCHS": "$TEACHER_EPOCHS",
}


# ---------------------------------------------------------------- the cost benchmarks

# benchmarks/distillation_cost.py's grids: by default a MiniLM teacher fine-tuned on the tweets in DATA_DIR
# and a 2-layer student, fp32; TEACHER (a model folder) skips the fine-tuning.
COST = {
    "OUT_ROOT": "outputs/benchmark",
    "MODEL": "",
    "DATA_DIR": "$OUT_ROOT/tweets",
    "TEACHER": "",
    "STUDENT_LAYERS": "2",
    "MAX_LEN": "64",
    "BATCH": "32",
    "EVAL_BATCH": "128",
    "EPOCHS": "3",
    "PRECISION": "fp32",
    "ONLY": "",
    "SAVE_ARGS": "--save_strategy no",
}
SHARED_STORE = {
    **{k: v for k, v in COST.items() if k != "ONLY"},
    "SELECTIONS": PAPER["SELECTIONS"],
    "RATIOS": "0.1 0.5",
    "STUDENT_RUNS": "9",
}
# (entry point, flags after the student's) in run order: the student alone between the two cached runs
# it is compared with, so a drifting machine load biases the ratios least.
_KD = ["--teacher", "{large}"]
_BOTH = ["--small_teacher", "{small}", "--large_teacher", "{large}", "--uncertainty_mode", "hard"]
_ENTROPY = [*_KD, "--selection_strategy", "entropy", "--selection_ratio", "0.1"]
COST_VARIANTS = {
    "original": ("dynamic_data.py", [*_KD, "--teacher_cache", "none", "--pad_to_max_length"]),
    "cached": ("dynamic_data.py", _KD),
    "student": ("train_teacher.py", []),
    "cached-bf16": ("dynamic_data.py", [*_KD, "--teacher_dtype", "bfloat16"]),
    "epoch-r0.1": ("dynamic_data.py", [*_ENTROPY, "--selection_scope", "epoch"]),
    "uncached": ("dynamic_data.py", [*_KD, "--teacher_cache", "none"]),
    "batch-r0.1": ("dynamic_data.py", _ENTROPY),
    "hard-nocache": ("dynamic_teacher.py", [*_BOTH, "--teacher_cache", "none"]),
    "hard": ("dynamic_teacher.py", _BOTH),
}


def _cost_runs(s, small_teacher):
    """The cost grids' common part: (teacher stage, the student's flags, {"large": .., "small": ..} folders).

    Without TEACHER: MODEL fine-tuned on DATA_DIR as the large teacher and its first 3 layers as the
    small one; with TEACHER there is no small teacher. The student: MODEL's first STUDENT_LAYERS."""
    if not s["MODEL"]:
        raise ConfigError(
            "MODEL is not set; pass a model folder (benchmarks/distillation_cost.py sets the MiniLM demo model)"
        )
    root, files = s["OUT_ROOT"], tweet_files(s["DATA_DIR"])
    extra = ["--disable_tqdm", "True"] + precision_flags(s)

    def train(lr, epochs):
        return train_flags(s, "custom", 1, lr, epochs, files=files) + extra

    if s["TEACHER"]:
        if small_teacher:
            raise ConfigError(
                "the hard-adoption variants need the small teacher fine-tuned from MODEL; "
                "leave TEACHER unset or leave them out of ONLY"
            )
        stage, teachers = [], {"large": s["TEACHER"], "small": None}
    else:
        teachers = {"large": f"{root}/teacher-6L", "small": f"{root}/teacher-3L"}
        # The 3-layer cut starts further from a classifier: it needs a higher rate to leave chance level.
        stage = [
            Job(teachers["large"], "train_teacher.py", tuple(model_flags(s["MODEL"]) + train("5e-5", "1"))),
            Job(teachers["small"], "train_teacher.py", tuple(model_flags(s["MODEL"], 3) + train("2e-4", "2"))),
        ]
    return stage, model_flags(s["MODEL"], s.int("STUDENT_LAYERS")) + train("1e-4", s["EPOCHS"]), teachers


def cost(s):
    """What distillation costs: the COST_VARIANTS of the student (ONLY: a subset), after their teachers."""
    only = s.words("ONLY") or list(COST_VARIANTS)
    unknown = set(only) - set(COST_VARIANTS)
    if unknown:
        raise ConfigError(
            f"unknown variant(s) {', '.join(sorted(unknown))} in ONLY; the variants: {' '.join(COST_VARIANTS)}"
        )
    chosen = {name: COST_VARIANTS[name] for name in COST_VARIANTS if name in only}
    stage, student, teachers = _cost_runs(s, any("{small}" in flag for _, extra in chosen.values() for flag in extra))
    variants = [
        Job(f"{s['OUT_ROOT']}/runs/{name}", script, tuple(student + [f.format(**teachers) for f in extra]))
        for name, (script, extra) in chosen.items()
    ]
    return [stage, variants] if stage else [variants]


def shared_store(s):
    """One task's sweep on one store (OUT_ROOT/sweep, so it starts cold): KD, then SELECTIONS x RATIOS
    (batch scope, one seed), and STUDENT_RUNS runs of the student alone spread evenly between them."""
    stage, student, teachers = _cost_runs(s, False)
    root = f"{s['OUT_ROOT']}/sweep"
    kd = student + [
        "--teacher",
        teachers["large"],
        "--teacher_cache",
        "disk",
        "--teacher_cache_dir",
        f"{root}/teacher_outputs",
    ]
    distilled = [Job(f"{root}/kd", "dynamic_data.py", tuple(kd))] + [
        Job(
            f"{root}/{strategy}-r{ratio}",
            "dynamic_data.py",
            tuple(kd + ["--selection_strategy", strategy, "--selection_ratio", ratio]),
        )
        for strategy in s.words("SELECTIONS")
        for ratio in s.words("RATIOS")
    ]
    alone = s.int("STUDENT_RUNS", minimum=0)
    runs = list(distilled)
    for number in reversed(range(alone)):  # student i goes before distilled run round(i * n / (k - 1))
        at = round(number * len(distilled) / max(alone - 1, 1))
        runs.insert(at, Job(f"{root}/student-{number + 1}", "train_teacher.py", tuple(student)))
    return [stage, runs] if stage else [runs]


SWEEPS = {
    "teachers": Sweep(teachers, ("teachers",), PAPER, PROFILES),
    "teacher": Sweep(teacher, ("teacher",), PAPER, PROFILES),
    "data": Sweep(data, ("data",), PAPER, PROFILES),
    "objective": Sweep(objective, ("objective",), PAPER, PROFILES),
    "all": Sweep(everything, ("teacher", "data", "objective"), PAPER, PROFILES),
    "quickstart": Sweep(quickstart, ("",), QUICKSTART),
    "miniature": Sweep(miniature, (), MINIATURE),
    "cost": Sweep(cost, (), COST),
    "shared-store": Sweep(shared_store, (), SHARED_STORE),
}
