"""Small torch modules for Keras ops torch has no single layer for.

Each entry is source code: the generated model file includes the ones it uses, so it runs
without xconv installed, and the in-memory module is built from the very same text.
"""

from __future__ import annotations

HEADER = '''import math

import torch
import torch.nn.functional as F
from torch import nn
'''

HELPERS: dict[str, str] = {
    "Add": '''
class Add(nn.Module):
    def forward(self, *xs):
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out
''',
    "Subtract": '''
class Subtract(nn.Module):
    def forward(self, a, b):
        return a - b
''',
    "Multiply": '''
class Multiply(nn.Module):
    def forward(self, *xs):
        out = xs[0]
        for x in xs[1:]:
            out = out * x
        return out
''',
    "Average": '''
class Average(nn.Module):
    def forward(self, *xs):
        return torch.stack(xs).mean(dim=0)
''',
    "Maximum": '''
class Maximum(nn.Module):
    def forward(self, *xs):
        return torch.stack(xs).amax(dim=0)
''',
    "Minimum": '''
class Minimum(nn.Module):
    def forward(self, *xs):
        return torch.stack(xs).amin(dim=0)
''',
    "Concatenate": '''
class Concatenate(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.dim = dim

    def forward(self, *xs):
        return torch.cat(xs, dim=self.dim)
''',
    "FlattenChannelsLast": '''
class FlattenChannelsLast(nn.Module):
    """Keras' Flatten order, (N, C, *S) -> (N, S... C): used where the order is visible downstream."""

    def forward(self, x):
        return x.movedim(1, -1).flatten(1) if x.dim() > 2 else x
''',
    "Reshape": '''
class Reshape(nn.Module):
    """Keras Reshape: reshape in Keras' channels-last order, then back to channels-first."""

    def __init__(self, shape, channels_first_in, channels_first_out=True):
        super().__init__()
        self.shape = tuple(shape)
        self.channels_first_in, self.channels_first_out = channels_first_in, channels_first_out

    def forward(self, x):
        if self.channels_first_in:
            x = x.movedim(1, -1)
        x = x.reshape(x.shape[0], *self.shape)
        return x.movedim(-1, 1) if x.dim() > 2 and self.channels_first_out else x
''',
    "Permute": '''
class Permute(nn.Module):
    """Keras Permute: permute in Keras' channels-last order, then back to channels-first."""

    def __init__(self, dims):
        super().__init__()
        self.dims = (0, *dims)

    def forward(self, x):
        return x.movedim(1, -1).permute(self.dims).movedim(-1, 1)
''',
    "RepeatVector": '''
class RepeatVector(nn.Module):
    """(N, F) -> Keras (N, n, F), which is (N, F, n) channels-first."""

    def __init__(self, n):
        super().__init__()
        self.n = n

    def forward(self, x):
        return x.unsqueeze(2).expand(-1, -1, self.n)
''',
    "SamePad": '''
class SamePad(nn.Module):
    """TensorFlow 'same' padding computed from the input size (for inputs of unknown size)."""

    def __init__(self, kernel, stride, dilation, value=0.0):
        super().__init__()
        self.kernel, self.stride, self.dilation, self.value = kernel, stride, dilation, value

    def forward(self, x):
        pads = []
        for n, k, s, d in zip(reversed(x.shape[2:]), reversed(self.kernel), reversed(self.stride), reversed(self.dilation)):
            total = max((math.ceil(n / s) - 1) * s + (k - 1) * d + 1 - n, 0)
            pads += [total // 2, total - total // 2]
        return F.pad(x, pads, value=self.value)
''',
    "AvgPoolSame": '''
class AvgPoolSame(nn.Module):
    """Keras average pooling with 'same' padding: the padding is left out of each window's count."""

    def __init__(self, kernel, stride, pads):
        super().__init__()
        self.kernel, self.stride, self.pads = kernel, stride, pads
        self.pool = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}[len(kernel)]

    def forward(self, x):
        ones = torch.ones((1, 1, *x.shape[2:]), dtype=x.dtype, device=x.device)
        total = self.pool(F.pad(x, self.pads), self.kernel, self.stride)
        count = self.pool(F.pad(ones, self.pads), self.kernel, self.stride)
        return total / count
''',
    "GlobalPool": '''
class GlobalPool(nn.Module):
    def __init__(self, mode, keepdims):
        super().__init__()
        self.mode, self.keepdims = mode, keepdims

    def forward(self, x):
        dims = tuple(range(2, x.dim()))
        if self.mode == "max":
            return x.amax(dim=dims, keepdim=self.keepdims)
        return x.mean(dim=dims, keepdim=self.keepdims)
''',
    "Crop": '''
class Crop(nn.Module):
    def __init__(self, crops):
        super().__init__()
        self.crops = crops  # ((before, after), ...) per spatial axis

    def forward(self, x):
        index = [slice(None), slice(None)]
        for (b, a), n in zip(self.crops, x.shape[2:]):
            index.append(slice(b, n - a))
        return x[tuple(index)]
''',
    "LayerNormChannels": '''
class LayerNormChannels(nn.Module):
    """Keras LayerNormalization(axis=-1) on channels-first maps: normalise over dim 1."""

    def __init__(self, channels, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x):
        mean = x.mean(dim=1, keepdim=True)
        var = x.var(dim=1, keepdim=True, unbiased=False)
        shape = (1, -1) + (1,) * (x.dim() - 2)
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight.view(shape) + self.bias.view(shape)
''',
    "LayerNormAxes": '''
class LayerNormAxes(nn.Module):
    """Keras LayerNormalization over any axes, in Keras' axis order; ``rms`` is Keras'
    rms_scaling, which divides by the (centred) standard deviation without centring x."""

    def __init__(self, dims, shape, eps, rms=False):
        super().__init__()
        self.dims, self.eps, self.rms = tuple(dims), eps, rms
        self.weight = nn.Parameter(torch.ones(shape))
        self.bias = None if rms else nn.Parameter(torch.zeros(shape))

    def forward(self, x):
        view = [1] * x.dim()
        for d, n in zip(self.dims, self.weight.shape):
            view[d] = n
        var = x.var(dim=self.dims, keepdim=True, unbiased=False)
        inv = torch.rsqrt(var + self.eps)
        if self.rms:
            return x * inv * self.weight.view(view)
        mean = x.mean(dim=self.dims, keepdim=True)
        return (x - mean) * inv * self.weight.view(view) + self.bias.view(view)
''',
    "BatchNormAxis": '''
class BatchNormAxis(nn.Module):
    """Inference batch normalisation along any dim (Keras BatchNormalization with a non-channel axis)."""

    def __init__(self, dim, size, eps):
        super().__init__()
        self.dim, self.eps = dim, eps
        self.weight = nn.Parameter(torch.ones(size))
        self.bias = nn.Parameter(torch.zeros(size))
        self.register_buffer("running_mean", torch.zeros(size))
        self.register_buffer("running_var", torch.ones(size))

    def forward(self, x):
        shape = [1] * x.dim()
        shape[self.dim] = -1
        scale = self.weight.view(shape) / torch.sqrt(self.running_var.view(shape) + self.eps)
        return (x - self.running_mean.view(shape)) * scale + self.bias.view(shape)
''',
    "KerasReLU": '''
class KerasReLU(nn.Module):
    """Keras ReLU(max_value, negative_slope, threshold)."""

    def __init__(self, max_value, negative_slope, threshold):
        super().__init__()
        self.max_value, self.negative_slope, self.threshold = max_value, negative_slope, threshold

    def forward(self, x):
        out = torch.where(x >= self.threshold, x, self.negative_slope * (x - self.threshold))
        if self.max_value is not None:
            out = torch.clamp(out, max=self.max_value)
        return out
''',
    "KerasGELU": '''
class KerasGELU(nn.Module):
    """Keras' gelu. On TensorFlow its constants (1/sqrt(2); 0.044715 in the tanh form) are float32
    even in a float64 model; in float64 this computes with the same rounded constants."""

    SQRT_HALF = 0.7071067690849304  # float32(1 / sqrt(2))
    TANH_COEFF = 0.044714998453855515  # float32(0.044715)

    def __init__(self, approximate="none"):
        super().__init__()
        self.approximate = approximate

    def forward(self, x):
        if x.dtype != torch.float64:
            return F.gelu(x, approximate=self.approximate)
        if self.approximate == "tanh":
            return 0.5 * x * (1.0 + torch.tanh(0.7978845608028654 * (x + self.TANH_COEFF * x.pow(3))))
        return 0.5 * x * torch.erfc(-x * self.SQRT_HALF)
''',
    "PReLU": '''
class PReLU(nn.Module):
    """Keras PReLU: one slope per element of the non-batch shape (or shared along some axes)."""

    def __init__(self, shape):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(shape))

    def forward(self, x):
        return torch.relu(x) - self.weight * torch.relu(-x)
''',
    "Exp": '''
class Exp(nn.Module):
    def forward(self, x):
        return torch.exp(x)
''',
    "Affine": '''
class Affine(nn.Module):
    """x * scale + offset, broadcast along the channel axis (Keras Rescaling / Normalization)."""

    def __init__(self, scale, offset):
        super().__init__()
        self.scale, self.offset = scale, offset  # Python numbers: exact in any dtype the model runs in

    def forward(self, x):
        scale = torch.as_tensor(self.scale, dtype=x.dtype, device=x.device)
        offset = torch.as_tensor(self.offset, dtype=x.dtype, device=x.device)
        return x * scale + offset
''',
    "Normalize": '''
class Normalize(nn.Module):
    """Keras Normalization: (x - mean) / max(sqrt(variance), epsilon), broadcast along channels."""

    def __init__(self, mean, std):
        super().__init__()
        self.mean, self.std = mean, std  # Python numbers: exact in any dtype the model runs in

    def forward(self, x):
        mean = torch.as_tensor(self.mean, dtype=x.dtype, device=x.device)
        std = torch.as_tensor(self.std, dtype=x.dtype, device=x.device)
        return (x - mean) / std
''',
    "LayerScale": '''
class LayerScale(nn.Module):
    """ConvNeXt's layer scale: x times a learnt per-channel gamma (channels along ``dim``)."""

    def __init__(self, channels, dim):
        super().__init__()
        self.dim = dim
        self.gamma = nn.Parameter(torch.ones(channels))

    def forward(self, x):
        shape = [1] * x.dim()
        shape[self.dim] = -1
        return x * self.gamma.view(shape)
''',
    "ScaleAdd": '''
class ScaleAdd(nn.Module):
    """InceptionResNetV2's CustomScaleLayer: shortcut + residual * scale."""

    def __init__(self, scale):
        super().__init__()
        self.scale = scale

    def forward(self, x, residual):
        return x + residual * self.scale
''',
    "KerasRecurrent": '''
def keras_rnn_outputs(kind, out, state, return_sequences, return_state, bidirectional, merge):
    """What a Keras recurrent layer returns, from a batch_first torch RNN's (output, state):
    the whole sequence or its last step, then (return_state) the final states; a Bidirectional
    merges the two directions (concat, sum, mul, ave, or None: both)."""
    h, c = state if kind == "LSTM" else (state, None)
    states = [h] if c is None else [h, c]
    if not bidirectional:
        y = out if return_sequences else h[-1]
        return (y, *(s[-1] for s in states)) if return_state else y
    units = h.shape[-1]
    fwd, bwd = (out[..., :units], out[..., units:]) if return_sequences else (h[-2], h[-1])
    if merge == "concat":
        y = (torch.cat((fwd, bwd), dim=-1),)
    elif merge == "sum":
        y = (fwd + bwd,)
    elif merge == "mul":
        y = (fwd * bwd,)
    elif merge == "ave":
        y = ((fwd + bwd) / 2,)
    else:
        y = (fwd, bwd)
    if not return_state:
        return y[0] if len(y) == 1 else y
    return (*y, *(s[-2] for s in states), *(s[-1] for s in states))


def initial_states(kind, given, bidirectional):
    """Keras' initial_state list ([h, c] per direction, each (batch, units)) as torch's (h0[, c0])."""
    if not given:
        return ()
    per = 2 if kind == "LSTM" else 1
    dirs = [given[i * per : (i + 1) * per] for i in range(2 if bidirectional else 1)]
    stacked = [torch.stack([d[j] for d in dirs]) for j in range(per)]
    return (tuple(stacked),) if kind == "LSTM" else (stacked[0],)


class KerasRecurrentOutputs:
    """Mixed into a torch RNN (nn.LSTM, nn.GRU, nn.RNN): batch_first, Keras' go_backwards, and
    Keras' outputs (``KIND`` names the Keras layer)."""

    KIND = ""

    def __init__(self, *args, return_sequences=False, return_state=False, go_backwards=False, merge="concat", **kwargs):
        super().__init__(*args, batch_first=True, **kwargs)
        self.keras = (return_sequences, return_state, go_backwards, merge)

    def forward(self, x, *initial_state):
        seqs, state, backwards, merge = self.keras
        x = torch.flip(x, dims=(1,)) if backwards else x
        out, st = super().forward(x, *initial_states(self.KIND, initial_state, self.bidirectional))
        return keras_rnn_outputs(self.KIND, out, st, seqs, state, self.bidirectional, merge)


class KerasLSTM(KerasRecurrentOutputs, nn.LSTM):
    """nn.LSTM(batch_first=True) returning what Keras' LSTM returns."""

    KIND = "LSTM"


class KerasGRU(KerasRecurrentOutputs, nn.GRU):
    """nn.GRU(batch_first=True) returning what Keras' GRU(reset_after=True) returns."""

    KIND = "GRU"


class KerasRNN(KerasRecurrentOutputs, nn.RNN):
    """nn.RNN(batch_first=True) returning what Keras' SimpleRNN returns."""

    KIND = "SimpleRNN"
''',
    "GRUResetBefore": '''
class GRUResetBefore(nn.Module):
    """Keras GRU(reset_after=False): the reset gate multiplies the state before the recurrent
    matmul, which nn.GRU cannot do. Same parameter names and gate order (r, z, n) as nn.GRU,
    and one bias per direction. Returns (output, h_n) like nn.GRU(batch_first=True)."""

    def __init__(self, input_size, hidden_size, bias=True, bidirectional=False, return_sequences=False,
                 return_state=False, go_backwards=False, merge="concat"):
        super().__init__()
        self.hidden_size, self.bidirectional = hidden_size, bidirectional
        self.keras = (return_sequences, return_state, go_backwards, merge)
        for suffix in ("", "_reverse") if bidirectional else ("",):
            setattr(self, f"weight_ih_l0{suffix}", nn.Parameter(torch.zeros(3 * hidden_size, input_size)))
            setattr(self, f"weight_hh_l0{suffix}", nn.Parameter(torch.zeros(3 * hidden_size, hidden_size)))
            if bias:
                setattr(self, f"bias_ih_l0{suffix}", nn.Parameter(torch.zeros(3 * hidden_size)))
            else:
                setattr(self, f"bias_ih_l0{suffix}", None)

    def _run(self, x, suffix):
        w_ih, w_hh = getattr(self, f"weight_ih_l0{suffix}"), getattr(self, f"weight_hh_l0{suffix}")
        b = getattr(self, f"bias_ih_l0{suffix}")
        n = self.hidden_size
        gx = F.linear(x, w_ih, b)
        h = x.new_zeros(x.shape[0], n)
        outs = []
        for t in range(x.shape[1]):
            g = gx[:, t]
            r = torch.sigmoid(g[:, :n] + h @ w_hh[:n].T)
            z = torch.sigmoid(g[:, n : 2 * n] + h @ w_hh[n : 2 * n].T)
            cand = torch.tanh(g[:, 2 * n :] + (r * h) @ w_hh[2 * n :].T)
            h = z * h + (1 - z) * cand
            outs.append(h)
        return torch.stack(outs, dim=1), h

    def forward(self, x):
        seqs, state, backwards, merge = self.keras
        x = torch.flip(x, dims=(1,)) if backwards else x
        out, h = self._run(x, "")
        if not self.bidirectional:
            return keras_rnn_outputs("GRU", out, h.unsqueeze(0), seqs, state, False, merge)
        back, hb = self._run(torch.flip(x, dims=(1,)), "_reverse")
        out = torch.cat((out, torch.flip(back, dims=(1,))), dim=-1)
        return keras_rnn_outputs("GRU", out, torch.stack((h, hb)), seqs, state, True, merge)
''',
    "TokenIds": '''
class TokenIds(nn.Module):
    """Token ids given as floats, truncated to integers as Keras' Embedding does."""

    def forward(self, x):
        return x.long() if x.is_floating_point() else x
''',
    "DotAttention": '''
class DotAttention(nn.Module):
    """Keras Attention (dot-product): softmax(query @ key^T [* scale]) @ value; ``order`` picks
    query, value (and key) among the inputs."""

    def __init__(self, order, use_scale):
        super().__init__()
        self.order = order
        self.scale = nn.Parameter(torch.ones(())) if use_scale else None

    def forward(self, *xs):
        query, value = xs[self.order[0]], xs[self.order[1]]
        key = xs[self.order[2]] if len(self.order) > 2 else value
        scores = query @ key.transpose(-1, -2)
        if self.scale is not None:
            scores = scores * self.scale
        return torch.softmax(scores, dim=-1) @ value
''',
    "KerasMultiHeadAttention": '''
class KerasMultiHeadAttention(nn.Module):
    """Keras MultiHeadAttention for any key_dim, value_dim and output size: nn.MultiheadAttention's
    parameter names (in_proj_weight, or q/k/v_proj_weight; in_proj_bias; out_proj), any number of
    attention axes (flattened), and Keras' scale. ``order`` picks query, value (and key) among the
    inputs."""

    def __init__(self, embed_dim, num_heads, key_dim, value_dim, out_dim, kdim, vdim, bias, packed, scale, order):
        super().__init__()
        self.num_heads, self.key_dim, self.value_dim, self.scale, self.order = num_heads, key_dim, value_dim, scale, order
        hk, hv = num_heads * key_dim, num_heads * value_dim
        if packed:
            self.in_proj_weight = nn.Parameter(torch.zeros(2 * hk + hv, embed_dim))
        else:
            self.q_proj_weight = nn.Parameter(torch.zeros(hk, embed_dim))
            self.k_proj_weight = nn.Parameter(torch.zeros(hk, kdim))
            self.v_proj_weight = nn.Parameter(torch.zeros(hv, vdim))
        self.in_proj_bias = nn.Parameter(torch.zeros(2 * hk + hv)) if bias else None
        self.out_proj = nn.Linear(hv, out_dim, bias=bias)
        self.packed = packed

    def forward(self, *xs):
        query, value = xs[self.order[0]], xs[self.order[1]]
        key = xs[self.order[2]] if len(self.order) > 2 else value
        hk, hv = self.num_heads * self.key_dim, self.num_heads * self.value_dim
        if self.packed:
            wq, wk, wv = self.in_proj_weight.split((hk, hk, hv))
        else:
            wq, wk, wv = self.q_proj_weight, self.k_proj_weight, self.v_proj_weight
        bq, bk, bv = self.in_proj_bias.split((hk, hk, hv)) if self.in_proj_bias is not None else (None, None, None)
        shape = query.shape
        query, key, value = (t.flatten(1, -2) for t in (query, key, value))
        q = F.linear(query, wq, bq).unflatten(-1, (self.num_heads, self.key_dim)).transpose(1, 2)
        k = F.linear(key, wk, bk).unflatten(-1, (self.num_heads, self.key_dim)).transpose(1, 2)
        v = F.linear(value, wv, bv).unflatten(-1, (self.num_heads, self.value_dim)).transpose(1, 2)
        scores = torch.softmax((q @ k.transpose(-1, -2)) * self.scale, dim=-1)
        out = (scores @ v).transpose(1, 2).flatten(2)
        return self.out_proj(out).reshape(*shape[:-1], -1)
''',
}


def _import_line(module: str, name: str) -> str:
    import sys

    if module not in ("__main__", "builtins") and hasattr(sys.modules.get(module), name):
        return f"from {module} import {name}\n"
    # a class defined in a script or notebook: import it yourself before using this file
    return f"# {name}: your own module class (from {module}); define or import it before this file runs\n"


# helpers that use another helper's code
_NEEDS = {"GRUResetBefore": ("KerasRecurrent",)}


def source(helpers) -> str:
    """The preamble for ``helpers``, in a fixed order."""
    wanted = set(helpers)
    for name in list(wanted):
        wanted.update(_NEEDS.get(name, ()))
    # plug-ins: "import:module:Class" brings the user's own module class in
    imports = sorted({_import_line(*h.split(":")[1:3]) for h in wanted if h.startswith("import:")})
    return HEADER + "".join(imports) + "".join(HELPERS[name] for name in HELPERS if name in wanted)
