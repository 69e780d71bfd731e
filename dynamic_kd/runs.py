"""What a finished run is called: its results file and its method's name.

Below both `recipe.py` (which writes `results.json` with the label) and `report.py` (which reads
them back), so neither imports the other. The checkpoint's state file keeps transformers' own
name, `transformers.trainer.TRAINER_STATE_NAME`.
"""

# A run folder is finished when this file exists (written last, atomically: `files.write_atomic`).
RESULTS_FILE = "results.json"

# A reader's words for the parts of a `method_label` (figures; tables keep the label).
TEACHER_TITLES = {
    "hard": "hard adoption",
    "soft": "soft adoption",
    "soft-instance": "soft adoption per instance",
    "single-small": "KD from the small teacher",
    "single-large": "KD from the large teacher",
    "average": "both teachers averaged",
}
OBJECTIVE_TITLES = {
    "none": "REP (static)",
    "uncertainty": "uncertainty-weighted REP",
    "uncertainty-r": "reverse uncertainty-weighted REP",
}


def method_label(args: dict) -> str:
    """The one name of a run's method, from its resolved arguments (results.json's `args`).

    ``finetune`` for a model trained without a teacher (``finetune/KL`` for a K-layer cut: the
    no-KD student baseline); otherwise ``kd`` or ``teacher/<mode>``, then ``+data/<strategy>/r<ratio>``
    (``/epoch`` for epoch scope), ``+objective/<strategy>`` when hidden-state alignment is on and
    ``+mse`` for the MSE logit loss, e.g. ``teacher/hard+data/entropy/r0.1+objective/uncertainty``.
    """
    if "selection_strategy" not in args:
        return f"finetune/{args['student_num_layers']}L" if args.get("student_num_layers") else "finetune"
    parts = ["kd" if args.get("uncertainty_mode") is None else f"teacher/{args['uncertainty_mode']}"]
    if args["selection_strategy"] != "none":
        scope = "/epoch" if args.get("selection_scope") == "epoch" else ""
        parts.append(f"data/{args['selection_strategy']}/r{args['selection_ratio']:g}{scope}")
    if (args.get("rep_alpha") or 0) > 0:
        parts.append(f"objective/{args.get('strategy')}")
    if args.get("kd_loss") == "mse":
        parts.append("mse")
    return "+".join(parts)


def _title(part: str) -> str:
    kind, _, rest = part.partition("/")
    if kind == "finetune":
        return f"student alone ({rest[:-1]} layer{'' if rest == '1L' else 's'})" if rest else "trained alone"
    if kind == "teacher":
        return TEACHER_TITLES.get(rest, f"teacher {rest}")
    if kind == "data":
        strategy, ratio, *scope = rest.split("/")
        return f"{strategy} selection {float(ratio[1:]):.0%}" + (" per epoch" if scope else "")
    if kind == "objective":
        return OBJECTIVE_TITLES.get(rest, f"{rest} REP")
    return {"kd": "KD", "mse": "MSE logits"}.get(kind, part)


def method_title(label: str) -> str:
    """A `method_label` in a reader's words: ``finetune/2L`` -> ``student alone (2 layers)``,
    ``teacher/hard+data/entropy/r0.5`` -> ``hard adoption + entropy selection 50%``."""
    return " + ".join(_title(part) for part in label.split("+"))
