"""Teachers with their own tokenizer (issue 19): any classifier teaches a BERT student.

Tiny random models built on the fly: the student is a WordPiece BERT (hidden 32, conftest); the
teachers read the text through a byte-level BPE trained here in a second: a RoBERTa encoder
(hidden 48: REP needs a projection; <s>/</s>, no segment ids) and two decoder classifiers, GPT-2
(no pad token of its own) and Qwen2 (`GenericForSequenceClassification`), all fine-tuned by
train_teacher.py. A foreign teacher must compute on a text exactly what it computes alone.
"""

import csv
import json
import os
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import FIXTURES, make_tiny_bert
from safetensors.torch import load_file, save_file
from test_reliability import torchrun
from tokenizers import ByteLevelBPETokenizer
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    GPT2Tokenizer,
    Qwen2Tokenizer,
    RobertaTokenizer,
)

import dynamic_data
import dynamic_objective
import dynamic_teacher
import train_teacher
from dynamic_kd.arguments import DataArguments, DistillationArguments, ModelArguments, parse_args
from dynamic_kd.errors import ConfigError
from dynamic_kd.recipe import load_data, load_student
from dynamic_kd.teachers import foreign_teachers, load_teacher_models, load_teachers, score_teachers

SST2 = os.path.join(FIXTURES, "glue", "sst2")
QUIET = [
    "--report_to",
    "none",
    "--disable_tqdm",
    "true",
    "--save_strategy",
    "no",
    "--per_device_eval_batch_size",
    "16",
    "--logging_steps",
    "1",
]
SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]  # RoBERTa's ids 0..4


def texts(split="train"):
    with open(os.path.join(SST2, f"{split}.tsv")) as handle:
        return [row[0] for row in csv.reader(handle, delimiter="\t")][1:]


def train_bpe():
    """(vocab, merges) of a byte-level BPE trained on the fixture's sentences."""
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(texts(), vocab_size=400, min_frequency=1, special_tokens=SPECIALS, show_progress=False)
    model = json.loads(bpe._tokenizer.to_str())["model"]
    return model["vocab"], [tuple(pair) for pair in model["merges"]]


def make_pretrained(folder, family, vocab, merges, hidden=32, seed=0):
    """A random 'pretrained' model of `family` and its tokenizer, as a hub checkpoint loads."""
    os.makedirs(folder, exist_ok=True)
    sizes = dict(hidden_size=hidden, num_hidden_layers=2, num_attention_heads=2, intermediate_size=2 * hidden)
    if family == "roberta":
        tokenizer = RobertaTokenizer(vocab=vocab, merges=merges)
        extra = dict(max_position_embeddings=130, pad_token_id=1, bos_token_id=0, eos_token_id=2, type_vocab_size=1)
    else:
        cls = GPT2Tokenizer if family == "gpt2" else Qwen2Tokenizer
        tokenizer = cls(vocab={**vocab, "<|endoftext|>": len(vocab)}, merges=merges)
        end = tokenizer.eos_token_id
        extra = dict(bos_token_id=end, eos_token_id=end, pad_token_id=None)
        qwen2 = dict(num_key_value_heads=1, max_position_embeddings=128)
        extra.update(qwen2 if family == "qwen2" else dict(n_positions=128))
    config = AutoConfig.for_model(family, vocab_size=len(tokenizer), **sizes, **extra)
    tokenizer.save_pretrained(folder)
    torch.manual_seed(seed)
    AutoModel.from_config(config).save_pretrained(folder)
    return str(folder)


