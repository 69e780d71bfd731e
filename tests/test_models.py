"""Students built from pretrained layers, teachers loaded for distillation, vocabulary checks."""

import json
import os
import shutil

import pytest
import torch
from conftest import make_tiny_bert
from transformers import AlbertConfig, AutoModel, AutoModelForSequenceClassification, FunnelBaseModel, FunnelConfig

from dynamic_kd.data import get_task
from dynamic_kd.errors import ConfigError
from dynamic_kd.models import (
    StudentWithProjections,
    build_student,
    label_maps,
    load_teacher,
    model_inputs,
    select_layers,
    takes_token_type_ids,
    unwrap_student,
)

# ---------------------------------------------------------------------------------------------
# select_layers


@pytest.mark.parametrize(
    "num_layers, keep, init, expected",
    [
        (6, 2, "first", [0, 1]),
        (12, 6, "first", [0, 1, 2, 3, 4, 5]),
        (6, 2, "skip", [2, 5]),
        (6, 3, "skip", [1, 3, 5]),
        (12, 6, "skip", [1, 3, 5, 7, 9, 11]),
        (12, 4, "skip", [2, 5, 8, 11]),
        (4, 1, "skip", [3]),
        (4, 1, "first", [0]),
        (4, 4, "skip", [0, 1, 2, 3]),
        (4, 4, "first", [0, 1, 2, 3]),
    ],
)
def test_select_layers(num_layers, keep, init, expected):
    assert select_layers(num_layers, keep, init) == expected


@pytest.mark.parametrize("init", ["first", "skip"])
def test_select_layers_keep_none_is_all(init):
    assert select_layers(6, None, init) == [0, 1, 2, 3, 4, 5]


@pytest.mark.parametrize("keep", [0, -1, 7])
@pytest.mark.parametrize("init", ["first", "skip"])
def test_select_layers_out_of_range(keep, init):
    with pytest.raises(ConfigError, match=str(keep)) as info:
        select_layers(6, keep, init)
    assert "\n" not in str(info.value)
    assert "1..6" in str(info.value)


# ---------------------------------------------------------------------------------------------
# build_student


@pytest.fixture(scope="module")
def source(tiny_bert):
    return AutoModel.from_pretrained(tiny_bert)


def inputs(tokenizer):
    return tokenizer(["the movie was good", "a bad film and it was not great"], padding=True, return_tensors="pt")


def assert_same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


@pytest.mark.parametrize("init, chosen", [("first", [0, 1]), ("skip", [1, 3])])
def test_build_student_copies_chosen_layers(tiny_bert, source, init, chosen):
    task = get_task("sst2")
    student = build_student(tiny_bert, task, num_layers=2, layer_init=init)
    assert student.config.num_hidden_layers == 2
    assert len(student.bert.encoder.layer) == 2
    for new, old in enumerate(chosen):
        assert_same_state(student.bert.encoder.layer[new], source.encoder.layer[old])
    # a layer that was not chosen differs (the random init makes this certain)
    other = ({0, 1, 2, 3} - set(chosen)).pop()
    assert not torch.equal(
        student.bert.encoder.layer[0].attention.self.query.weight,
        source.encoder.layer[other].attention.self.query.weight,
    )
    assert_same_state(student.bert.embeddings, source.embeddings)
    assert_same_state(student.bert.pooler, source.pooler)
    assert student.classifier.out_features == 2
    assert student.config.id2label == {0: "negative", 1: "positive"}
    assert student.config.label2id == {"negative": 0, "positive": 1}


@pytest.mark.parametrize("task_name, num_labels", [("mnli", 3), ("stsb", 1), ("sst2", 2)])
def test_build_student_head_size(tiny_bert, task_name, num_labels):
    student = build_student(tiny_bert, get_task(task_name), num_layers=1)
    assert student.classifier.out_features == num_labels
    assert student.config.num_labels == num_labels


def test_build_student_all_layers(tiny_bert, source):
    student = build_student(tiny_bert, get_task("sst2"))
    assert len(student.bert.encoder.layer) == 4
    assert_same_state(student.bert.encoder, source.encoder)


def test_build_student_too_many_layers(tiny_bert):
    with pytest.raises(ConfigError, match="--student_num_layers 5"):
        build_student(tiny_bert, get_task("sst2"), num_layers=5)


def test_build_student_missing_folder(tmp_path):
    missing = str(tmp_path / "nope")
    with pytest.raises(ConfigError, match="nope"):
        build_student(missing, get_task("sst2"), num_layers=1)


def test_build_student_without_weights(tmp_path, tiny_bert):
    folder = tmp_path / "no_weights"
    shutil.copytree(tiny_bert, folder)
    os.remove(folder / "model.safetensors")
    with pytest.raises(ConfigError) as info:
        build_student(str(folder), get_task("sst2"), num_layers=1)
    assert str(folder) in str(info.value)


