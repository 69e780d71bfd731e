"""Every common encoder family as teacher and student, offline.

For each family a tiny random "pretrained" encoder (4 layers, hidden 32) and a wider one (3 layers,
hidden 48) are saved with their tokenizer; `train_teacher.py` fine-tunes a 2-layer cut of the first
(the small teacher) and the wide one (the large teacher, another hidden size and depth). Students
are 2-layer cuts of the first. Tokenizers: WordPiece with token_type_ids (BERT, ELECTRA, DeBERTa,
ALBERT), WordPiece without them (DistilBERT, ModernBERT, as their own tokenizers), byte-level BPE
(RoBERTa, XLM-R, as theirs: no token_type_ids, <s>/</s>/<pad> ids of RoBERTa).

What depends on the family runs for each (the cut, hidden states, reloading, one distillation run
with every aspect on); what does not (each adoption mode, objective strategy, data selection) runs
once, on BERT.
"""

import json
import logging
import os
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import FIXTURES, write_vocab
from safetensors.torch import load_file
from tokenizers.pre_tokenizers import ByteLevel
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BertTokenizerFast,
    DistilBertTokenizer,
    RobertaTokenizer,
)

import dynamic_data
import dynamic_objective
import dynamic_teacher
import train_teacher
from dynamic_kd.data import get_task
from dynamic_kd.losses import hidden_state_alignment, layer_map
from dynamic_kd.models import build_student, layer_stack, takes_token_type_ids

SST2 = os.path.join(FIXTURES, "glue", "sst2")
RTE = os.path.join(FIXTURES, "glue", "rte")