def run(script, *args):
    # Teachers trained for a few steps on 32 rows are near chance: the distillation runs skip the check.
    check = [] if script is train_teacher else ["--skip_teacher_check"]
    script.main([*QUIET, *check, "--per_device_train_batch_size", "8", "--learning_rate", "1e-3", *args])


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    root = tmp_path_factory.mktemp("foreign")
    vocab, merges = train_bpe()
    zoo = SimpleNamespace(root=root, base=make_tiny_bert(root / "bert", num_layers=4))
    common = ["--task_name", "sst2", "--data_dir", SST2, "--max_steps", "4"]
    for family, hidden in (("roberta", 48), ("gpt2", 32), ("qwen2", 32)):
        pretrained = make_pretrained(root / f"{family}-base", family, vocab, merges, hidden)
        run(train_teacher, *common, "--model_name_or_path", pretrained, "--output_dir", str(root / family))
        setattr(zoo, family, str(root / family))
    return zoo


def student_args(zoo, out, *extra):
    return [
        "--model_name_or_path",
        zoo.base,
        "--student_num_layers",
        "2",
        "--task_name",
        "sst2",
        "--data_dir",
        SST2,
        "--output_dir",
        str(out),
        "--max_steps",
        "3",
        *extra,
    ]


def results(out):
    with open(os.path.join(out, "results.json")) as handle:
        return json.load(handle)


def alone(folder, sentences):
    """[N, C] logits of the teacher on each text alone, through its own tokenizer (no padding)."""
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    with torch.no_grad():
        return torch.cat([model(**tokenizer(text, return_tensors="pt")).logits for text in sentences])


def store(cache_dir):
    [folder] = [name for name in os.listdir(cache_dir) if name.startswith("teacher-")]  # not the check-*.json scores
    return {
        "folder": folder,
        **{name: np.load(os.path.join(cache_dir, folder, f"{name}.npy")) for name in ("logits", "filled")},
    }


# --- decoder classifiers fine-tuned by train_teacher.py -------------------------------------------


@pytest.mark.parametrize("family", ["gpt2", "qwen2"])
def test_train_teacher_fine_tunes_a_decoder_classifier(zoo, family):
    """The pad token is set (GPT-2 and this Qwen2 have none), the config reads it, padding is on the
    right, and a text gets the logits it gets alone in any padded batch (the last real token)."""
    folder = getattr(zoo, family)
    assert results(folder)["method"] == "finetune"
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert tokenizer.pad_token is not None and model.config.pad_token_id == tokenizer.pad_token_id
    assert tokenizer.padding_side == "right"
    sentences = texts()[:6]
    batch = tokenizer(sentences, padding=True, return_tensors="pt")
    assert (batch["attention_mask"] == 0).any()  # the batch is really padded
    with torch.no_grad():
        padded = model(**batch).logits
    assert torch.allclose(padded, alone(folder, sentences), atol=1e-5)


# --- every entry point, every adoption mode ---------------------------------------------------


def test_each_entry_point_takes_a_foreign_teacher(zoo, tmp_path):
    run(
        dynamic_data,
        *student_args(
            zoo,
            tmp_path / "data",
            "--teacher",
            zoo.roberta,
            "--selection_strategy",
            "entropy",
            "--selection_ratio",
            "0.5",
            "--gradient_accumulation_steps",
            "2",
        ),
    )
    # RoBERTa is wider (48) than the student (32): REP cls goes through the projection
    run(
        dynamic_objective,
        *student_args(
            zoo, tmp_path / "objective", "--teacher", zoo.roberta, "--strategy", "uncertainty-r", "--rep_layers", "cls"
        ),
    )
    run(
        dynamic_teacher,
        *student_args(zoo, tmp_path / "teacher", "--small_teacher", zoo.roberta, "--large_teacher", zoo.qwen2),
    )
    for name in ("data", "objective", "teacher"):
        assert results(tmp_path / name)["teacher_forward_examples"] > 0
        assert AutoModelForSequenceClassification.from_pretrained(tmp_path / name).config.model_type == "bert"
    history = results(tmp_path / "objective")["log_history"]
    losses = [entry["dkd/loss_rep"] for entry in history if "dkd/loss_rep" in entry]
    assert losses and all(value > 0 for value in losses)


