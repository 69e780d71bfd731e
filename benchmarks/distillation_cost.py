"""What distillation costs over plain fine-tuning, and what the teacher-output store and data selection save.
Grid `cost`, with --sweep also `shared-store`: benchmarks/README.md."""

import argparse
import glob
import json
import os
import shlex
import sys
from pathlib import Path

import common
import pandas as pd

from benchmarks import synthetic
from dynamic_kd import report, sweeps
from dynamic_kd.runs import RESULTS_FILE
from scripts.prepare_tweets import LABELS

# (variant, baseline) ratios printed where both ran
RATIOS = (("cached", "student"), ("cached-bf16", "student"), ("cached", "original"), ("epoch-r0.1", "cached"))
RATIO_COLUMNS = ("train loop s", "run wall s", "run CPU s")
# On the GPU every run is bf16 (cached-bf16 = cached); no small teacher.
GPU_VARIANTS = ("original", "cached", "student", "epoch-r0.1", "uncached", "batch-r0.1")
DECIMALS = {"examples/s": 0, "peak RSS MB": 0, "peak GPU MB": 0, "teacher forward examples": 0, "dev acc": 4}
DECIMALS |= {"train loop s": 1, "run wall s": 1, "run CPU s": 1, "time vs original": 3}


def gpu_settings(work, train):
    """A random-weight BERT-base as the teacher, its first 6 layers as the student."""
    tokenizer = common.minilm()  # bert-base-uncased's vocabulary
    data, model = os.path.join(work, "texts"), os.path.join(work, "bert-base-random")
    synthetic.write_data(data, train, 2000, ("sentence",), (100, 140), LABELS, tokenizer)
    synthetic.random_bert(model, tokenizer, LABELS)
    # the teacher check would refuse a random teacher
    gpu = ["STUDENT_LAYERS=6", "MAX_LEN=128", "PRECISION=bf16", "KD_ARGS=--skip_teacher_check"]
    return [f"MODEL={model}", f"TEACHER={model}", f"DATA_DIR={data}", *gpu]


def load(folder):
    """A finished run's figures (results.json and `sweeps.run_end`), else None."""
    path = Path(folder, RESULTS_FILE)
    if not path.exists():
        return None
    results = json.loads(path.read_text())
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
    """`load`'s rows as markdown, blank where missing."""
    rows = rows.drop(columns=["peak GPU MB"] if rows["peak GPU MB"].isna().all() else [])  # a copy
    if "original" in rows.index:
        rows["time vs original"] = rows["train loop s"] / rows.loc["original", "train loop s"]
    for column in rows:
        rows[column] = rows[column].map(lambda v, places=DECIMALS[column]: "" if pd.isna(v) else f"{v:.{places}f}")
    return report.render(rows.reset_index(), "md")


def cost_table(work, epochs):
    rows = {name: row for name in sweeps.grids().COST_VARIANTS if (row := load(os.path.join(work, "runs", name)))}
    rows = pd.DataFrame.from_dict(rows, orient="index").rename_axis("variant")
    text = f"### Cost ({epochs} epochs)\n\n" + table(rows) + "\n"
    for a, b in RATIOS:
        if a in rows.index and b in rows.index:
            ratios = (f"{rows.loc[a, column] / rows.loc[b, column]:.3f} ({column})" for column in RATIO_COLUMNS)
            text += f"{a}/{b}: " + ", ".join(ratios) + "\n"
    return text


def sweep_table(work):
    finished = sorted(glob.glob(os.path.join(work, "sweep", "*", RESULTS_FILE)), key=os.path.getmtime)  # as they ran
    rows = {os.path.basename(os.path.dirname(path)): load(os.path.dirname(path)) for path in finished}
    rows = pd.DataFrame.from_dict(rows, orient="index").rename_axis("run")
    alone = rows[rows.index.str.startswith("student-")]
    distilled, n = rows.drop(alone.index), len(rows) - len(alone)
    text = "### Shared-store sweep\n\n" + table(rows) + "\n"
    for column in RATIO_COLUMNS:
        total, mean = distilled[column].sum(), alone[column].mean()
        text += (
            f"{column}: {n} distilled runs {total:.1f} s; student alone {mean:.1f} s (mean of {len(alone)}) x {n} = "
            f"{mean * n:.1f} s; ratio {total / (mean * n):.3f}\n"
        )
    return text


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", help="output folder (default outputs/benchmark[-gpu])")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train", type=int, help="training rows (default 2000, --gpu: 50000)")
    parser.add_argument("--only", nargs="*", default=[], help="run only these variants (and the teachers)")
    parser.add_argument("--sweep", action="store_true", help="also the shared-store sweep")
    parser.add_argument("--student_runs", type=int, default=9, help="--sweep: student-alone runs (default 9)")
    parser.add_argument("--sweep_train", type=int, help="--sweep: train on the first N rows")
    parser.add_argument("--gpu", action="store_true", help="random BERT-base -> 6 layers, bf16")
    parser.add_argument("--dry_run", action="store_true", help="print the plan, run nothing")
    args = parser.parse_args(argv)
    if args.gpu and not args.dry_run:
        import torch

        if not torch.cuda.is_available():
            sys.stderr.write("error: --gpu needs a CUDA GPU, and torch sees none; drop --gpu or add --dry_run\n")
            return 2
    work = os.path.abspath(args.work or os.path.join(common.ROOT, "outputs", "benchmark" + "-gpu" * args.gpu))
    os.environ["DYNAMIC_KD_CACHE"] = os.path.join(work, "cache")  # the runs inherit it: cold and reproducible
    train = args.train or (50000 if args.gpu else 2000)
    if args.gpu:
        settings = gpu_settings(work, train)
    else:
        settings = [f"MODEL={common.minilm()}", f"DATA_DIR={common.tweets(os.path.join(work, 'tweets'), train, 500)}"]
    settings += [f"OUT_ROOT={work}", f"EPOCHS={args.epochs}", f"PYTHON={sys.executable}", f"DRY_RUN={args.dry_run:d}"]
    only = args.only or (list(GPU_VARIANTS) if args.gpu else [])
    grids = [["cost", f"ONLY={' '.join(only)}"]]
    if args.sweep:
        subset = [f"EXTRA_ARGS=--max_train_samples {args.sweep_train}"] if args.sweep_train else []
        grids.append(["shared-store", f"STUDENT_RUNS={args.student_runs}", *subset])
    for grid in grids:
        sys.stdout.write(f"# python -m dynamic_kd.sweeps {shlex.join(grid + settings)}\n")
        if code := sweeps.main(grid + settings):
            return code
    if args.dry_run:
        return 0
    text = cost_table(work, args.epochs) + ("\n" + sweep_table(work) if args.sweep else "")
    return common.publish(text, os.path.join(work, "benchmark.md"))


if __name__ == "__main__":
    sys.exit(main())