# model_type -> (tokenizer kind, config kwargs beyond the sizes). Special-token ids follow the tokenizer.
WORDPIECE_IDS = {"pad_token_id": 0}
ROBERTA_IDS = {"pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2, "type_vocab_size": 1}  # as roberta-base
FAMILIES = {
    "bert": ("wordpiece", WORDPIECE_IDS),
    "roberta": ("bpe", ROBERTA_IDS),
    "xlm-roberta": ("bpe", ROBERTA_IDS),
    "electra": ("wordpiece", {**WORDPIECE_IDS, "embedding_size": 16}),
    "distilbert": ("wordpiece-no-types", WORDPIECE_IDS),
    "deberta-v2": (
        "wordpiece",
        {  # DeBERTa-v3 style: relative attention, no absolute positions, no segments
            **WORDPIECE_IDS,
            "relative_attention": True,
            "pos_att_type": ["p2c", "c2p"],
            "position_biased_input": False,
            "max_relative_positions": -1,
            "position_buckets": 16,
            "norm_rel_ebd": "layer_norm",
            "share_att_key": True,
            "type_vocab_size": 0,
        },
    ),
    "albert": ("wordpiece", {**WORDPIECE_IDS, "bos_token_id": 2, "eos_token_id": 3, "embedding_size": 16}),
    "modernbert": (
        "wordpiece-no-types",
        {
            **WORDPIECE_IDS,
            "bos_token_id": 2,
            "eos_token_id": 3,
            "cls_token_id": 2,
            "sep_token_id": 3,
            "global_attn_every_n_layers": 3,
            "local_attention": 8,
        },
    ),
}
# where each family keeps its layers (ALBERT: one shared layer, no stack) and whether it uses segment ids
LAYER_STACKS = {
    "bert": "encoder.layer",
    "roberta": "encoder.layer",
    "xlm-roberta": "encoder.layer",
    "electra": "encoder.layer",
    "distilbert": "transformer.layer",
    "deberta-v2": "encoder.layer",
    "albert": None,
    "modernbert": "layers",
}
SEGMENT_IDS = {"bert", "electra", "albert"}
ADOPTION_MODES = ("hard", "soft", "soft-instance", "single-small", "single-large", "average")
OBJECTIVE_STRATEGIES = ("none", "uncertainty", "uncertainty-r")
QUIET = ["--report_to", "none", "--disable_tqdm", "true", "--save_strategy", "no", "--per_device_eval_batch_size", "16"]


def save_tokenizer(folder, kind):
    """The family's kind of tokenizer over a fixed vocabulary (equal vocabularies for equal kinds)."""
    if kind == "bpe":
        tokens = ["<s>", "<pad>", "</s>", "<unk>"] + sorted(ByteLevel.alphabet()) + ["<mask>"]
        tokenizer = RobertaTokenizer(vocab={t: i for i, t in enumerate(tokens)}, merges=[])
    else:
        write_vocab(os.path.join(folder, "vocab.txt"))
        cls = BertTokenizerFast if kind == "wordpiece" else DistilBertTokenizer
        tokenizer = cls(vocab=os.path.join(folder, "vocab.txt"), do_lower_case=True)
    tokenizer.save_pretrained(folder)
    return tokenizer


def family_config(family, vocab_size, num_layers, hidden):
    kind, kwargs = FAMILIES[family]
    sizes = (
        {"dim": hidden, "n_layers": num_layers, "n_heads": 2, "hidden_dim": 2 * hidden}
        if family == "distilbert"
        else {
            "hidden_size": hidden,
            "num_hidden_layers": num_layers,
            "num_attention_heads": 2,
            "intermediate_size": 2 * hidden,
        }
    )
    # RoBERTa's positions start after the padding id
    positions = 130 if kind == "bpe" else 128
    return AutoConfig.for_model(family, vocab_size=vocab_size, max_position_embeddings=positions, **sizes, **kwargs)


def make_pretrained(folder, family, num_layers=4, hidden=32, seed=0):
    """A random 'pretrained' encoder of `family` (AutoModel, as a hub checkpoint loads) plus its tokenizer."""
    os.makedirs(folder, exist_ok=True)
    tokenizer = save_tokenizer(folder, FAMILIES[family][0])
    torch.manual_seed(seed)
    AutoModel.from_config(family_config(family, len(tokenizer), num_layers, hidden)).save_pretrained(folder)
    return str(folder)


def run(script, *args):
    # The teachers here train for a few steps on random data: near chance, which the teacher check
    # would rightly refuse; the distillation scripts get --skip_teacher_check.
    distils = script is not train_teacher
    check = ["--skip_teacher_check"] if distils else []
    script.main([*QUIET, *check, "--per_device_train_batch_size", "8", "--learning_rate", "1e-3", *args])


@pytest.fixture(scope="module")
def families(tmp_path_factory):
    """A family's pretrained encoders and its small (2 of 4 layers) and large (wide) fine-tuned teachers,
    built on first use."""
    built = {}

    def get(name):
        if name not in built:
            root = tmp_path_factory.mktemp(name)
            base = make_pretrained(root / "base", name, num_layers=4, hidden=32)
            wide = make_pretrained(root / "wide", name, num_layers=3, hidden=48, seed=1)
            small, large = str(root / "small"), str(root / "large")
            common = ["--task_name", "sst2", "--data_dir", SST2, "--max_steps", "4"]
            run(
                train_teacher, *common, "--model_name_or_path", base, "--student_num_layers", "2", "--output_dir", small
            )
            run(train_teacher, *common, "--model_name_or_path", wide, "--output_dir", large)
            built[name] = SimpleNamespace(name=name, base=base, small=small, large=large)
        return built[name]

    return get


@pytest.fixture(scope="module", params=list(FAMILIES))
def family(request, families):
    return families(request.param)


@pytest.fixture(scope="module")
def bert(families):
    """The family the family-independent end-to-end checks run on."""
    return families("bert")


def student_args(family, out, *extra):
    return [
        "--model_name_or_path",
        family.base,
        "--student_num_layers",
        "2",
        "--student_layer_init",
        "skip",
        "--task_name",
        "sst2",
        "--data_dir",
        SST2,
        "--output_dir",
        str(out),
        "--max_steps",
        "2",
        *extra,
    ]


def assert_plain_student(out, base, task="sst2", layers=2):
    """The saved student reloads as a plain classifier and holds exactly a fresh student's weights."""
    fresh = build_student(base, get_task(task), layers)
    assert set(load_file(os.path.join(out, "model.safetensors"))) == set(
        fresh.state_dict()
    )  # no teacher, no projection
    reloaded = AutoModelForSequenceClassification.from_pretrained(out)
    assert type(reloaded) is type(fresh)
    assert reloaded.config.num_hidden_layers == layers
    return json.loads(open(os.path.join(out, "results.json")).read())


# --- train_teacher.py ------------------------------------------------------------------------


def test_train_teacher_fine_tunes_each_family(family):
    for folder, layers, method in ((family.small, 2, "finetune/2L"), (family.large, 3, "finetune")):
        results = json.loads(open(os.path.join(folder, "results.json")).read())
        assert results["method"] == method  # a cut names its depth (the no-KD student baseline)
        assert 0.0 <= results["metrics"]["accuracy"] <= 1.0
        teacher = AutoModelForSequenceClassification.from_pretrained(folder)
        assert teacher.config.model_type == family.name
        assert teacher.config.num_hidden_layers == layers and teacher.config.id2label == {0: "negative", 1: "positive"}


# --- cutting a student -----------------------------------------------------------------------


def layer_list(model):
    """The layer stack of a model (ALBERT: its one shared layer)."""
    stack = layer_stack(model, "model")
    if stack is None:
        return model.encoder.albert_layer_groups
    return model.get_submodule(stack)


def test_layer_stack_and_segment_ids_of_each_family(family):
    assert layer_stack(AutoModel.from_pretrained(family.base), family.base) == LAYER_STACKS[family.name]
    teacher = AutoModelForSequenceClassification.from_pretrained(family.large)
    assert takes_token_type_ids(teacher) == (family.name in SEGMENT_IDS)


@pytest.mark.parametrize("init, chosen", [("first", [0, 1]), ("skip", [1, 3])])
def test_cut_student_keeps_the_chosen_layers(family, init, chosen, caplog):
    source = AutoModel.from_pretrained(family.base)
    caplog.set_level(logging.INFO, logger="dynamic_kd")
    student = build_student(family.base, get_task("sst2"), num_layers=2, layer_init=init)
    assert student.config.num_hidden_layers == 2
    if family.name == "distilbert":  # its own name for the layer count, through the config's attribute_map
        assert student.config.n_layers == 2 and source.config.n_layers == 4
    # weights without a place in the classifier are dropped with an info line, not an error
    dropped = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    if family.name in ("roberta", "xlm-roberta"):  # RobertaForSequenceClassification has no pooler
        assert len(dropped) == 1 and "does not use" in dropped[0] and "pooler.dense (2)" in dropped[0]
    elif family.name == "modernbert" and init == "skip":
        assert len(dropped) == 1 and "layers.0.attn_norm (1)" in dropped[0]
    else:
        assert dropped == []
    assert type(student.base_model) is type(source)
    if family.name == "albert":  # one shared layer, now run twice: nothing to choose
        assert len(student.base_model.encoder.albert_layer_groups) == 1
        assert_same(student.base_model.encoder, source.encoder)
        return
    new_layers, old_layers = layer_list(student.base_model), layer_list(source)
    assert len(new_layers) == 2
    for new, old in enumerate(chosen):
        new_state, old_state = new_layers[new].state_dict(), old_layers[old].state_dict()
        # ModernBERT's first layer has no attention norm (the embedding norm precedes it)
        dropped = set(old_state) - set(new_state)
        assert dropped == ({"attn_norm.weight"} if family.name == "modernbert" and new == 0 and old != 0 else set())
        for key, value in new_state.items():
            assert torch.equal(value, old_state[key]), (new, old, key)
    assert_same(student.base_model.embeddings, source.embeddings)
    if family.name == "modernbert":  # each kept layer keeps its attention kind (layer 0 and 3 are global)
        assert student.config.layer_types == [source.config.layer_types[i] for i in chosen]
        assert source.config.layer_types == [
            "full_attention",
            "sliding_attention",
            "sliding_attention",
            "full_attention",
        ]


def assert_same(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def encode(folder):
    """A padded batch of two sentences, tokenised by the family's own tokenizer."""
    tokenizer = AutoTokenizer.from_pretrained(folder)
    return tokenizer(
        ["the movie was good", "a bad film and it was not great at all"], padding=True, return_tensors="pt"
    )


def test_hidden_states_start_with_the_embedding_output(family):
    """hidden_states[0] is what enters the first layer; there are num_hidden_layers + 1 states.

    (ELECTRA and ALBERT: the embeddings after their map to the hidden size.)"""
    student = build_student(family.base, get_task("sst2"), num_layers=2, layer_init="skip").eval()
    teacher = AutoModelForSequenceClassification.from_pretrained(family.large).eval()
    batch = encode(family.base)
    for model in (student, teacher):
        entering = []
        first = layer_list(model.base_model)[0]
        handle = first.register_forward_pre_hook(
            lambda module, args, kwargs, entering=entering: entering.append(
                kwargs.get("hidden_states", args[0] if args else None)
            ),
            with_kwargs=True,
        )
        with torch.no_grad():
            states = model(**batch, output_hidden_states=True).hidden_states
        handle.remove()
        # ALBERT: the K-layer model runs its one shared layer K times
        assert len(entering) == (model.config.num_hidden_layers if family.name == "albert" else 1)
        assert len(states) == model.config.num_hidden_layers + 1
        assert torch.equal(states[0], entering[0])
        assert all(s.shape == (2, batch["input_ids"].shape[1], model.config.hidden_size) for s in states)
    # the alignment of a 2-layer student with the 3-layer, wider teacher uses valid indices
    with torch.no_grad():
        s_states = student(**batch, output_hidden_states=True).hidden_states
        t_states = teacher(**batch, output_hidden_states=True).hidden_states
    pairs = layer_map(2, 3)
    projection = torch.nn.Linear(32, 48)
    rep = hidden_state_alignment(
        [s_states[s] for s, _ in pairs], [t_states[t] for _, t in pairs], batch["attention_mask"], projection=projection
    )
    assert rep.shape == (2,) and torch.isfinite(rep).all() and (rep > 0).all()


def test_saved_student_reloads_with_the_same_outputs(family, tmp_path):
    student = build_student(family.base, get_task("mnli"), num_layers=2, layer_init="skip").eval()
    student.save_pretrained(tmp_path)
    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    batch = encode(family.base)
    with torch.no_grad():
        assert torch.equal(reloaded(**batch).logits, student(**batch).logits)
    assert reloaded.config.id2label == {0: "entailment", 1: "neutral", 2: "contradiction"}


# --- the three methods ----------------------------------------------------------------------

# Sec. 3.2 and 3.3 on top of a run's teacher adoption: all three aspects in one run
SELECTION_AND_OBJECTIVE = (
    "--selection_strategy entropy --selection_ratio 0.5 --strategy uncertainty --kd_rep_alpha 1".split()
)


def test_distillation_with_each_family(family, tmp_path):
    """Both teachers of the family, all three aspects in one run: selection, soft adoption (each row to
    both teachers) and hidden-state alignment of the 2-layer, hidden-32 student with the 3-layer,
    hidden-48 large teacher (a projection)."""
    run(
        dynamic_teacher,
        *student_args(
            family,
            tmp_path,
            "--small_teacher",
            family.small,
            "--large_teacher",
            family.large,
            "--uncertainty_mode",
            "soft",
            *SELECTION_AND_OBJECTIVE,
        ),
    )
    results = assert_plain_student(tmp_path, family.base)
    assert results["method"] == "teacher/soft+data/entropy/r0.5+objective/uncertainty"
    assert results["teacher_forward_examples"] == 2 * 4 * 2  # 2 steps x floor(0.5 * 8) rows x both teachers


def test_dynamic_data_selects_the_uncertain_rows(bert, tmp_path):
    run(
        dynamic_data,
        *student_args(
            bert,
            tmp_path,
            "--teacher",
            bert.small,
            "--selection_strategy",
            "entropy",
            "--selection_ratio",
            "0.25",
            "--teacher_cache",
            "none",
        ),
    )
    results = assert_plain_student(tmp_path, bert.base)
    assert results["teacher_forward_examples"] == 2 * 2  # 2 steps x floor(0.25 * 8)


@pytest.mark.parametrize("mode", ADOPTION_MODES)
def test_dynamic_teacher_each_adoption_mode(bert, mode, tmp_path):
    teachers = {"single-small": ["--small_teacher", bert.small], "single-large": ["--large_teacher", bert.large]}
    chosen = teachers.get(mode, teachers["single-small"] + teachers["single-large"])
    run(dynamic_teacher, *student_args(bert, tmp_path, *chosen, "--uncertainty_mode", mode, "--teacher_cache", "none"))
    results = assert_plain_student(tmp_path, bert.base)
    both = 2 * 8 * (2 if mode in ("soft", "soft-instance", "average") else 1)  # hard: each row to one teacher
    assert results["teacher_forward_examples"] == both


@pytest.mark.parametrize("strategy", OBJECTIVE_STRATEGIES)
def test_dynamic_objective_with_a_wider_deeper_teacher(bert, strategy, tmp_path):
    """Hidden-state alignment of a 2-layer, hidden-32 student with a 3-layer, hidden-48 teacher (projection)."""
    rep_layers = "cls" if strategy == "uncertainty-r" else "all"
    run(
        dynamic_objective,
        *student_args(bert, tmp_path, "--teacher", bert.large, "--strategy", strategy, "--rep_layers", rep_layers),
    )
    results = assert_plain_student(tmp_path, bert.base)
    assert results["method"] == f"kd+objective/{strategy}"


# --- teacher and student of different families ------------------------------------------------


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """BERT (3 layers, hidden 48) and ELECTRA (2 layers, hidden 32) teachers fine-tuned on RTE, and a
    DistilBERT encoder to cut students from: one WordPiece vocabulary, as bert-base-uncased,
    google/electra-* and distilbert-base-uncased share. Only the DistilBERT tokenizer emits no segment ids."""
    root = tmp_path_factory.mktemp("mixed")
    common = ["--task_name", "rte", "--data_dir", RTE, "--max_steps", "4"]
    bert, electra = str(root / "bert_teacher"), str(root / "electra_teacher")
    run(
        train_teacher,
        *common,
        "--model_name_or_path",
        make_pretrained(root / "bert", "bert", num_layers=3, hidden=48, seed=2),
        "--output_dir",
        bert,
    )
    run(
        train_teacher,
        *common,
        "--model_name_or_path",
        make_pretrained(root / "electra", "electra", num_layers=2, seed=3),
        "--output_dir",
        electra,
    )
    return SimpleNamespace(
        bert=bert, electra=electra, distilbert=make_pretrained(root / "distilbert", "distilbert", num_layers=4, seed=4)
    )


def mixed_args(mixed, out, *extra):
    return [
        "--model_name_or_path",
        mixed.distilbert,
        "--student_num_layers",
        "2",
        "--task_name",
        "rte",
        "--data_dir",
        RTE,
        "--output_dir",
        str(out),
        "--max_steps",
        "2",
        *extra,
    ]


def test_cross_family_teachers_and_student(mixed, tmp_path):
    """DistilBERT student, ELECTRA small and BERT large teacher (hidden 48: a projection), all three aspects."""
    run(
        dynamic_teacher,
        *mixed_args(
            mixed,
            tmp_path,
            "--small_teacher",
            mixed.electra,
            "--large_teacher",
            mixed.bert,
            "--uncertainty_mode",
            "hard",
            *SELECTION_AND_OBJECTIVE,
        ),
    )
    results = assert_plain_student(tmp_path, mixed.distilbert, task="rte")
    assert results["teacher_forward_examples"] > 0


def rte_pairs():
    with open(os.path.join(RTE, "train.tsv")) as handle:
        rows = [line.rstrip("\n").split("\t") for line in handle][1:]
    return [(row[1], row[2]) for row in rows]


def test_teacher_sees_the_segment_ids_it_was_trained_with(mixed, tmp_path):
    """A BERT teacher distilled into a DistilBERT student (whose tokenizer emits no token_type_ids)
    gives the logits it gives on its own tokenisation, sentence B marked as segment 1."""
    cache_dir = tmp_path / "cache"
    run(
        dynamic_data,
        *mixed_args(
            mixed,
            tmp_path / "run",
            "--teacher",
            mixed.bert,
            "--teacher_cache",
            "disk",
            "--teacher_cache_dir",
            str(cache_dir),
            "--max_steps",
            "1",
        ),
    )
    # one store folder (logits.npy and the per-row filled flags) next to the teacher check's check-*.json
    [store] = [name for name in os.listdir(cache_dir) if name.startswith("teacher-")]
    cache = {name: torch.from_numpy(np.load(cache_dir / store / f"{name}.npy")) for name in ("logits", "filled")}
    pairs = rte_pairs()
    assert cache["filled"].all() and len(cache["filled"]) == len(pairs)
    teacher = AutoModelForSequenceClassification.from_pretrained(mixed.bert).eval()
    tokenizer = AutoTokenizer.from_pretrained(mixed.bert)
    with torch.no_grad():
        for idx, pair in enumerate(pairs):
            own = tokenizer(*pair, return_tensors="pt")
            assert own["token_type_ids"].any()
            expected = teacher(**own).logits[0]
            assert torch.allclose(cache["logits"][idx], expected, atol=1e-5), idx
            without_segments = teacher(input_ids=own["input_ids"], attention_mask=own["attention_mask"]).logits[0]
            assert not torch.allclose(without_segments, expected, atol=1e-5)  # the check above can fail
