"""Paired claims of a seeded sweep (runs in <root>/<row>/seed<seed>): rows compared seed by seed."""

import math
import os

import pandas as pd
from scipy import stats

from dynamic_kd.errors import ConfigError

# The claims and the miniature's non-inferiority margin are in accuracy points.
CLAIMS_METRIC = "accuracy"


def seeded_rows(runs: pd.DataFrame) -> pd.DataFrame:
    """Per run of `runs.load_runs`: its row folder, seed, accuracy x100, training seconds, teacher forwards."""
    lacking = runs.task[runs.metrics.map(lambda m: CLAIMS_METRIC not in m)]
    if len(lacking):
        raise ConfigError(f"the claims are stated in {CLAIMS_METRIC}, which task {lacking.iloc[0]} does not report")
    return pd.DataFrame(
        {
            "row": runs.run_dir.map(lambda path: os.path.basename(os.path.dirname(path))),
            "seed": runs.seed.astype(str),
            "score": runs.metrics.map(lambda m: m[CLAIMS_METRIC]) * 100,
            "seconds": runs.train_runtime_s,
            "forwards": runs.teacher_forward_examples,
        }
    )


def rows_table(rows: pd.DataFrame, order) -> pd.DataFrame:
    """Per row of `order` that ran: score mean ± sample std (n), mean time and forwards."""
    agg = rows.groupby("row").agg(
        mean=("score", "mean"),
        std=("score", "std"),
        n=("score", "size"),
        seconds=("seconds", "mean"),
        forwards=("forwards", "mean"),
    )
    agg = agg.loc[[name for name in order if name in agg.index]]
    cells = [
        f"{m:.1f} ± {s:.1f} (n={n})" if n > 1 else f"{m:.1f} (n=1)" for m, s, n in zip(agg["mean"], agg["std"], agg.n)
    ]
    return pd.DataFrame(
        {
            "run": agg.index,
            "dev accuracy": cells,
            "train s": agg.seconds.map("{:.0f}".format),
            "teacher forwards": agg.forwards.map("{:.0f}".format),
        }
    )


def claims_table(rows: pd.DataFrame, claims) -> pd.DataFrame:
    """Each claim (section, text, row, baseline[, margin]) as the paired difference row - baseline over the seeds
    both ran: mean, 95% t-interval, verdict: holds (interval above -margin, default 0), contradicted (below) or
    within noise."""
    scores = rows.pivot_table(index="seed", columns="row", values="score")
    out = []
    for section, text, row, baseline, *margin in claims:
        if row not in scores or baseline not in scores:
            continue
        bound = -margin[0] if margin else 0.0
        diff = (scores[row] - scores[baseline]).dropna()
        low, high = stats.ttest_1samp(diff, 0.0).confidence_interval(0.95) if len(diff) > 1 else (-math.inf, math.inf)
        verdict = "holds" if low > bound else "contradicted" if high < bound else "within noise"
        out.append([section, text, f"{diff.mean():+.1f}", f"[{low:+.1f}, {high:+.1f}]", len(diff), verdict])
    return pd.DataFrame(out, columns=["§", "claim", "difference (points)", "95% interval", "seeds", "verdict"])


def draw_label(folder: str) -> str:
    """A RUNS_DIR's draw name: its last folder, or the one above a trailing `runs`."""
    parts = os.path.normpath(folder).split(os.sep)
    return parts[-2] if parts[-1] == "runs" and len(parts) > 1 else parts[-1]


def side_by_side(draws: dict, sweep: str, fmt: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The rows and claims tables (grids' `<SWEEP>_ROWS`, `_CLAIMS`) of each draw {label: runs} side by side."""
    from dynamic_kd.sweeps import grids

    order, stated = (getattr(grids(), f"{sweep.upper()}_{part}", None) for part in ("ROWS", "CLAIMS"))
    if order is None or stated is None or fmt == "csv":
        raise ConfigError(
            f"--claims takes a sweep with rows and claims (miniature) and --format md or latex, got {sweep} / {fmt}"
        )
    names = [name for name, _, _ in order]
    row_tables, claim_tables = [], []
    for label, runs in draws.items():
        rows, suffix = seeded_rows(runs), f" ({label})" if len(draws) > 1 else ""
        row_tables.append(rows_table(rows, names).set_index("run").add_suffix(suffix))
        claim_tables.append(claims_table(rows, stated).set_index(["§", "claim"]).add_suffix(suffix))
    verdicts = pd.concat(claim_tables, axis=1)
    claimed = [(section, text) for section, text, *_ in stated if (section, text) in verdicts.index]
    ran = [name for name in names if any(name in frame.index for frame in row_tables)]
    return pd.concat(row_tables, axis=1).reindex(ran), verdicts.loc[claimed]
