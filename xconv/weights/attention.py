"""MultiHeadAttention <-> nn.MultiheadAttention (any num_heads, key_dim and value_dim).

Keras keeps four einsum kernels: ``query/kernel`` (dim, heads, key_dim), ``key/kernel``
(key_dim_in, heads, key_dim), ``value/kernel`` (value_dim_in, heads, value_dim) and
``attention_output/kernel`` (heads, value_dim, out), each with a bias (heads, per_head) or (out,).
torch keeps Linear-shaped projections whose rows are heads x per-head features, head-major,
the same order as Keras' (heads, per_head) after a reshape:

- ``in_proj_weight`` (3*dim, dim) when all three projections are (dim, dim): nn.MultiheadAttention's
  own condition (``kdim == vdim == embed_dim``);
- otherwise ``q_proj_weight``, ``k_proj_weight`` and ``v_proj_weight`` apart;
- ``in_proj_bias`` (the three biases end to end), ``out_proj.weight`` and ``out_proj.bias``.

The number of heads is not visible in torch's arrays: ``LayerContext.num_heads`` says it.

>>> import numpy as np
>>> from xconv.weights import LayerContext, family_for_keras
>>> w = {"query/kernel": np.zeros((8, 2, 4)), "key/kernel": np.zeros((8, 2, 4)),
...      "value/kernel": np.zeros((8, 2, 4)), "attention_output/kernel": np.zeros((2, 4, 8))}
>>> {k: v.shape for k, v in family_for_keras("MultiHeadAttention").to_torch(w, LayerContext("mha")).items()}
{'in_proj_weight': (24, 8), 'out_proj.weight': (8, 8)}
"""

from __future__ import annotations

import numpy as np

from ..errors import LayoutError
from . import WeightFamily, register

_PROJ = (("query", "q_proj_weight"), ("key", "k_proj_weight"), ("value", "v_proj_weight"))


def _get(w, key, ctx):
    if key not in w:
        raise LayoutError(f"MultiHeadAttention '{ctx.name}' has no '{key}' weight (received {sorted(w)}).")
    return w[key]


def _to_torch(w, ctx):
    mats = {}
    for keras_name, torch_name in _PROJ:
        kernel = _get(w, f"{keras_name}/kernel", ctx)  # (features in, heads, per head)
        if kernel.ndim != 3:
            raise LayoutError(
                f"MultiHeadAttention '{ctx.name}': {keras_name}/kernel has shape {kernel.shape}; xconv maps the "
                f"default attention_axes on (batch, sequence, features) inputs, whose kernels are 3-D."
            )
        mats[torch_name] = np.ascontiguousarray(kernel.reshape(kernel.shape[0], -1).T)
    out_kernel = _get(w, "attention_output/kernel", ctx)  # (heads, per head, out)
    out = {}
    square = {m.shape for m in mats.values()}
    if len(square) == 1 and (shape := square.pop())[0] == shape[1]:
        out["in_proj_weight"] = np.concatenate([mats[t] for _, t in _PROJ], axis=0)
    else:
        out.update(mats)
    if "query/bias" in w:
        out["in_proj_bias"] = np.concatenate([_get(w, f"{k}/bias", ctx).reshape(-1) for k, _ in _PROJ])
    out["out_proj.weight"] = np.ascontiguousarray(out_kernel.reshape(-1, out_kernel.shape[-1]).T)
    if "attention_output/bias" in w:
        out["out_proj.bias"] = w["attention_output/bias"].copy()
    return out


def _to_keras(p, ctx):
    heads = ctx.num_heads
    if not heads:
        raise LayoutError(
            f"Attention module '{ctx.name}': the number of heads is not in torch's arrays; pass "
            f"LayerContext(num_heads=module.num_heads)."
        )
    if "in_proj_weight" in p:
        mats = dict(zip((t for _, t in _PROJ), np.split(p["in_proj_weight"], 3, axis=0)))
    else:
        mats = {t: p[t] for _, t in _PROJ if t in p}
        if len(mats) != 3:
            raise LayoutError(f"Attention module '{ctx.name}' has neither in_proj_weight nor q/k/v_proj_weight.")
    out = {}
    sizes = []
    for keras_name, torch_name in _PROJ:
        m = mats[torch_name]  # (heads * per head, features in)
        if m.shape[0] % heads:
            raise LayoutError(f"Attention module '{ctx.name}': {torch_name} has {m.shape[0]} rows, not a multiple of {heads} heads.")
        out[f"{keras_name}/kernel"] = np.ascontiguousarray(m.T.reshape(m.shape[1], heads, m.shape[0] // heads))
        sizes.append(m.shape[0])
    if "in_proj_bias" in p:
        for (keras_name, _), part in zip(_PROJ, np.split(p["in_proj_bias"], np.cumsum(sizes)[:-1])):
            out[f"{keras_name}/bias"] = part.reshape(heads, -1).copy()
    w_out = p["out_proj.weight"]  # (out, heads * value per head)
    out["attention_output/kernel"] = np.ascontiguousarray(w_out.T.reshape(heads, -1, w_out.shape[0]))
    if "out_proj.bias" in p:
        out["attention_output/bias"] = p["out_proj.bias"].copy()
    return out


register(
    WeightFamily(
        name="attention",
        keras_types=("MultiHeadAttention",),
        torch_types=("MultiheadAttention", "KerasMultiHeadAttention"),
        to_torch=_to_torch,
        to_keras=_to_keras,
        kind="attention",
        names={
            "in_proj_weight": "query/kernel", "q_proj_weight": "query/kernel", "k_proj_weight": "key/kernel",
            "v_proj_weight": "value/kernel", "in_proj_bias": "query/bias", "out_proj.weight": "attention_output/kernel",
            "out_proj.bias": "attention_output/bias",
        },
    )
)  # fmt: skip
