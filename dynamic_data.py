"""Dynamic data selection (paper Sec. 3.2): only the most uncertain fraction of instances is
distilled; every instance still gets the gold-label loss.

    python dynamic_data.py --model_name_or_path bert-base-uncased --student_num_layers 6 \
        --teacher outputs/teachers/rte-base --task_name rte --selection_strategy entropy \
        --selection_ratio 0.1 --output_dir outputs/data/rte-entropy-0.1

Without --selection_strategy this is plain KD (the baseline). The other two methods' flags
(--uncertainty_mode, --strategy) work here too: all three are strategies of one engine.
"""

import sys

from dynamic_kd.recipe import cli, distill


def main(argv=None):
    distill(argv, __file__)


if __name__ == "__main__":
    sys.exit(cli(main))
