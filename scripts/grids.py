"""The sweeps' grids: `SWEEPS` maps each sweep to resolved `Settings` -> stages of `Job`s (docs/sweeps.md).

A table row is (output folder, entry point, flags after the student's).
"""

import os

from dynamic_kd.errors import ConfigError
from dynamic_kd.strategies import OBJECTIVE_STRATEGIES, SELECTION_STRATEGIES, TEACHER_MODES
from dynamic_kd.sweeps import Job, Settings, Sweep, flags, model_flags, precision_flags, train_flags


def fill(words, **folders):
    return [word.format(**folders) for word in words.split()]


def _need_model(s, script, what="a model folder"):
    if not s["MODEL"]:
        raise ConfigError(f"MODEL is not set; pass {what} ({script} sets the MiniLM demo model)")


def _chosen(s, name, choices, what):
    words = s.words(name)
    unknown = set(words) - set(choices)
    if unknown:
        raise ConfigError(
            f"unknown {what}(s) {', '.join(sorted(unknown))} in {name}; {name} takes: {' '.join(choices)}"
        )
    return words


def tweet_files(folder):
    """scripts/prepare_tweets.py's train and validation files."""
    return os.path.join(folder, "train.tsv"), os.path.join(folder, "dev.tsv")


# --- the paper's sweeps

# "{task}" is replaced per task.
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
# released: the released scripts' settings (docs/released.md); library: ours, in an OUT_ROOT of their own
# (a finished run is never the other profile's).
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
        # `none`: the static baseline of the released objective.sh's uncertainty runs
        "objective": {"WARMUP": "0.1", "STRATEGIES": "none uncertainty"},
    },
    "library": {"*": {"OUT_ROOT": "outputs/library"}},
}


def paper_flags(s, warmup):
    return flags(warmup_steps=warmup) + (["--pad_to_max_length"] if s.on("PAD_TO_MAX") else []) + precision_flags(s)


def teachers(s):
    jobs, sizes = [], _chosen(s, "TEACHER_SIZES", ("base", "large"), "size")
    for task in s.words("TASKS"):
        for size in map(str.upper, sizes):
            # a TEACHER_LR the user sets applies to both sizes, over the profile's rate per size
            lr = s.env.get(f"{size}_TEACHER_LR") or s.env.get("TEACHER_LR") or s[f"{size}_TEACHER_LR"]
            train = train_flags(s, task, s["TEACHER_SEED"], lr, s["TEACHER_EPOCHS"])
            train += paper_flags(s, s["TEACHER_WARMUP"])
            out = s[f"{size}_TEACHER"].replace("{task}", task)
            jobs.append(Job(out, "train_teacher.py", ("--model_name_or_path", s[f"{size}_MODEL"], *train)))
    return [jobs]


def _students(s, sweep, script, runs):
    """Per task and seed: the student alone (STUDENT_BASELINE), then `script` with each of `runs`."""
    jobs, kd = [], flags(kd_loss=s["KD_LOSS"], teacher_cache=s["TEACHER_CACHE"])
    for task in s.words("TASKS"):
        for seed in s.words("SEEDS"):
            student = model_flags(s["STUDENT_MODEL"], s["STUDENT_LAYERS"], s["STUDENT_LAYER_INIT"])
            student += train_flags(s, task, seed, s["LR"], s["EPOCHS"]) + paper_flags(s, s["WARMUP"])
            if s.on("STUDENT_BASELINE"):
                jobs.append(Job(f"{s['STUDENT_ROOT']}/{task}/seed{seed}", "train_teacher.py", tuple(student)))
            for name, extra in runs:
                extra = [arg.replace("{task}", task) for arg in extra]
                jobs.append(Job(f"{s['OUT_ROOT']}/{sweep}/{task}/{name}-seed{seed}", script, (*student, *extra, *kd)))
    return [jobs]


