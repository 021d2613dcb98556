"""``torch_to_keras``: kept here for ``from xconv.translate.to_keras import torch_to_keras``.

The translation lives in :mod:`xconv.translate.torch_to_keras` (torch.export, one converter
per ATen op family).
"""

from __future__ import annotations

from .torch_to_keras import supported_ops, torch_to_keras

__all__ = ["torch_to_keras", "supported_ops"]