@pytest.mark.parametrize("mode", ["hard", "soft", "soft-instance", "average"])
def test_each_adoption_mode_with_an_encoder_and_a_decoder_teacher(zoo, tmp_path, mode):
    run(
        dynamic_teacher,
        *student_args(
            zoo,
            tmp_path,
            "--small_teacher",
            zoo.gpt2,
            "--large_teacher",
            zoo.roberta,
            "--uncertainty_mode",
            mode,
            "--kd_rep_alpha",
            "1",
            "--rep_layers",
            "cls",
        ),
    )
    history = results(tmp_path)["log_history"]
    assert any("dkd/small_teacher_weight" in entry for entry in history)


# --- the store, DDP, the teacher check -----------------------------------------------------------


def test_the_store_holds_the_teachers_own_logits_and_runs_share_it(zoo, tmp_path):
    cache = tmp_path / "cache"
    disk = ["--teacher_cache", "disk", "--teacher_cache_dir", str(cache)]
    run(dynamic_data, *student_args(zoo, tmp_path / "first", "--teacher", zoo.gpt2, *disk))
    values = store(cache)
    assert values["filled"].all() and len(values["filled"]) == len(texts())
    assert np.allclose(values["logits"], alone(zoo.gpt2, texts()).numpy(), atol=1e-5)
    run(dynamic_data, *student_args(zoo, tmp_path / "second", "--teacher", zoo.gpt2, *disk))
    assert results(tmp_path / "second")["teacher_forward_examples"] == 0
    assert [name for name in os.listdir(cache) if name.startswith("teacher-")] == [os.path.basename(values["folder"])]


def test_ddp_with_a_foreign_teacher(zoo, tmp_path):
    """Two gloo processes: each row is computed once between the ranks, each from the teacher's own tokens."""
    cache = tmp_path / "cache"
    argv = [
        *QUIET,
        "--skip_teacher_check",
        "--per_device_train_batch_size",
        "4",
        "--ddp_backend",
        "gloo",
        "--use_cpu",
        *student_args(
            zoo,
            tmp_path / "out",
            "--teacher",
            zoo.roberta,
            "--teacher_cache",
            "disk",
            "--teacher_cache_dir",
            str(cache),
        ),
    ]
    result = torchrun("dynamic_data.py", argv, tmp_path / "torchrun")
    assert result.rc == 0, result.err[-3000:]
    assert results(tmp_path / "out")["teacher_forward_examples"] == len(texts())
    values = store(cache)
    assert values["filled"].all()
    assert np.allclose(values["logits"], alone(zoo.roberta, texts()).numpy(), atol=1e-5)


def build(zoo, out, *extra):
    """Student, foreign teachers' tokenisations and Teachers, as `recipe.distill` builds them."""
    data_args, model_args, kd_args, training_args = parse_args(
        [*QUIET, *student_args(zoo, out, *extra)], DataArguments, ModelArguments, DistillationArguments
    )
    tokenizer, student = load_student(model_args, data_args.task, training_args.seed)
    models = load_teacher_models(kd_args, data_args.task)
    foreign = foreign_teachers(kd_args, tokenizer, models)
    data = load_data(data_args, tokenizer, [student], {name: (own, models[name]) for name, own in foreign.items()})
    teachers = load_teachers(
        kd_args,
        data_args,
        data.train,
        2,
        models,
        training_args=training_args,
        teacher_inputs=data.teacher_inputs,
    )
    return SimpleNamespace(
        models=models, foreign=foreign, data=data, teachers=teachers, training_args=training_args, task=data_args.task
    )


