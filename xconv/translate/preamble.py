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

    def __init__(self, shape, channels_first_in):
        super().__init__()
        self.shape = tuple(shape)
        self.channels_first_in = channels_first_in

    def forward(self, x):
        if self.channels_first_in:
            x = x.movedim(1, -1)
        x = x.reshape(x.shape[0], *self.shape)
        return x.movedim(-1, 1) if x.dim() > 2 else x
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
}


def source(helpers) -> str:
    """The preamble for ``helpers``, in a fixed order."""
    return HEADER + "".join(HELPERS[name] for name in HELPERS if name in set(helpers))