def copy_with_truncated_weights(source, folder):
    """A copy of a model folder whose model.safetensors is cut in half (a killed download)."""
    shutil.copytree(source, folder)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    return folder


def test_build_student_truncated_weights(tmp_path, tiny_bert):
    folder = copy_with_truncated_weights(tiny_bert, tmp_path / "truncated")
    with pytest.raises(ConfigError) as info:
        build_student(str(folder), get_task("sst2"), num_layers=1)
    assert str(folder) in str(info.value)
    assert "\n" not in str(info.value)


def test_student_round_trip(tiny_bert, tiny_tokenizer, tmp_path):
    task = get_task("mnli")
    student = build_student(tiny_bert, task, num_layers=2, layer_init="skip").eval()
    student.save_pretrained(tmp_path)
    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    batch = inputs(tiny_tokenizer)
    with torch.no_grad():
        expected = student(**batch).logits
        got = reloaded(**batch).logits
    assert got.shape == (2, 3)
    assert torch.equal(got, expected)
    assert reloaded.config.num_hidden_layers == 2
    assert reloaded.config.id2label == {0: "entailment", 1: "neutral", 2: "contradiction"}


def save_bf16(source, folder):
    """A copy of a model folder whose weights are stored in bf16 (as many hub checkpoints are)."""
    shutil.copytree(source, folder)
    AutoModelForSequenceClassification.from_pretrained(folder).to(torch.bfloat16).save_pretrained(folder)
    assert (
        AutoModelForSequenceClassification.from_pretrained(folder).dtype == torch.bfloat16
    )  # what loading gives by default
    return str(folder)


def test_build_student_from_a_bf16_checkpoint_is_fp32(tiny_bert, tmp_path):
    student = build_student(save_bf16(tiny_bert, tmp_path / "bf16"), get_task("sst2"), num_layers=2)
    assert {p.dtype for p in student.parameters()} == {torch.float32}
    assert student.config.dtype == torch.float32


def test_build_student_names_a_family_it_cannot_cut(tmp_path):
    """Funnel stacks its layers in pooling blocks, not one list: a cut is refused in one line."""
    config = FunnelConfig(
        vocab_size=64, block_sizes=[2, 2], d_model=16, n_head=2, d_head=8, d_inner=32, num_decoder_layers=1
    )
    FunnelBaseModel(config).save_pretrained(tmp_path)
    with pytest.raises(ConfigError) as info:
        build_student(str(tmp_path), get_task("sst2"), num_layers=2)
    message = str(info.value)
    assert "funnel" in message and "layer stack" in message and "\n" not in message
    # keeping every layer needs no cut: a teacher of such a family still trains
    assert build_student(str(tmp_path), get_task("sst2")).config.num_hidden_layers == 4


def test_build_student_refuses_albert_with_several_layer_groups(tmp_path):
    config = AlbertConfig(
        vocab_size=64,
        embedding_size=8,
        hidden_size=16,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=32,
        num_hidden_groups=2,
    )
    AutoModel.from_config(config).save_pretrained(tmp_path)
    with pytest.raises(ConfigError, match="num_hidden_groups 1"):
        build_student(str(tmp_path), get_task("sst2"), num_layers=2)


def test_label_maps():
    assert label_maps(get_task("stsb")) == {"num_labels": 1}
    assert label_maps(get_task("mnli")) == {
        "num_labels": 3,
        "id2label": {0: "entailment", 1: "neutral", 2: "contradiction"},
        "label2id": {"entailment": 0, "neutral": 1, "contradiction": 2},
    }


# ---------------------------------------------------------------------------------------------
# load_teacher


@pytest.fixture(scope="module")
def teacher_sst2(tmp_path_factory):
    return make_tiny_bert(tmp_path_factory.mktemp("teacher_sst2"), num_layers=1, num_labels=2, seed=3)


def test_load_teacher_frozen_eval(teacher_sst2):
    teacher = load_teacher(teacher_sst2, get_task("sst2"))
    assert not teacher.training
    assert all(not module.training for module in teacher.modules())
    params = list(teacher.parameters())
    assert params and all(not p.requires_grad for p in params)


def test_load_teacher_bf16_checkpoint_in_fp32(teacher_sst2, tmp_path):
    teacher = load_teacher(save_bf16(teacher_sst2, tmp_path / "bf16"), get_task("sst2"))
    assert {p.dtype for p in teacher.parameters()} == {torch.float32}


def test_load_teacher_regression(tmp_path):
    path = make_tiny_bert(tmp_path / "t", num_layers=1, num_labels=1)
    teacher = load_teacher(path, get_task("stsb"))
    assert teacher.config.num_labels == 1