def test_the_teacher_check_scores_a_foreign_teacher_on_its_own_tokens(zoo, tmp_path):
    run_ = build(
        zoo, tmp_path, "--small_teacher", zoo.roberta, "--large_teacher", zoo.qwen2, "--uncertainty_mode", "hard"
    )
    scores = score_teachers(run_.models, run_.data, run_.task, run_.training_args)
    labels = np.asarray(run_.data.evals["validation"]["labels"])
    for name, folder in (("small", zoo.roberta), ("large", zoo.qwen2)):
        expected = (alone(folder, texts("dev")).argmax(-1).numpy() == labels).mean()
        assert scores[name]["accuracy"] == pytest.approx(expected)
        assert scores[name]["examples"] == len(labels)


def test_same_tokenizer_teachers_keep_the_students_batch(zoo, tmp_path):
    """A teacher with the student's tokenizer reads the student's batch (today's path); one with a
    vocabulary of its own (one extra word) or a decoder reads its own tokenisation."""
    same = make_tiny_bert(tmp_path / "same", num_layers=1, seed=1)
    other = make_tiny_bert(tmp_path / "other", num_layers=1, extra_vocab=("zebra",), seed=2)
    run_ = build(zoo, tmp_path / "out", "--small_teacher", same, "--large_teacher", other, "--uncertainty_mode", "hard")
    assert set(run_.foreign) == {"large"}
    assert run_.teachers["small"].inputs is None and run_.teachers["large"].inputs is not None


# --- REP across tokenizers ------------------------------------------------------------------------


@pytest.mark.parametrize("family, position", [("roberta", "first"), ("gpt2", "last")])
def test_rep_cls_stores_the_teachers_own_sentence_state(zoo, tmp_path, family, position):
    """--rep_layers cls: the stored state of each mapped layer is the teacher's first token (encoder,
    <s>) or last real token (decoder) of its own tokenisation, whatever the row's batch."""
    folder = getattr(zoo, family)
    run_ = build(zoo, tmp_path, "--teacher", folder, "--kd_rep_alpha", "1", "--rep_layers", "cls")
    teacher = run_.teachers["teacher"]
    train = run_.data.train
    batch = run_.data.collator([train[i] for i in range(5)])
    idx = batch.pop("idx")
    batch = {k: v for k, v in batch.items() if k != "labels"}
    rows = torch.tensor([4, 1, 3])
    logits, states = teacher.query(batch, rows, idx, "cls")
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    for k, row in enumerate(rows.tolist()):
        with torch.no_grad():
            out = model(**tokenizer(texts()[row], return_tensors="pt"), output_hidden_states=True)
        token = 0 if position == "first" else -1
        expected = torch.stack([out.hidden_states[layer][0, token] for layer in teacher.cls_layers])
        assert torch.allclose(states[k], expected, atol=1e-5)
        assert torch.allclose(logits[k], out.logits[0], atol=1e-5)


# --- the student does not depend on the teacher's token ids ----------------------------------------


def permuted_teacher(source, target):
    """The same teacher under other token ids: non-special ids shuffled, embedding rows moved with them."""
    tokenizer = AutoTokenizer.from_pretrained(source)
    spec = json.loads(tokenizer.backend_tokenizer.to_str())["model"]
    vocab, merges = spec["vocab"], [tuple(pair) for pair in spec["merges"]]
    fixed = len(SPECIALS)
    order = np.random.default_rng(0).permutation(np.arange(fixed, len(vocab)))
    new_id = {old: new for old, new in zip(range(fixed, len(vocab)), order)}
    renumbered = {token: int(new_id.get(i, i)) for token, i in vocab.items()}
    RobertaTokenizer(vocab=renumbered, merges=merges).save_pretrained(target)
    for name in ("config.json",):
        with open(os.path.join(source, name)) as src, open(os.path.join(target, name), "w") as dst:
            dst.write(src.read())
    state = load_file(os.path.join(source, "model.safetensors"))
    key = "roberta.embeddings.word_embeddings.weight"
    table = state[key].clone()
    for old, new in new_id.items():
        table[new] = state[key][old]
    state[key] = table
    save_file(state, os.path.join(target, "model.safetensors"), metadata={"format": "pt"})
    return str(target)


