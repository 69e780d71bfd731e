"""Dynamic teacher adoption (paper Sec. 3.1): uncertain instances learn from the small teacher,
confident ones from the large teacher.

    python dynamic_teacher.py --model_name_or_path bert-base-uncased --student_num_layers 6 \
        --small_teacher outputs/teachers/rte-base --large_teacher outputs/teachers/rte-large \
        --task_name rte --uncertainty_mode hard --output_dir outputs/teacher/rte-hard

--uncertainty_mode defaults to hard here; single-small, single-large and average are the
baselines. Data selection and supervision adjustment combine with it.
"""

import sys

from dynamic_kd.recipe import cli, distill


def main(argv=None):
    distill(argv, __file__, defaults={"uncertainty_mode": "hard"})


if __name__ == "__main__":
    sys.exit(cli(main))