def teacher(s):
    """Paper Sec. 3.1: every MODES; TEACHER_ALPHAS "SMALL LARGE" weigh two teachers."""
    alphas = s.words("TEACHER_ALPHAS")
    if len(alphas) not in (0, 2):
        raise ConfigError(f"TEACHER_ALPHAS takes two weights, small then large, got '{s['TEACHER_ALPHAS']}'")
    weights = flags(small_teacher_alpha=alphas[0], large_teacher_alpha=alphas[1]) if alphas else []
    paths, runs = {"small": s["BASE_TEACHER"], "large": s["LARGE_TEACHER"]}, []
    for mode in s.words("MODES"):
        needed = TEACHER_MODES[mode].teachers if mode in TEACHER_MODES else ("small", "large")
        pool = [arg for name in needed for arg in (f"--{name}_teacher", paths[name])]
        runs.append((mode, pool + (weights if len(needed) == 2 else []) + ["--uncertainty_mode", mode]))
    return _students(s, "teacher", "dynamic_teacher.py", runs)


def data(s):
    """Paper Sec. 3.2: every SELECTIONS x RATIOS, plus plain KD (KD_BASELINE)."""
    scope = "" if s["SELECTION_SCOPE"] == "batch" else f"-{s['SELECTION_SCOPE']}"
    kd = ["--teacher", s["TEACHER"]]
    runs = [("kd", kd)] if s.on("KD_BASELINE") else []
    for strategy in s.words("SELECTIONS"):
        for ratio in s.words("RATIOS"):
            chosen = ["--selection_strategy", strategy, "--selection_ratio", ratio]
            runs.append((f"{strategy}-r{ratio}{scope}", kd + chosen + flags(selection_scope=s["SELECTION_SCOPE"])))
    return _students(s, "data", "dynamic_data.py", runs)


def objective(s):
    """Paper Sec. 3.3: every STRATEGIES (none: the static baseline)."""
    layers, runs = "" if s["REP_LAYERS"] == "all" else f"-{s['REP_LAYERS']}", []
    for strategy in s.words("STRATEGIES"):
        rep = flags(strategy=strategy, kd_rep_alpha=s["REP_ALPHA"], rep_layers=s["REP_LAYERS"])
        rep += flags(rep_normalization=s["STATIC_REP_NORMALIZATION"]) if strategy == "none" else []
        runs.append((f"{strategy}{layers}", ["--teacher", s["TEACHER"]] + rep))
    return _students(s, "objective", "dynamic_objective.py", runs)


def everything(s):
    """The teachers, then the distillation sweeps of STAGES as one stage."""
    stages = _chosen(s, "STAGES", ("teachers", "teacher", "data", "objective"), "stage")
    first = teachers(Settings.of(s.env, "teachers"))[0] if "teachers" in stages else []
    students = [job for name in stages if name != "teachers" for job in SWEEPS[name].build(Settings.of(s.env, name))[0]]
    return [first, students]  # `plan` drops the student baseline's repeats


# --- the quickstart and the miniature

KD = "--teacher {large}"
TWO = "--small_teacher {small} --large_teacher {large}"
HARD = f"{TWO} --uncertainty_mode hard"
ENTROPY = "--selection_strategy entropy --selection_ratio 0.1"
UNCERTAINTY = "--strategy uncertainty --kd_rep_alpha 1.0"
STORE = "--teacher_cache disk"  # the students share the teachers' outputs

