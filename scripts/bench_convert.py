"""Weight-file conversion speed and memory, measured against `cp` and torch in the same run.

1. A synthetic safetensors file (--gb, default 2) of Keras-layout conv kernels is converted to
   torch layout by `xconv.convert.convert_layout` in a child process; its time (interpreter
   start-up and imports excluded) is compared with `cp` of the same file, and its peak RSS
   with the same process's RSS after the imports, against twice the largest tensor.
2. The in-memory layout transform of unet_encoder's weights (`xconv.layouts`) against
   torch's `permute().contiguous()`.

    python scripts/bench_convert.py [--gb 2] [--dir /tmp] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

CHILD = r"""
import resource, sys, time
import numpy as np, torch
from xconv.convert import convert_layout
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
convert_layout(sys.argv[1], sys.argv[2], to="torch", force=True)
elapsed = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(elapsed, base * 1024, peak * 1024)
"""


def make_file(path: str, gb: float, shape=(3, 3, 1024, 1024)) -> tuple[int, int]:
    import numpy as np

    from xconv.files import write_safetensors_stream

    tensor_bytes = int(np.prod(shape)) * 4
    count = max(1, int(gb * 2**30 // tensor_bytes))
    shapes = {f"block{i}/kernel": (shape, np.float32) for i in range(count)}
    rng = np.random.default_rng(0)
    chunk = rng.standard_normal(shape, dtype=np.float32)

    def items():
        for i in range(count):
            chunk.flat[i] = i  # each tensor a little different
            yield f"block{i}/kernel", chunk

    write_safetensors_stream(path, items(), shapes, {"layout": "keras"})
    return count * tensor_bytes, tensor_bytes


def layout_vs_torch(repeat: int = 9) -> dict:
    import numpy as np
    import torch

    from xconv import layouts, zoo

    kernels = [m.weight.detach().numpy().transpose(2, 3, 1, 0).copy() for m in zoo.build("unet_encoder", "torch").modules() if isinstance(m, torch.nn.Conv2d)]
    tensors = [torch.from_numpy(k) for k in kernels]

    def ours():
        return [layouts.conv_kernel_to_torch(k) for k in kernels]

    def theirs():
        return [t.permute(3, 2, 0, 1).contiguous() for t in tensors]

    for fn in (ours, theirs):
        fn()
    times = {"xconv": [], "torch": []}
    for _ in range(repeat):
        for name, fn in (("xconv", ours), ("torch", theirs)):
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    assert all(np.array_equal(a, b.numpy()) for a, b in zip(ours(), theirs()))
    x, t = statistics.median(times["xconv"]), statistics.median(times["torch"])
    return {"xconv_s": round(x, 5), "torch_s": round(t, 5), "xconv_over_torch": round(x / t, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gb", type=float, default=2.0)
    parser.add_argument("--dir", default=None, help="where to put the temporary files (needs 3 x --gb free)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        src, copy, out = (os.path.join(tmp, n) for n in ("in.safetensors", "copy.safetensors", "out.safetensors"))
        size, largest = make_file(src, args.gb)
        start = time.perf_counter()
        subprocess.run(["cp", src, copy], check=True)
        cp_s = time.perf_counter() - start
        os.unlink(copy)
        line = subprocess.run([sys.executable, "-c", CHILD, src, out], check=True, capture_output=True, text=True).stdout.split()
        conv_s, base_rss, peak_rss = float(line[0]), int(line[1]), int(line[2])
    result = {
        "file_bytes": size,
        "largest_tensor_bytes": largest,
        "cp_s": round(cp_s, 3),
        "convert_s": round(conv_s, 3),
        "throughput_vs_cp": round(cp_s / conv_s, 3),
        "target_throughput_vs_cp": 0.5,
        "rss_after_imports_bytes": base_rss,
        "peak_rss_bytes": peak_rss,
        "rss_growth_over_largest_tensor": round((peak_rss - base_rss) / largest, 2),
        "target_rss_growth_over_largest_tensor": 2.0,
        "layout_transform_unet": layout_vs_torch(),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    gb = size / 2**30
    print(f"safetensors layout conversion, {gb:.2f} GiB, largest tensor {largest / 2**20:.1f} MiB:")
    print(f"  cp                     {cp_s:7.2f} s  ({gb / cp_s:.2f} GiB/s)")
    print(f"  xconv convert --layout {conv_s:7.2f} s  ({gb / conv_s:.2f} GiB/s): {result['throughput_vs_cp']:.2f} of cp's throughput (target >= 0.5)")
    print(f"  peak RSS {peak_rss / 2**20:.0f} MiB, {(peak_rss - base_rss) / 2**20:.0f} MiB over the interpreter with its imports: "
          f"{result['rss_growth_over_largest_tensor']:.2f} x the largest tensor (target < 2)")
    lt = result["layout_transform_unet"]
    print(f"unet_encoder kernels to torch layout: xconv {lt['xconv_s'] * 1e3:.1f} ms, torch permute().contiguous() {lt['torch_s'] * 1e3:.1f} ms "
          f"(ratio {lt['xconv_over_torch']:.2f}, target <= 1)")


if __name__ == "__main__":
    main()
