"""Dynamic teacher adoption (paper Sec. 3.1); --uncertainty_mode defaults to hard here."""

import sys

from dynamic_kd.recipe import cli, distill


def main(argv=None):
    distill(argv, __file__, defaults={"uncertainty_mode": "hard"})


if __name__ == "__main__":
    sys.exit(cli(main))