def test_the_student_does_not_depend_on_the_teachers_token_ids(zoo, tmp_path):
    permuted = permuted_teacher(zoo.roberta, tmp_path / "permuted")
    assert not np.array_equal(
        AutoTokenizer.from_pretrained(permuted)("the movie")["input_ids"],
        AutoTokenizer.from_pretrained(zoo.roberta)("the movie")["input_ids"],
    )
    for name, teacher in (("a", zoo.roberta), ("b", permuted)):
        run(
            dynamic_data,
            *student_args(
                zoo,
                tmp_path / name,
                "--teacher",
                teacher,
                "--selection_strategy",
                "entropy",
                "--selection_ratio",
                "0.5",
                "--kd_rep_alpha",
                "1",
                "--rep_layers",
                "cls",
            ),
        )
    a, b = load_file(tmp_path / "a" / "model.safetensors"), load_file(tmp_path / "b" / "model.safetensors")
    assert all(torch.equal(a[name], b[name]) for name in a)


# --- refusals -------------------------------------------------------------------------------------


def test_token_level_rep_with_a_foreign_teacher_is_refused(zoo, tmp_path):
    with pytest.raises(ConfigError, match=r"--rep_layers all aligns token positions.*use --rep_layers cls") as info:
        run(
            dynamic_objective,
            *student_args(zoo, tmp_path, "--teacher", zoo.roberta, "--kd_rep_alpha", "1", "--rep_layers", "all"),
        )
    assert "\n" not in str(info.value)


def test_a_decoder_student_is_refused(zoo, tmp_path):
    with pytest.raises(ConfigError, match=r"is a decoder \(gpt2\); distil into an encoder student"):
        run(
            dynamic_data,
            "--model_name_or_path",
            zoo.gpt2,
            "--task_name",
            "sst2",
            "--data_dir",
            SST2,
            "--output_dir",
            str(tmp_path),
            "--teacher",
            zoo.roberta,
        )


def test_a_teacher_without_tokenizer_files_is_refused_unless_its_vocabulary_is_the_students(zoo, tmp_path):
    bare = tmp_path / "bare"
    os.makedirs(bare)
    for name in ("config.json", "model.safetensors"):
        with open(os.path.join(zoo.roberta, name), "rb") as src, open(bare / name, "wb") as dst:
            dst.write(src.read())
    with pytest.raises(ConfigError, match=r"has no tokenizer files .*save the teacher's tokenizer next to it"):
        run(dynamic_data, *student_args(zoo, tmp_path / "out", "--teacher", str(bare)))


def test_a_resumed_run_ends_with_the_uninterrupted_runs_student(zoo, tmp_path, capfd):
    """Checkpoints carry a foreign teacher's stored outputs like any other's (keyed by idx)."""

    def args(out):
        return student_args(
            zoo,
            out,
            "--teacher",
            zoo.roberta,
            "--selection_strategy",
            "entropy",
            "--selection_ratio",
            "0.5",
            "--kd_rep_alpha",
            "1",
            "--rep_layers",
            "cls",
            "--max_steps",
            "4",
            "--save_strategy",
            "steps",
            "--save_steps",
            "2",
        )

    run(dynamic_data, *args(tmp_path / "reference"))
    resumed = tmp_path / "resumed"
    run(dynamic_data, *args(resumed))
    os.remove(resumed / "results.json")  # as if killed after its first checkpoint
    shutil.rmtree(resumed / "checkpoint-4")
    capfd.readouterr()
    run(dynamic_data, *args(resumed))
    log = capfd.readouterr().err
    assert "Resuming from checkpoint" in log and "checkpoint-2" in log and "resumed with" in log
    a, b = load_file(tmp_path / "reference" / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert all(torch.equal(a[name], b[name]) for name in a)
    assert results(resumed)["metrics"] == results(tmp_path / "reference")["metrics"]
