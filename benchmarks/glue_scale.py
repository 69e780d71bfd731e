"""GLUE-scale memory and data preparation: peak RSS with [CLS]-state alignment, and the tokenisation cache.
Synthetic pairs, a random 1-layer teacher of hidden size 1024: benchmarks/README.md."""

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import common

from benchmarks import synthetic
from dynamic_kd import sweeps
from dynamic_kd.runs import RESULTS_FILE

LABELS = ("contradiction", "entailment", "neutral")
TEACHER = {"hidden_size": 1024, "num_hidden_layers": 1, "num_attention_heads": 16, "intermediate_size": 256}


def time_load_data(argv):
    """Print as JSON the seconds `recipe.load_data` takes for the run flags `argv` (in a fresh process)."""
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
    parser.add_argument("--work", default=os.path.join(common.ROOT, "outputs", "benchmark-glue"))
    parser.add_argument("--train", type=int, default=392702, help="training pairs (default: MNLI's 392,702)")
    parser.add_argument("--max_steps", type=int, default=50, help="training steps of each run (batch 32)")
    parser.add_argument("--dry_run", action="store_true", help="print the plan, run nothing")
    args = parser.parse_args(argv)
    from dynamic_kd.precision import choose_precision

    work, model = os.path.abspath(args.work), common.minilm()
    os.environ["DYNAMIC_KD_CACHE"] = os.path.join(work, "cache")  # the runs inherit it
    folders = ("texts", "pairs", "teacher-1024", "teacher_outputs")
    texts, data, teacher, store = (os.path.join(work, name) for name in folders)
    synthetic.write_data(texts, args.train, 2000, ("premise", "hypothesis"), (5, 25), LABELS, model)
    synthetic.write_data(data, args.train, 2000, ("premise", "hypothesis"), (1, 3), LABELS, model)
    synthetic.random_bert(teacher, model, LABELS, **TEACHER)
    precision, why = choose_precision()
    steps = str(args.max_steps)
    data_flags = ["--text_column", "premise,hypothesis", "--max_steps", steps, "--logging_steps", steps]
    kd = ["--skip_teacher_check", "--kd_rep_alpha", "1", "--rep_layers", "cls", "--teacher_cache", "disk"]
    kd += ["--teacher_cache_dir", store, "--teacher_dtype", "bfloat16" if precision == "bf16" else "float32"]
    settings = ["cost", "ONLY=student cached", f"OUT_ROOT={work}", f"MODEL={model}", f"TEACHER={teacher}"]
    settings += [f"DATA_DIR={data}", "MAX_LEN=32", "EPOCHS=1", f"EXTRA_ARGS={shlex.join(data_flags)}"]
    settings += [f"KD_ARGS={shlex.join(kd)}", "PYTHON=" + sys.executable, f"DRY_RUN={int(args.dry_run)}"]
    sys.stdout.write(f"# teacher pass in {precision} ({why})\n# python -m dynamic_kd.sweeps {shlex.join(settings)}\n")
    if args.dry_run:
        return sweeps.main(settings)

    # 1. data preparation, cold then warm
    shutil.rmtree(os.path.join(work, "cache", "tokenized"), ignore_errors=True)

    def load_data_seconds(folder, *flags):
        train, dev = (os.path.join(folder, name) for name in ("train.tsv", "dev.tsv"))
        files = ["--train_file", train, "--validation_file", dev, "--text_column", "premise,hypothesis"]
        argv = [*sweeps.model_flags(model, 2), *files, "--output_dir", os.path.join(work, "load_data"), *flags]
        command = [sys.executable, os.path.abspath(__file__), "--time_load_data", *argv]
        out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        return json.loads(out.strip().splitlines()[-1])["seconds"]

    seconds = [load_data_seconds(texts), load_data_seconds(texts)]
    load_data_seconds(data, "--max_seq_length", "32")  # the runs below read their data from the cache

    # 2. peak RSS of the student alone and of the distilled run
    if code := sweeps.main(settings):
        return code
    ends = {name: sweeps.run_end(os.path.join(work, "runs", name)) for name in ("student", "cached")}
    log = Path(work, "runs", "cached.log").read_text(encoding="utf-8", errors="replace")
    prefill = re.findall(r"computed (\d+) outputs before training in ([\d.]+) s", log)
    forwards = json.loads(Path(work, "runs", "cached", RESULTS_FILE).read_text())["teacher_forward_examples"]
    stored = sum(path.stat().st_size for path in Path(store).rglob("*") if path.is_file())
    growth = ends["cached"]["peak_rss_mb"] - ends["student"]["peak_rss_mb"]
    run = "{peak_rss_mb:.0f} MB (run: {seconds:.0f} s wall, {cpu_seconds:.0f} s CPU)".format
    rows, prefill_seconds = prefill[-1] if prefill else (0, 0)
    measures = {
        "data preparation (`texts`), first run: tokenises": f"{seconds[0]:.1f} s",
        "data preparation (`texts`), second run: tokenisation cache": f"{seconds[1]:.1f} s "
        f"({seconds[1] / seconds[0]:.1%} of the first)",
        f"peak RSS, student alone (`pairs`, {steps} steps)": run(**ends["student"]),
        f"peak RSS, KD + [CLS] alignment, disk store (`pairs`, {steps} steps)": run(**ends["cached"]),
        "peak RSS growth": f"{growth:.0f} MB",
        "store prefill": f"{rows} rows in {float(prefill_seconds):.0f} s, teacher in {precision}",
        "teacher forward examples": f"{forwards:,}",
        "store on disk": f"{stored / 1e9:.2f} GB",
    }
    text = "".join(f"| {measure} | {value} |\n" for measure, value in measures.items())
    text = f"### MNLI-size data ({args.train:,} pairs)\n\n| measure | value |\n|---|---:|\n{text}"
    return common.publish(text, os.path.join(work, "glue_scale.md"))


if __name__ == "__main__":
    sys.exit(main())
