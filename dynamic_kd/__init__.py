"""Dynamic Knowledge Distillation (Li et al., EMNLP 2021) for BERT-style models."""

from dynamic_kd.losses import dynamic_kd_loss
from dynamic_kd.strategies import select_instances

__all__ = ["dynamic_kd_loss", "select_instances"]