# The tweets demo's; the empty LAYERS follow MODEL's depth.
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
    "MAX_LEN": "64",
    "SAVE_ARGS": "--save_strategy no",
    "LARGE_EPOCHS": "3",
    "LARGE_LR": "5e-5",
    "SMALL_EPOCHS": "3",
    "SMALL_LR": "1e-4",
    "STUDENT_EPOCHS": "3",
    "STUDENT_LR": "1e-4",
    "SHOW_OUTPUT": "1",
}
# With TASK set, unless set too: the paper's length and rate.
QUICKSTART_TASK = {"MAX_LEN": "128", "LARGE_LR": "2e-5", "SMALL_LR": "2e-5", "STUDENT_LR": "2e-5"}
QUICKSTART_ROWS = (
    ("student/{label}/seed{seed}", "train_teacher.py", ""),
    ("data/{label}/kd-seed{seed}", "dynamic_data.py", f"{KD} {STORE}"),
    ("teacher/{label}/hard-seed{seed}", "dynamic_teacher.py", f"{HARD} {STORE}"),
    ("data/{label}/entropy-r0.1-seed{seed}", "dynamic_data.py", f"{KD} {ENTROPY} {STORE}"),
    ("objective/{label}/uncertainty-seed{seed}", "dynamic_objective.py", f"{KD} {UNCERTAINTY} {STORE}"),
    (
        "combined/{label}/hard+entropy-r0.1+uncertainty-seed{seed}",
        "dynamic_teacher.py",
        f"{HARD} {ENTROPY} {UNCERTAINTY} {STORE}",
    ),
)


