"""Training parity: prove a port trains the same, step by step and layer by layer.

``compare_training`` runs the same steps in Keras and PyTorch from the same weights and compares,
after every step, the loss, every layer's gradients, the optimizer state, the weights and the
BatchNorm statistics. The modules: ``optimizers`` (SGD, Adam, AdamW, RMSprop, Adagrad both
ways), ``losses``, ``batchnorm`` (momentum, running variance), ``clipping``, ``random_layers``
(dropout off), ``tolerance`` (the policy), ``report`` (TrainingReport), ``lint_rules`` (the
training traps ``xconv.lint`` reports), ``examples`` (a small BatchNorm classifier in both
frameworks) and ``torch_optim`` (Keras's RMSprop and Adagrad as torch optimizers).
"""

from __future__ import annotations

from .batchnorm import keras_to_torch_momentum, torch_to_keras_momentum
from .core import compare_training
from .losses import LossSetting, loss_setting
from .optimizers import OptimizerSetting, Plan, keras_twin, optimizer_setting, torch_twin
from .report import Divergence, TrainingReport, TrainingRow

__all__ = [
    "compare_training", "TrainingReport", "TrainingRow", "Divergence",
    "optimizer_setting", "OptimizerSetting", "Plan", "torch_twin", "keras_twin",
    "loss_setting", "LossSetting", "keras_to_torch_momentum", "torch_to_keras_momentum",
]
