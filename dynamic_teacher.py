"""Dynamic teacher adoption (paper Sec. 3.1): uncertain instances learn from the small teacher, confident ones
from the large. --uncertainty_mode defaults to hard here (baselines: single-small, single-large, average)."""

import sys

from dynamic_kd.recipe import cli, distill


def main(argv=None):
    distill(argv, __file__, defaults={"uncertainty_mode": "hard"})


if __name__ == "__main__":
    sys.exit(cli(main))
