"""One small module per op family torch_to_keras converts, against PyTorch in float64
(relative difference <= 1e-9; float32 where TF computes the op in float32 only)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import needs_keras
from xconv import torch_to_keras
from xconv.layouts import activation_to_keras, activation_to_torch

pytestmark = needs_keras


class Fn(nn.Module):
    """Wraps a function of the input (and of the module's own submodules)."""

    def __init__(self, fn, **mods):
        super().__init__()
        self.fn = fn
        for k, v in mods.items():
            setattr(self, k, v)

    def forward(self, x):
        return self.fn(self, x)


def run(module, x, dtype="float64"):
    module = module.to(getattr(torch, dtype)).eval()
    x = x.to(getattr(torch, dtype)) if x.is_floating_point() else x
    with torch.no_grad():
        want = module(x)
    k = torch_to_keras(module, example_inputs=x)
    xn = x.numpy()
    got = k(activation_to_keras(xn) if xn.ndim >= 3 else xn)
    wants = list(want) if isinstance(want, (tuple, list)) else [want]
    gots = list(got) if isinstance(got, (tuple, list)) else [got]
    assert len(wants) == len(gots)
    for w, g in zip(wants, gots):
        g = activation_to_torch(np.asarray(g))
        assert g.shape == tuple(w.shape)
        w = w.numpy()
        assert np.abs(g - w).max() / max(np.abs(w).max(), 1e-300) <= (1e-9 if dtype == "float64" else 1e-5)
    return k


def maps(*shape, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).standard_normal(shape))


CASES = {
    "pixel_unshuffle": (lambda: nn.PixelUnshuffle(2), (2, 3, 8, 6)),
    "pixel_shuffle": (lambda: nn.PixelShuffle(2), (2, 8, 3, 5)),
    "bicubic": (lambda: Fn(lambda m, x: F.interpolate(x, scale_factor=2, mode="bicubic")), (2, 2, 5, 4)),
    "bicubic_align": (lambda: Fn(lambda m, x: F.interpolate(x, size=(7, 9), mode="bicubic", align_corners=True)), (2, 2, 5, 4)),
    "bilinear_to_size": (lambda: Fn(lambda m, x: F.interpolate(x, size=(7, 5), mode="bilinear")), (2, 2, 5, 4)),
    "nearest_to_size": (lambda: Fn(lambda m, x: F.interpolate(x, size=(7, 6), mode="nearest")), (2, 2, 5, 4)),
    "linear_1d": (lambda: nn.Upsample(scale_factor=3, mode="linear", align_corners=True), (2, 3, 5)),
    "trilinear": (lambda: nn.Upsample(scale_factor=2, mode="trilinear"), (1, 2, 3, 4, 3)),
    "adaptive_avg_uneven": (lambda: nn.AdaptiveAvgPool2d((3, 2)), (2, 3, 7, 5)),
    "adaptive_max_uneven": (lambda: nn.AdaptiveMaxPool2d(3), (2, 3, 7, 8)),
    "adaptive_avg_1d": (lambda: nn.AdaptiveAvgPool1d(4), (2, 3, 8)),
    "instance_norm_1d": (lambda: nn.InstanceNorm1d(3, affine=True), (2, 3, 9)),
    "instance_norm_3d": (lambda: nn.InstanceNorm3d(2), (2, 2, 3, 4, 5)),
    "layer_norm_last_two": (lambda: nn.LayerNorm((4, 5)), (2, 3, 4, 5)),
    "group_norm_1d": (lambda: nn.GroupNorm(2, 4), (2, 4, 7)),
    "chunk_narrow_unbind_stack": (lambda: Fn(lambda m, x: torch.stack([*x.chunk(2, 1)[0].unbind(2), x.narrow(2, 1, 2)[:, :2, 0]], dim=1)), (2, 4, 3, 5)),
    "reductions": (lambda: Fn(lambda m, x: x.amax(dim=(2, 3), keepdim=True) + x.sum(1, keepdim=True) - x.mean(-1, keepdim=True)), (2, 3, 4, 5)),
    "var_and_max_dim": (lambda: Fn(lambda m, x: x.var(dim=1) + x.max(dim=1)[0]), (2, 3, 4, 5)),
    "clamp_hardtanh": (lambda: Fn(lambda m, x: F.hardtanh(x, -0.5, 0.7) + x.clamp(min=0.1) + F.relu6(x)), (2, 3, 4, 4)),
    "constants_broadcast": (lambda: Fn(lambda m, x: (x * m.g.view(1, -1, 1, 1) + 2.0) / 3.0 - m.g[None, :, None, None], g=nn.Parameter(torch.randn(3))), (2, 3, 4, 4)),
    "matmul_bmm_baddbmm": (lambda: Fn(lambda m, x: torch.baddbmm(x, torch.bmm(x, x.transpose(1, 2)), x, alpha=0.5, beta=2.0) @ x), (2, 4, 4)),
    "channel_shuffle": (lambda: Fn(lambda m, x: x.view(2, 2, 3, 4, 4).transpose(1, 2).reshape(2, 6, 4, 4)), (2, 6, 4, 4)),
    "slice_update": (lambda: Fn(lambda m, x: _slice_update(x)), (2, 4, 3, 3)),
    "where_and_compare": (lambda: Fn(lambda m, x: torch.where(x > 0, x, x * 0.1)), (2, 3, 4, 4)),
    "normalize_flip_roll_repeat": (lambda: Fn(lambda m, x: F.normalize(x, dim=1).flip(2).roll(1, 3).repeat(1, 2, 1, 1) + torch.zeros_like(x).repeat(1, 2, 1, 1)), (2, 3, 4, 5)),
    "sdpa": (lambda: Fn(lambda m, x: F.scaled_dot_product_attention(x, x, x, is_causal=True)), (2, 2, 5, 4)),
}


