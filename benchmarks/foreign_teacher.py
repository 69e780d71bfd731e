"""A 12-layer teacher with its own tokenizer, distilled into the miniature's MiniLM student (benchmarks/README.md)."""

import argparse
import os
import sys

import common

from dynamic_kd import claims, report
from dynamic_kd.runs import load_runs
from dynamic_kd.sweeps import Job, Settings, execute, grids, model_flags, train_flags

ROWS = ("student-alone", "kd-minilm6", "kd-mpnet")
CLAIMS = (
    ("KD", "KD from the 6-layer MiniLM teacher (same tokenizer) beats the student alone", ROWS[1], ROWS[0]),
    ("KD", "KD from the 12-layer MPNet teacher (its own tokenizer) beats the student alone", ROWS[2], ROWS[0]),
    ("teacher", "the 12-layer MPNet teacher teaches better than the 6-layer MiniLM teacher", ROWS[2], ROWS[1]),
)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mpnet", required=True, help="the unzipped all-mpnet-base-v2 folder")
    parser.add_argument("--work", default=os.path.join(common.ROOT, "outputs", "foreign-teacher"))
    parser.add_argument("--seeds", default="1 2 3 4 5")
    args = parser.parse_args()
    minilm = common.minilm()
    # the miniature's settings (scripts/grids.py MINIATURE): data, length, batches, schedules, the student
    s = Settings.of({"PRECISION": "fp32"}, "miniature")
    files = grids().tweet_files(common.tweets(os.path.join(args.work, "tweets"), 3000, 1500))
    log = ["--logging_steps", "25", "--disable_tqdm", "True", "--report_to", "none"]

    def role(model, layers, seed, lr, epochs):
        return (*model_flags(model, layers), *train_flags(s, "custom", seed, lr, epochs, files=files), *log)

    teachers = {name: os.path.join(args.work, "teachers", name) for name in ("minilm6", "mpnet")}
    seed, runs = s["TEACHER_SEED"], os.path.join(args.work, "runs")
    jobs = [
        Job(teachers["minilm6"], "train_teacher.py", role(minilm, None, seed, s["TEACHER_LR"], s["TEACHER_EPOCHS"])),
        Job(teachers["mpnet"], "train_teacher.py", role(args.mpnet, None, seed, "2e-5", "2")),  # the paper's base lr
    ]
    for seed in args.seeds.split():
        student = role(minilm, s.int("STUDENT_LAYERS"), seed, s["LR"], s["EPOCHS"])
        jobs.append(Job(os.path.join(runs, "student-alone", f"seed{seed}"), "train_teacher.py", student))
        for name, teacher in teachers.items():
            kd = (*student, "--teacher", teacher, "--teacher_cache", "disk")
            jobs.append(Job(os.path.join(runs, f"kd-{name}", f"seed{seed}"), "dynamic_data.py", kd))
    for job in jobs:
        if not job.finished() and execute(job, [sys.executable, job.script, *job.flags, "--output_dir", job.out]):
            sys.exit(f"error: {job.out} failed; see {job.out}.log")
    rows = claims.seeded_rows(load_runs([runs])[0])
    print(report.render(claims.rows_table(rows, ROWS), "md"))
    print()
    print(report.render(claims.claims_table(rows, CLAIMS), "md"))


if __name__ == "__main__":
    main()
