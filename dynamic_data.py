"""Dynamic data selection (paper Sec. 3.2); without --selection_strategy, plain KD (the baseline)."""

import sys

from dynamic_kd.recipe import cli, distill


def main(argv=None):
    distill(argv, __file__)


if __name__ == "__main__":
    sys.exit(cli(main))
