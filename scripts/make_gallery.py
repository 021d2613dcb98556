"""Render the pictures of the reference models into docs/gallery/ (docs/gallery.md shows them).

    python scripts/make_gallery.py [--out docs/gallery] [--small]

--small draws every picture through the same calls, but unet_encoder on a 64x64 input instead of
200x200 and fewer filter tiles: for tests (tests/test_gallery.py), not for the docs.
"""

from __future__ import annotations

import argparse
import copy
import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(pathlib.Path(__file__).resolve().parents[1] / "docs" / "gallery"))
    parser.add_argument("--small", action="store_true", help="a quick run for tests: unet_encoder on 64x64, fewer tiles (not for the docs)")
    args = parser.parse_args()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    import numpy as np
    import torch

    import xconv
    from xconv import viz, zoo

    # unet_encoder's four 2x2 pools need a side that 16 divides; conv4_2's 4x4 kernel sees 8x8 at 64
    sizes = {"unet_encoder": (64, 64, 1)} if args.small else {}
    tiles = 24 if args.small else 96  # single_conv's filters drawn

    def twins(name):
        k = zoo.build(name, "keras", seed=0, random_biases=True, input_shape=sizes.get(name))
        t = zoo.build(name, "torch", input_shape=sizes.get(name))
        xconv.transfer_weights(k, t)
        return k, t

    written = []

    def save(fig, filename):
        written.append(viz.save_figure(fig, out / filename))

    # single_conv: the 96 first-layer filters, and "did training change them?"
    k, t = twins("single_conv")
    save(viz.plot_filters(k, "conv_1", max_filters=tiles), "single_conv_filters.png")
    trained = copy.deepcopy(t)
    with torch.no_grad():  # a stand-in for a few training steps: small changes to some filters
        g = torch.Generator().manual_seed(0)
        trained.conv_1.weight[:12] += 0.05 * torch.randn(trained.conv_1.weight[:12].shape, generator=g)
    save(viz.plot_weights_change(t, trained, "conv_1", max_filters=24), "single_conv_weights_change.png")
    k_rgb, _ = twins("single_conv_rgb")
    save(viz.plot_filters(k_rgb, "conv_1"), "single_conv_rgb_filters.png")

    # two_conv on the smiley: 4 maps, then 6 maps
    k, t = twins("two_conv")
    save(viz.plot_feature_maps(k, zoo.sample_input("two_conv")), "two_conv_feature_maps.png")
    save(viz.plot_filters(k, "conv2"), "two_conv_conv2_filters.png")

    # conv3d_demo: the classic 2 x 4 x 3 = 24 slices of conv3d_c
    k, t = twins("conv3d_demo")
    save(viz.plot_filters(k, "conv3d_c", normalize="global"), "conv3d_demo_conv3d_c_filters.png")

    # unet_encoder: a report, and where a planted padding bug shows
    k, t = twins("unet_encoder")
    x = zoo.sample_input("unet_encoder")
    if args.small:  # the same seeded noise, cut to the small model's input
        x = np.ascontiguousarray(x[:, : sizes["unet_encoder"][0], : sizes["unet_encoder"][1]])
    bad = copy.deepcopy(t)
    bad.conv4_2_pad = torch.nn.ZeroPad2d((2, 1, 2, 1))  # the extra row/column before, not after
    report = xconv.compare(k, bad, x)
    save(viz.plot_report(report), "unet_encoder_report_planted_padding.png")
    save(viz.plot_layer_diff(k, bad, x, "conv4_2", max_channels=4), "unet_encoder_conv4_2_diff.png")
    save(viz.plot_report(xconv.compare(k, t, x)), "unet_encoder_report.png")
    save(viz.plot_filters(k, "conv5_2", max_filters=8, max_channels=8), "unet_encoder_conv5_2_filters.png")
    for path in written:
        print(path)


if __name__ == "__main__":
    main()
