"""Dynamic supervision adjustment (paper Sec. 3.3); --kd_rep_alpha defaults to 1 here (--strategy none: BERT-PKD)."""

import sys

from dynamic_kd.recipe import cli, distill


def main(argv=None):
    distill(argv, __file__, defaults={"kd_rep_alpha": 1.0})


if __name__ == "__main__":
    sys.exit(cli(main))
