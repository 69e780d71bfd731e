"""Fine-tune a teacher, or with --student_num_layers K a K-layer student alone, on a task or your own files."""

import sys

from dynamic_kd.arguments import DataArguments, ModelArguments, parse_args
from dynamic_kd.recipe import cli, load_data, load_student, start_run, train_and_save


def main(argv=None):
    args = parse_args(argv, DataArguments, ModelArguments)
    data_args, model_args, training_args = args
    run = start_run(__file__, training_args)
    task = data_args.task
    tokenizer, model = load_student(model_args, task, training_args.seed)
    data = load_data(data_args, tokenizer, [model])  # after the model: a bad flag fails before tokenising
    train_and_save(run, model, tokenizer, data, task, args)


if __name__ == "__main__":
    sys.exit(cli(main))
