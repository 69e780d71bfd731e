"""Every selection strategy, teacher mode and objective strategy on the offline demo data.
The paper's grids on distillation_cost.py's data and teachers (run it first): see benchmarks/README.md.
"""

import argparse
import os
import shlex
import sys

import common

from dynamic_kd import report, sweeps
from dynamic_kd.runs import RESULTS_FILE, load_runs, setting_columns


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default=os.path.join(common.ROOT, "outputs", "benchmark"))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seeds", default="1")
    args = parser.parse_args(argv)
    work = os.path.abspath(args.work)
    data, small, large, grid = (os.path.join(work, name) for name in ("tweets", "teacher-3L", "teacher-6L", "grid"))
    needed = (os.path.join(data, "dev.tsv"), os.path.join(small, RESULTS_FILE), os.path.join(large, RESULTS_FILE))
    if not all(map(os.path.exists, needed)):
        sys.exit("error: teachers or data missing; run python benchmarks/distillation_cost.py --only student first")
    train_file, validation_file = sweeps.grids().tweet_files(data)
    files = ["--disable_tqdm", "True", "--train_file", train_file, "--validation_file", validation_file]
    settings = [f"OUT_ROOT={grid}", "TASKS=custom", f"SEEDS={args.seeds}", f"EPOCHS={args.epochs}"]
    settings += [f"STUDENT_MODEL={common.minilm()}", "STUDENT_LAYERS=2", "LR=1e-4", "MAX_LEN=64"]
    settings += [f"TEACHER={large}", f"BASE_TEACHER={small}", f"LARGE_TEACHER={large}", "RATIOS=0.1 0.5"]
    settings += ["SAVE_ARGS=--save_strategy no", f"EXTRA_ARGS={shlex.join(files)}", "STAGES=teacher data objective"]
    settings += ["PYTHON=" + sys.executable]
    for sweep in (["all"], ["objective", "STRATEGIES=uncertainty", "REP_LAYERS=cls", "STUDENT_BASELINE=0"]):
        if code := sweeps.main(sweep[:1] + settings + sweep[1:]):
            return code
    sections = []
    for aspect in ("teacher", "data", "objective"):
        runs, skipped = load_runs([os.path.join(grid, aspect), os.path.join(grid, "student")])
        cost = runs.groupby(["method", *setting_columns(runs)], sort=False)
        cost = cost[["teacher_forward_examples", "train_runtime_s"]].mean().round(1).reset_index()
        table = report.render(cost.rename(columns={"method": "Method"}).astype(str), "md")
        sections.append(f"### {aspect}\n\n{report.format_report(runs, skipped)}\n{table}")
    return common.publish("\n".join(sections), os.path.join(work, "strategy_grid.md"))


if __name__ == "__main__":
    sys.exit(main())
