"""Build a zoo spec as a Keras functional model."""

from __future__ import annotations

from ..frameworks.keras_side import keras
from .specs import ModelSpec


def build(spec: ModelSpec, *, seed: int | None, dtype: str):
    k = keras()
    layers = k.layers

    def init(name: str, offset: int):
        if name in ("zeros", "ones"):
            return name
        return k.initializers.get({"class_name": name, "config": {"seed": None if seed is None else seed + offset}})

    x = inputs = k.Input(shape=spec.input_shape, dtype=dtype, name="input")
    produced = {}
    for i, ls in enumerate(spec.layers):
        common = {"name": ls.name, "dtype": dtype}
        if ls.op == "conv":
            cls = {1: layers.Conv1D, 2: layers.Conv2D, 3: layers.Conv3D}[len(ls.kernel)]
            layer = cls(
                ls.units, ls.kernel, strides=ls.strides, padding=ls.padding, activation=ls.activation,
                kernel_initializer=init(ls.kernel_init, 2 * i), bias_initializer=init(ls.bias_init, 2 * i + 1),
                **common,
            )  # fmt: skip
        elif ls.op == "maxpool":
            cls = {1: layers.MaxPooling1D, 2: layers.MaxPooling2D, 3: layers.MaxPooling3D}[len(ls.kernel)]
            layer = cls(ls.kernel, strides=ls.strides, padding=ls.padding, **common)
        elif ls.op == "flatten":
            layer = layers.Flatten(**common)
        elif ls.op == "dense":
            layer = layers.Dense(
                ls.units, activation=ls.activation,
                kernel_initializer=init(ls.kernel_init, 2 * i), bias_initializer=init(ls.bias_init, 2 * i + 1),
                **common,
            )  # fmt: skip
        else:  # a spec error, not user input
            raise ValueError(f"unknown op {ls.op!r} in zoo spec {spec.name}")
        x = produced[ls.name] = layer(x)
    outputs = [produced[n] for n in spec.outputs]
    return k.Model(inputs, outputs if len(outputs) > 1 else outputs[0], name=spec.name)
