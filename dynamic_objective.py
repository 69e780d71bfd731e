"""Dynamic supervision adjustment (paper Sec. 3.3): uncertain instances lean on hidden-state
alignment, confident ones on matching the teacher's outputs.

    python dynamic_objective.py --model_name_or_path bert-base-uncased --student_num_layers 6 \
        --teacher outputs/teachers/rte-base --task_name rte --strategy uncertainty \
        --output_dir outputs/objective/rte-uncertainty

--strategy none is the static BERT-PKD baseline. Hidden-state alignment is on here by default
(--kd_rep_alpha 1.0); the other scripts default it to 0.
"""

import sys

from dynamic_kd.recipe import cli, distill


def main(argv=None):
    distill(argv, __file__, defaults={"kd_rep_alpha": 1.0})


if __name__ == "__main__":
    sys.exit(cli(main))