def _slice_update(x):
    y = x.clone()
    y[:, 1:3] += 1.0
    return y


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_op_matches_torch(case):
    make, shape = CASES[case]
    dtype = "float32" if case == "trilinear" else "float64"  # TF keeps float64 everywhere else used here
    run(make(), maps(*shape), dtype)


def test_recurrent_and_attention_units():
    torch.manual_seed(0)
    lstm = nn.LSTM(3, 5, num_layers=2, bidirectional=True)  # (T, N, F): not batch_first
    out = run(Fn(lambda m, x: m.lstm(x.permute(2, 0, 1))[1][0][-2:].sum(0), lstm=lstm), maps(2, 3, 6))  # h_n of the last layer
    assert {"LSTM", "Bidirectional"} & {type(l).__name__ for l in out.layers}
    gru = nn.GRU(4, 3, batch_first=True)
    run(Fn(lambda m, x: m.gru(x)[0], gru=gru), maps(2, 5, 4))
    mha = nn.MultiheadAttention(8, 2, kdim=8, vdim=8)  # (T, N, E); cross attention: query from one half
    k = run(Fn(lambda m, x: m.mha(x[:, :3].transpose(0, 1), x.transpose(0, 1), x.transpose(0, 1), need_weights=False)[0].transpose(0, 1), mha=mha), maps(2, 6, 8), "float32")
    assert "MultiHeadAttention" in {type(l).__name__ for l in k.layers}


def test_embedding_takes_token_ids():
    emb = nn.Embedding(11, 4)
    x = torch.randint(0, 11, (2, 7))
    k = run(Fn(lambda m, x: m.emb(x).mean(1), emb=emb), x)
    assert k.inputs[0].dtype == "int64"


def test_the_op_registry_rejects_a_second_converter():
    from xconv.translate.torch_to_keras.converters import converts, supported

    assert "aten::convolution" in supported()
    with pytest.raises(ValueError, match="already has a converter"):
        converts("aten::convolution", family="again")(lambda cx, node, args, kwargs: None)


def test_a_failed_export_is_one_message_with_torchs_reason():
    from xconv.capture.torch_graph import ExportFailedError

    class DataDependent(nn.Module):
        def forward(self, x):
            return x if x.sum() > 0 else -x  # Python control flow on a tensor's value

    with pytest.raises(ExportFailedError, match=r"torch.export could not trace DataDependent on inputs of shape \[\(2, 3, 4, 4\)\]: \w+"):
        torch_to_keras(DataDependent(), (3, 4, 4))


def test_reshape_that_merges_the_batch_is_refused_with_the_node():
    from xconv.errors import UnsupportedLayerError

    with pytest.raises(UnsupportedLayerError, match=r"merges or splits the batch axis.*node 'view'"):
        torch_to_keras(Fn(lambda m, x: m.lin(x.reshape(-1, 4)), lin=nn.Linear(4, 2)), (3, 4))


class Stem(nn.Module):
    """ConvNeXt-style: a LayerNorm over channels done by permuting, then a block with a residual."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 2, stride=2)
        self.norm = nn.LayerNorm(8)
        self.fc = nn.Linear(8, 8)

    def forward(self, x):
        x = self.conv(x)
        x = self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return x + self.fc(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def test_layer_names_are_module_paths_and_permutes_move_no_data():
    k = run(Stem(), maps(2, 3, 8, 8))
    kinds = {l.name: type(l).__name__ for l in k.layers}
    assert kinds["conv"] == "Conv2D" and kinds["norm"] == "LayerNormalization" and kinds["fc"] == "Dense"
    assert k.xconv_align["norm"] == "norm" and k.xconv_align["fc"] == "fc"
    assert "Permute" not in kinds.values()
    transposes = [op for op in k.operations if type(op).__name__ == "Transpose"]
    assert not transposes, "the permutes of a channels-last LayerNorm need no transpose"


@pytest.mark.parametrize("n, k, s, p, same", [(9, 3, 2, 1, True), (8, 3, 2, 1, False), (10, 5, 3, 2, True), (11, 5, 3, 2, False), (7, 3, 1, 1, True), (7, 4, 1, 1, False)])
def test_conv_says_padding_same_where_torchs_pads_are_tfs(n, k, s, p, same):
    """A conv whose symmetric pads are TF's 'same' for this input (any stride) is one Conv2D
    with padding='same', without a ZeroPadding step; otherwise it pads explicitly (padding.is_same)."""
    torch.manual_seed(0)
    conv = nn.Conv2d(2, 3, k, stride=s, padding=p).double().eval()
    x = torch.randn(2, 2, n, n, dtype=torch.float64)
    model = torch_to_keras(conv, example_inputs=x)
    layer = next(l for l in model.layers if type(l).__name__ == "Conv2D")
    assert layer.padding == ("same" if same else "valid")
    assert any(type(l).__name__ == "ZeroPadding2D" for l in model.layers) == (not same)
    with torch.no_grad():
        want = conv(x).numpy()
    got = np.asarray(model(activation_to_keras(x.numpy())))
    np.testing.assert_allclose(activation_to_torch(got), want, rtol=1e-9, atol=1e-12)
