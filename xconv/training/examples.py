"""A small BatchNorm classifier, written for both frameworks (the tests' and docs' model).

``bn_classifier("keras")`` and ``bn_classifier("torch")`` are twins: the same layer names, so
:func:`xconv.transfer_weights` pairs them by name; torch's BatchNorm gets Keras's epsilon and
the converted momentum (``momentum=1 - 0.9``).
"""

from __future__ import annotations

from ..errors import BadInputError

__all__ = ["bn_classifier"]


def bn_classifier(framework: str, *, input_shape=(8, 8, 3), classes: int = 5, dropout: float = 0.25,
                  momentum: float = 0.9, dtype: str = "float32", seed: int = 0):  # fmt: skip
    """Conv -> BatchNorm -> ReLU -> MaxPool -> Conv -> BatchNorm -> ReLU -> global average
    -> Dropout -> Dense (logits). ``momentum`` is Keras's; the torch twin gets ``1 - momentum``."""
    if framework == "keras":
        from ..frameworks.keras_side import keras

        k = keras()
        L = k.layers
        init = lambda i: k.initializers.GlorotUniform(seed=seed + i)  # noqa: E731
        x = inp = k.Input(shape=input_shape, dtype=dtype, name="input")
        x = L.Conv2D(8, 3, padding="same", kernel_initializer=init(0), name="conv1", dtype=dtype)(x)
        x = L.BatchNormalization(momentum=momentum, name="bn1", dtype=dtype)(x)
        x = L.ReLU(name="relu1", dtype=dtype)(x)
        x = L.MaxPooling2D(2, name="pool1", dtype=dtype)(x)
        x = L.Conv2D(8, 3, padding="same", kernel_initializer=init(1), name="conv2", dtype=dtype)(x)
        x = L.BatchNormalization(momentum=momentum, name="bn2", dtype=dtype)(x)
        x = L.ReLU(name="relu2", dtype=dtype)(x)
        x = L.GlobalAveragePooling2D(name="gap", dtype=dtype)(x)
        x = L.Dropout(dropout, name="dropout", dtype=dtype)(x)
        x = L.Dense(classes, kernel_initializer=init(2), name="logits", dtype=dtype)(x)
        return k.Model(inp, x, name="bn_classifier")
    if framework == "torch":
        import torch
        from torch import nn

        from .batchnorm import keras_to_torch_momentum

        m = keras_to_torch_momentum(momentum)
        c = input_shape[-1]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = nn.Sequential()
            net.add_module("conv1", nn.Conv2d(c, 8, 3, padding=1))
            net.add_module("bn1", nn.BatchNorm2d(8, eps=1e-3, momentum=m))
            net.add_module("relu1", nn.ReLU())
            net.add_module("pool1", nn.MaxPool2d(2))
            net.add_module("conv2", nn.Conv2d(8, 8, 3, padding=1))
            net.add_module("bn2", nn.BatchNorm2d(8, eps=1e-3, momentum=m))
            net.add_module("relu2", nn.ReLU())
            net.add_module("gap", nn.AdaptiveAvgPool2d(1))
            net.add_module("flatten", nn.Flatten())
            net.add_module("dropout", nn.Dropout(dropout))
            net.add_module("logits", nn.Linear(8, classes))
        return net.to(getattr(torch, dtype))
    raise BadInputError(f"framework must be 'keras' or 'torch'; received {framework!r}.")
