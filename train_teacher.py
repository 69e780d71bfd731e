"""Fine-tune a teacher (or, with --student_num_layers K, a K-layer student alone) on a task or your own files.

    python train_teacher.py --model_name_or_path bert-base-uncased --task_name rte \
        --output_dir outputs/teachers/rte-base --num_train_epochs 3 --learning_rate 2e-5

Writes the model, tokenizer and results.json to --output_dir; rerunning the command resumes.
"""

import sys

from dynamic_kd.arguments import DataArguments, ModelArguments, parse_args
from dynamic_kd.metrics import metrics_fn
from dynamic_kd.recipe import cli, finish_run, load_data, load_student, start_run, train_and_evaluate
from dynamic_kd.trainer import DistillationTrainer


def main(argv=None):
    data_args, model_args, training_args = parse_args(argv, DataArguments, ModelArguments)
    run = start_run(__file__, training_args)
    task = data_args.task
    tokenizer, model = load_student(model_args, task, training_args.seed)
    data = load_data(data_args, tokenizer, [model])  # after the model: a bad flag fails before tokenising
    trainer = DistillationTrainer(
        model=model,
        args=training_args,
        train_dataset=data.train,
        eval_dataset=data.evals,
        data_collator=data.collator,
        processing_class=tokenizer,
        compute_metrics=metrics_fn(task),
        task=task,
    )
    outcome = train_and_evaluate(trainer, task, run)
    finish_run(run, trainer, tokenizer, task, outcome, [data_args, model_args, training_args])


if __name__ == "__main__":
    sys.exit(cli(main))