def quickstart(s):
    """Two teachers cut from MODEL, then the QUICKSTART_ROWS."""
    from transformers import AutoConfig

    _need_model(s, "scripts/quickstart.sh", "a model folder or hub id")
    demo = not s["TASK"]
    task, label, files = ("custom", "tweets", tweet_files(s["DATA_DIR"])) if demo else (s["TASK"], s["TASK"], None)
    if not demo:
        s.update({name: s.env.get(name) or value for name, value in QUICKSTART_TASK.items()})
    depth = AutoConfig.from_pretrained(s["MODEL"]).num_hidden_layers
    layers = {"STUDENT": 2 if depth < 12 else 6, "LARGE": depth, "SMALL": (depth + 1) // 2}
    extra = ["--logging_steps", "10"] + precision_flags(s)

    def role(name):  # NAME_LAYERS layers cut from MODEL, on NAME's schedule
        cut = s.int(f"{name}_LAYERS", unset=layers[name])
        train = train_flags(s, task, s["SEED"], s[f"{name}_LR"], s[f"{name}_EPOCHS"], s["DATA_DIR"] or None, files)
        return (*model_flags(s["MODEL"], None if cut == depth else cut), *train, *extra)

    student, root = role("STUDENT"), s["OUT_ROOT"]
    paths = {name: f"{root}/teachers/{label}-{name}" for name in ("large", "small")}
    first = [Job(path, "train_teacher.py", role(name.upper())) for name, path in paths.items()]
    rows = [
        Job(f"{root}/{row.format(label=label, seed=s['SEED'])}", script, (*student, *fill(words, **paths)))
        for row, script, words in QUICKSTART_ROWS
    ]
    return [first, rows]


# The miniature: docs/miniature.md says what each row and claim is for.
_RELEASED_WEIGHTS = "--small_teacher_alpha {} --large_teacher_alpha {}".format(  # released teacher.sh's 1 + 1
    *PROFILES["released"]["teacher"]["TEACHER_ALPHAS"].split()
)
_REP = "--kd_rep_alpha 1.0 --rep_layers cls"  # [CLS] states are cached with the logits: no teacher pass
MINIATURE_ROWS = (
    ("student-alone", "train_teacher.py", ""),
    ("kd-large", "dynamic_data.py", KD),
    ("kd-large-w2", "dynamic_data.py", f"{KD} --kd_kl_alpha 2"),
    ("teacher-hard", "dynamic_teacher.py", HARD),
    ("teacher-hard-w1", "dynamic_teacher.py", f"{HARD} {_RELEASED_WEIGHTS}"),
    ("teacher-average", "dynamic_teacher.py", f"{TWO} --uncertainty_mode average"),
    ("teacher-average-w1", "dynamic_teacher.py", f"{TWO} --uncertainty_mode average {_RELEASED_WEIGHTS}"),
    ("data-random-r0.5", "dynamic_data.py", f"{KD} --selection_strategy random --selection_ratio 0.5"),
    ("data-margin-r0.5", "dynamic_data.py", f"{KD} --selection_strategy margin --selection_ratio 0.5"),
    ("objective-none", "dynamic_objective.py", f"{KD} --strategy none {_REP}"),
    ("objective-uncertainty", "dynamic_objective.py", f"{KD} --strategy uncertainty {_REP}"),
    (
        "objective-none-released",
        "dynamic_objective.py",
        f"{KD} --kd_rep_alpha 1.0 --rep_layers all --rep_normalization sequence",
    ),
    (
        "combined",
        "dynamic_teacher.py",
        f"{HARD} --selection_strategy entropy --selection_ratio 0.5 --strategy uncertainty {_REP}",
    ),
)
# Rows whose cost (time, teacher forwards) is compared keep their own teacher cache.
MINIATURE_COST_ROWS = ("kd-large", "data-random-r0.5", "data-margin-r0.5")
# accuracy points of §3.2's non-inferiority claim "selection matches full KD"
NONINFERIORITY_MARGIN = 1.0
# (paper section, claim, row, baseline[, margin]): `row` scores higher than `baseline`, or with a margin,
# at most `margin` points lower (claims.claims_table).
MINIATURE_CLAIMS = (
    ("KD", "distilling from the large teacher beats training the student alone", "kd-large", "student-alone"),
    ("3.1", "hard adoption beats the large teacher alone", "teacher-hard", "kd-large"),
    ("3.1", "hard adoption beats averaging both teachers", "teacher-hard", "teacher-average"),
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
MINIATURE = {
    "OUT_ROOT": "outputs/miniature",
    "MODEL": "",
    "DATA_DIR": "",
    "SEEDS": "1 2 3 4 5",
    "PRECISION": "auto",
    "MAX_LEN": "64",
    "SAVE_ARGS": "--save_strategy no",
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


def _on_tweets(s, model, layers, seed, lr, epochs, extra):
    """`model`'s first `layers` layers (None: all) on the tweets in DATA_DIR."""
    train = train_flags(s, "custom", seed, lr, epochs, files=tweet_files(s["DATA_DIR"]))
    return (*model_flags(model, layers), *train, *extra)


def miniature(s):
    """Teachers: MODEL (or LARGE_MODEL: give it its own OUT_ROOT) and its first SMALL_LAYERS layers; then
    MINIATURE_ROWS x SEEDS."""
    _need_model(s, "scripts/miniature.sh")
    root, extra = s["OUT_ROOT"], ["--logging_steps", "25", "--disable_tqdm", "True"] + precision_flags(s)
    paths, seed = {name: f"{root}/teachers/{name}" for name in ("large", "small")}, s["TEACHER_SEED"]
    large = _on_tweets(s, s["LARGE_MODEL"] or s["MODEL"], None, seed, s["LARGE_LR"], s["LARGE_EPOCHS"], extra)
    small = _on_tweets(s, s["MODEL"], s.int("SMALL_LAYERS"), seed, s["SMALL_LR"], s["TEACHER_EPOCHS"], extra)
    students = []
    for seed in s.words("SEEDS"):
        student = _on_tweets(s, s["MODEL"], s.int("STUDENT_LAYERS"), seed, s["LR"], s["EPOCHS"], extra)
        for row, script, words in MINIATURE_ROWS:
            store = "" if script == "train_teacher.py" or row in MINIATURE_COST_ROWS else f" {STORE}"
            students.append(Job(f"{root}/runs/{row}/seed{seed}", script, (*student, *fill(words + store, **paths))))
    return [[Job(paths["large"], "train_teacher.py", large), Job(paths["small"], "train_teacher.py", small)], students]


# --- the cost benchmarks

# benchmarks/distillation_cost.py's grids; a TEACHER folder skips the teachers' fine-tuning.
COST = {
    "OUT_ROOT": "outputs/benchmark",
    "MODEL": "",
    "DATA_DIR": "$OUT_ROOT/tweets",
    "TEACHER": "",
    "STUDENT_LAYERS": "2",
    "MAX_LEN": "64",
    "EPOCHS": "3",
    "ONLY": "",
    "SAVE_ARGS": "--save_strategy no",
}
SHARED_STORE = {
    **COST,
    "SELECTIONS": PAPER["SELECTIONS"],
    "RATIOS": "0.1 0.5",
    "STUDENT_RUNS": "9",
}
# In run order (benchmarks/README.md says why).
COST_VARIANTS = {
    "original": ("dynamic_data.py", f"{KD} --teacher_cache none --pad_to_max_length"),
    "cached": ("dynamic_data.py", KD),
    "student": ("train_teacher.py", ""),
    "cached-bf16": ("dynamic_data.py", f"{KD} --teacher_dtype bfloat16"),
    "epoch-r0.1": ("dynamic_data.py", f"{KD} {ENTROPY} --selection_scope epoch"),
    "uncached": ("dynamic_data.py", f"{KD} --teacher_cache none"),
    "batch-r0.1": ("dynamic_data.py", f"{KD} {ENTROPY}"),
    "hard-nocache": ("dynamic_teacher.py", f"{HARD} --teacher_cache none"),
    "hard": ("dynamic_teacher.py", HARD),
}


def _cost_runs(s, small_teacher):
    """(teacher stage, student flags, teachers' folders); without TEACHER, MODEL and its first 3 layers."""
    _need_model(s, "benchmarks/distillation_cost.py")
    root, extra = s["OUT_ROOT"], ["--disable_tqdm", "True"] + precision_flags(s)
    if s["TEACHER"] and small_teacher:
        raise ConfigError(
            "the hard-adoption variants need the small teacher fine-tuned from MODEL; "
            "leave TEACHER unset or leave them out of ONLY"
        )
    stage, paths = [], {"large": s["TEACHER"], "small": None}
    if not s["TEACHER"]:  # the 3-layer cut starts further from a classifier: a higher rate leaves chance level
        paths = {"large": f"{root}/teacher-6L", "small": f"{root}/teacher-3L"}
        stage = [
            Job(paths["large"], "train_teacher.py", _on_tweets(s, s["MODEL"], None, 1, "5e-5", "1", extra)),
            Job(paths["small"], "train_teacher.py", _on_tweets(s, s["MODEL"], 3, 1, "2e-4", "2", extra)),
        ]
    return stage, _on_tweets(s, s["MODEL"], s.int("STUDENT_LAYERS"), 1, "1e-4", s["EPOCHS"], extra), paths


def cost(s):
    only = _chosen(s, "ONLY", COST_VARIANTS, "variant") or list(COST_VARIANTS)
    chosen = {name: row for name, row in COST_VARIANTS.items() if name in only}
    stage, student, paths = _cost_runs(s, any("{small}" in words for _, words in chosen.values()))
    runs = [
        Job(f"{s['OUT_ROOT']}/runs/{name}", script, (*student, *fill(words, **paths)))
        for name, (script, words) in chosen.items()
    ]
    return [stage, runs] if stage else [runs]


def shared_store(s):
    """KD and SELECTIONS x RATIOS on one cold store, STUDENT_RUNS students alone spread between."""
    stage, student, paths = _cost_runs(s, False)
    root = f"{s['OUT_ROOT']}/sweep"
    store = ("--teacher_cache", "disk", "--teacher_cache_dir", f"{root}/teacher_outputs")
    kd = (*student, "--teacher", paths["large"], *store)
    runs = [Job(f"{root}/kd", "dynamic_data.py", kd)]
    for strategy in s.words("SELECTIONS"):
        for ratio in s.words("RATIOS"):
            chosen = ("--selection_strategy", strategy, "--selection_ratio", ratio)
            runs.append(Job(f"{root}/{strategy}-r{ratio}", "dynamic_data.py", kd + chosen))
    alone, distilled = s.int("STUDENT_RUNS", minimum=0), len(runs)
    for number in reversed(range(alone)):  # student i goes before distilled run round(i * n / (k - 1))
        runs.insert(
            round(number * distilled / max(alone - 1, 1)),
            Job(f"{root}/student-{number + 1}", "train_teacher.py", student),
        )
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