def test_load_teacher_missing_folder(tmp_path):
    missing = str(tmp_path / "does_not_exist")
    with pytest.raises(ConfigError) as info:
        load_teacher(missing, get_task("sst2"), flag="--small_teacher")
    message = str(info.value)
    assert missing in message
    assert "--small_teacher" in message
    assert "\n" not in message


def test_load_teacher_without_config(tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    (folder / "notes.txt").write_text("no model here")
    with pytest.raises(ConfigError) as info:
        load_teacher(str(folder), get_task("sst2"))
    assert str(folder) in str(info.value)
    assert "config.json" in str(info.value)


def test_load_teacher_label_count_mismatch(tmp_path):
    path = make_tiny_bert(tmp_path / "three", num_layers=1, num_labels=3)
    with pytest.raises(ConfigError) as info:
        load_teacher(path, get_task("sst2"))
    message = str(info.value)
    assert "3" in message and "2" in message and "sst2" in message
    # the same 3-label teacher is fine for mnli
    assert load_teacher(path, get_task("mnli")).config.num_labels == 3


def test_load_teacher_wrong_label_order(tmp_path, teacher_sst2):
    folder = tmp_path / "swapped"
    shutil.copytree(teacher_sst2, folder)
    with open(folder / "config.json") as f:
        config = json.load(f)
    config["id2label"] = {"0": "positive", "1": "negative"}
    config["label2id"] = {"positive": 0, "negative": 1}
    with open(folder / "config.json", "w") as f:
        json.dump(config, f)
    with pytest.raises(ConfigError, match="orders its labels"):
        load_teacher(str(folder), get_task("sst2"))
    # the task's own order is accepted
    config["id2label"] = {"0": "negative", "1": "positive"}
    config["label2id"] = {"negative": 0, "positive": 1}
    with open(folder / "config.json", "w") as f:
        json.dump(config, f)
    assert load_teacher(str(folder), get_task("sst2")).config.id2label[1] == "positive"


def test_load_teacher_truncated_weights(tmp_path, teacher_sst2):
    folder = copy_with_truncated_weights(teacher_sst2, tmp_path / "truncated")
    with pytest.raises(ConfigError) as info:
        load_teacher(str(folder), get_task("sst2"))
    message = str(info.value)
    assert str(folder) in message
    assert "\n" not in message


# ---------------------------------------------------------------------------------------------
# segment ids


def test_model_inputs_keep_segment_ids_only_for_models_that_use_them(tiny_bert, tiny_tokenizer):
    bert = AutoModelForSequenceClassification.from_pretrained(tiny_bert)
    batch = dict(inputs(tiny_tokenizer))
    assert takes_token_type_ids(bert)
    assert model_inputs(bert, batch) is batch
    bert.config.type_vocab_size = 1  # RoBERTa's single segment: a 1 would index past its embedding
    assert not takes_token_type_ids(bert)
    assert set(model_inputs(bert, batch)) == {"input_ids", "attention_mask"}
    assert set(batch) == {"input_ids", "attention_mask", "token_type_ids"}  # the batch itself is untouched


# ---------------------------------------------------------------------------------------------
# StudentWithProjections


def test_projections_only_for_other_hidden_sizes(tiny_bert, tiny_tokenizer):
    student = build_student(tiny_bert, get_task("sst2"), num_layers=1).eval()
    wrapped = StudentWithProjections(student, {"small": 32, "large": 48, "teacher": 64})
    assert set(wrapped.projections) == {"large", "teacher"}
    assert wrapped.projections["large"].in_features == 32
    assert wrapped.projections["large"].out_features == 48
    assert wrapped.projections["teacher"].out_features == 64
    assert wrapped.config is student.config
    # projections are trained with the student
    names = {name for name, _ in wrapped.named_parameters()}
    assert "projections.large.weight" in names
    assert any(name.startswith("student.") for name in names)
    assert unwrap_student(wrapped) is student
    assert unwrap_student(student) is student


def test_no_projection_when_sizes_match(tiny_bert):
    student = build_student(tiny_bert, get_task("sst2"), num_layers=1)
    assert len(StudentWithProjections(student, {"teacher": 32}).projections) == 0


def test_wrapper_forward_delegates(tiny_bert, tiny_tokenizer):
    student = build_student(tiny_bert, get_task("sst2"), num_layers=2).eval()
    wrapped = StudentWithProjections(student, {"large": 48}).eval()
    batch = inputs(tiny_tokenizer)
    with torch.no_grad():
        expected = student(**batch, output_hidden_states=True)
        got = wrapped(**batch, output_hidden_states=True)
    assert torch.equal(got.logits, expected.logits)
    assert len(got.hidden_states) == 3
    assert all(torch.equal(a, b) for a, b in zip(got.hidden_states, expected.hidden_states))
