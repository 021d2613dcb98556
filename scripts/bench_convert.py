"""Weight-file conversion speed and memory, measured against `cp` and torch in the same run.

1. Whole processes, page cache warm: `cp` of a synthetic safetensors file (--gb, default 1)
   of Keras-layout conv kernels, against `xconv convert --layout torch` (and --layout keras,
   a plain copy, and a .pt output) of the same file; each xconv time has the interpreter's
   start-up (the same command on a tiny file) subtracted. Round-robin, median of --repeat.
   Each process's user + sys seconds are reported beside its wall time (net of the tiny run's):
   on a loaded machine they move less than wall time does.
2. Each xconv process's peak RSS over its tiny twin's (the interpreter with the same imports:
   the baseline), in units of the largest tensor.
3. Conversions that need an architecture (not streamed: Keras loads the whole model):
   `.keras -> .pt` and `.pt -> .weights.h5 --arch`, on a model of 3x3 512->512 convs of about
   --arch-mb MB; peak RSS over the same commands on a one-conv model (the interpreter with
   TensorFlow loaded: the baseline), in units of the file and of the largest tensor.
4. The in-memory kernel transform (`xconv.layouts`) against torch's `permute().contiguous()`
   for 1x1, 3x3, 7x7, depthwise and Conv3D kernels, both directions, round-robin medians;
   with --kernel-grid also on a grid of conv kernels (1 to 49 taps, 3 to 768 channels, to 6 MB).

    python scripts/bench_convert.py [--gb 1] [--arch-mb 64] [--dir /tmp] [--repeat 3] [--kernel-grid] [--json]

The files live in a temporary folder under --dir and are deleted at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

# a child that runs one CLI command and reports its own peak RSS
CHILD = (  # VmHWM, not ru_maxrss: a child's ru_maxrss can report its parent's size at fork
    "import re, sys\nfrom xconv.cli.main import main\ncode = main(sys.argv[1:])\n"
    "print(int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)) * 1024, file=sys.stderr)\nsys.exit(code)\n"
)


def make_file(path: str, gb: float, shape=(3, 3, 1024, 1024)) -> tuple[int, int]:
    import numpy as np

    from xconv.files import write_safetensors_stream

    tensor_bytes = int(np.prod(shape)) * 4
    count = max(1, int(gb * 2**30 // tensor_bytes))
    shapes = {f"block{i}/kernel": (shape, np.float32) for i in range(count)}
    chunk = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)

    def items():
        for i in range(count):
            chunk.flat[i] = i  # each tensor a little different
            yield f"block{i}/kernel", chunk

    write_safetensors_stream(path, items(), shapes, {"layout": "keras"})
    return count * tensor_bytes, tensor_bytes


def _cpu_of_children() -> float:
    use = resource.getrusage(resource.RUSAGE_CHILDREN)
    return use.ru_utime + use.ru_stime


def _timed(cmd: list[str], cpu: list[float] | None = None) -> tuple[float, int]:
    """Wall seconds and reported peak RSS of ``cmd``; its user + sys seconds appended to ``cpu``."""
    before = _cpu_of_children()
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if cpu is not None:
        cpu.append(_cpu_of_children() - before)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr[-2000:]}")
    lines = proc.stderr.strip().splitlines()
    rss = int(lines[-1]) if lines and lines[-1].isdigit() else 0
    return elapsed, rss


def files_vs_cp(folder: str, gb: float, repeat: int) -> dict:
    import numpy as np

    from xconv.files import write_tensors

    src = os.path.join(folder, "in.safetensors")
    tiny = os.path.join(folder, "tiny.safetensors")
    size, largest = make_file(src, gb)
    write_tensors(tiny, {"a": np.ones((3, 3, 2, 2), np.float32)}, layout="keras")
    with open(src, "rb") as fh:  # warm the page cache
        while fh.read(64 * 2**20):
            pass
    out = lambda name: os.path.join(folder, name)  # noqa: E731
    py = [sys.executable, "-c", CHILD]
    # name -> (command on the large file, output it makes); each has a twin on the tiny file: its start-up
    jobs = {
        "--layout torch": (["--layout", "torch"], "t.safetensors"),
        "--layout keras": (["--layout", "keras"], "k.safetensors"),
        "copy (.safetensors -> .safetensors)": ([], "c.safetensors"),
        "to .pt (torch.save of the mapped file)": ([], "p.pt"),
    }
    times: dict[str, list[float]] = {"cp": []}
    cpu: dict[str, list[float]] = {"cp": []}  # user + sys seconds of each process: less sensitive to load than wall time
    rss: dict[str, int] = {}
    for _ in range(repeat):
        times["cp"].append(_timed(["cp", src, out("cp.safetensors")], cpu["cp"])[0])
        os.unlink(out("cp.safetensors"))
        for name, (extra, made) in jobs.items():
            for tag, path in (("", src), (" tiny", tiny)):
                elapsed, peak = _timed(py + ["convert", path, out(made), *extra, "--quiet", "--force"], cpu.setdefault(name + tag, []))
                times.setdefault(name + tag, []).append(elapsed)
                rss[name + tag] = max(rss.get(name + tag, 0), peak)
                os.unlink(out(made))
    med = {k: statistics.median(v) for k, v in times.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    rows = {}
    for name in jobs:
        net = max(med[name] - med[name + " tiny"], 1e-9)
        rows[name] = {
            "process_s": round(med[name], 3),
            "start_up_s": round(med[name + " tiny"], 3),
            "net_s": round(net, 3),
            "of_cp_throughput": round(med["cp"] / net, 3),
            "cpu_s": round(med_cpu[name], 3),
            "net_cpu_s": round(med_cpu[name] - med_cpu[name + " tiny"], 3),
            "baseline_rss_bytes": rss[name + " tiny"],
            "rss_growth_over_largest_tensor": round((rss[name] - rss[name + " tiny"]) / largest, 2),
        }
    return {
        "file_bytes": size,
        "largest_tensor_bytes": largest,
        "cp_s": round(med["cp"], 3),
        "cp_cpu_s": round(med_cpu["cp"], 3),
        "runs": rows,
        "targets": {"--layout torch of_cp_throughput": ">= 0.5", "rss_growth_over_largest_tensor (streamed)": "< 2"},
    }


def _conv_model_file(path: str, convs: int, channels: int) -> None:
    """A .keras file: ``convs`` 3x3 convs of ``channels`` -> ``channels`` (seeded), in a fresh process."""
    code = (
        "import sys, numpy as np, keras\n"
        "n, c = int(sys.argv[2]), int(sys.argv[3])\n"
        "x = inp = keras.Input((8, 8, c))\n"
        "for i in range(n):\n    x = keras.layers.Conv2D(c, 3, padding='same', name=f'conv{i}')(x)\n"
        "m = keras.Model(inp, x)\nrng = np.random.default_rng(0)\n"
        "[v.assign(rng.standard_normal(tuple(v.shape)).astype('float32')) for v in m.weights]\n"
        "m.save(sys.argv[1])\n"
    )
    subprocess.run([sys.executable, "-c", code, path, str(convs), str(channels)], check=True, capture_output=True)


def arch_conversions(folder: str, mb: float, repeat: int) -> dict:
    """Peak RSS (and time) of the conversions that load a Keras model, over a one-conv twin's."""
    channels = 512
    per_conv = 9 * channels * channels * 4
    convs = max(1, round(mb * 1e6 / per_conv))
    big, tiny = os.path.join(folder, "big.keras"), os.path.join(folder, "tiny.keras")
    _conv_model_file(big, convs, channels)
    _conv_model_file(tiny, 1, 4)
    py = [sys.executable, "-c", CHILD]
    rows: dict[str, dict] = {}
    for label, kind in ((".keras -> .pt", "to_pt"), (".pt -> .weights.h5 --arch", "to_h5")):
        peaks = {"": [], " tiny": []}
        secs = {"": [], " tiny": []}
        for _ in range(repeat):
            for tag, model in (("", big), (" tiny", tiny)):
                pt = model[:-6] + ".pt"
                if kind == "to_pt":
                    cmd = ["convert", model, pt, "--quiet", "--force"]
                else:
                    if not os.path.exists(pt):
                        _timed(py + ["convert", model, pt, "--quiet", "--force"])
                    cmd = ["convert", pt, model[:-6] + ".weights.h5", "--arch", model, "--quiet", "--force"]
                elapsed, peak = _timed(py + cmd)
                peaks[tag].append(peak)
                secs[tag].append(elapsed)
        growth = max(peaks[""]) - max(peaks[" tiny"])
        rows[label] = {
            "process_s": round(statistics.median(secs[""]), 3),
            "start_up_s": round(statistics.median(secs[" tiny"]), 3),
            "baseline_rss_bytes": max(peaks[" tiny"]),
            "rss_growth_bytes": growth,
            "rss_growth_over_file": round(growth / os.path.getsize(big), 2),
            "rss_growth_over_largest_tensor": round(growth / per_conv, 2),
        }
    return {"file_bytes": os.path.getsize(big), "convs": convs, "largest_tensor_bytes": per_conv, "runs": rows}


SHAPES = {
    "1x1 conv 2048->512": ("conv", (1, 1, 2048, 512)),
    "1x1 conv 512->2048": ("conv", (1, 1, 512, 2048)),
    "3x3 conv 512->512": ("conv", (3, 3, 512, 512)),
    "3x3 conv 128->128": ("conv", (3, 3, 128, 128)),
    "7x7 conv 256->256": ("conv", (7, 7, 256, 256)),
    "7x7 stem 3->64": ("conv", (7, 7, 3, 64)),
    "depthwise 3x3 x512": ("depthwise", (3, 3, 512, 1)),
    "depthwise 7x7 x768": ("depthwise", (7, 7, 768, 1)),
    "Conv3D 3x3x3 256->256": ("conv", (3, 3, 3, 256, 256)),
    "Conv3D 3x3x3 64->64": ("conv", (3, 3, 3, 64, 64)),
}


def layout_vs_torch(repeat: int = 15) -> dict:
    import numpy as np
    import torch

    from xconv import layouts

    rng = np.random.default_rng(0)
    out = {}
    for label, (kind, shape) in SHAPES.items():
        k = rng.standard_normal(shape).astype(np.float32)
        rank = len(shape) - 2
        if kind == "conv":
            w = layouts.conv_kernel_to_torch(k)
            tk, tw = torch.from_numpy(k), torch.from_numpy(w)
            pairs = {
                "to_torch": (lambda: layouts.conv_kernel_to_torch(k), lambda: tk.permute(*layouts.kernel_permutation(rank)).contiguous()),
                "to_keras": (lambda: layouts.conv_kernel_to_keras(w), lambda: tw.permute(*layouts.kernel_permutation(rank, "keras")).contiguous()),
            }
        else:
            w = layouts.depthwise_kernel_to_torch(k)
            tk, tw = torch.from_numpy(k), torch.from_numpy(w)
            pairs = {
                "to_torch": (lambda: layouts.depthwise_kernel_to_torch(k), lambda: tk.reshape(*shape[:-2], -1).permute(rank, *range(rank)).unsqueeze(1).contiguous()),
                "to_keras": (lambda: layouts.depthwise_kernel_to_keras(w), lambda: tw[:, 0].permute(*range(1, rank + 1), 0).reshape(shape).contiguous()),
            }
        out[label] = {direction: _against_torch(ours, theirs, repeat, f"{label} {direction}") for direction, (ours, theirs) in pairs.items()}
    return out


def _against_torch(ours, theirs, repeat: int, what: str) -> dict:
    """Round-robin medians of ``ours()`` (NumPy) and ``theirs()`` (torch), after checking they agree bit for bit."""
    assert ours().tobytes() == theirs().numpy().tobytes(), what
    times = {"xconv": [], "torch": []}
    for _ in range(repeat):
        for name, fn in (("xconv", ours), ("torch", theirs)):
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    x, t = statistics.median(times["xconv"]), statistics.median(times["torch"])
    return {"xconv_ms": round(x * 1e3, 4), "torch_ms": round(t * 1e3, 4), "ratio": round(x / t, 2)}


GRID_TAPS = ((1,), (3,), (5,), (3, 3), (5, 5), (3, 3, 3), (7, 7))
GRID_CHANNELS = (3, 16, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768)


def layout_grid(repeat: int = 41, max_mb: float = 6.0) -> dict:
    """The conv kernel transform, both directions, on every float32 kernel of GRID_TAPS windows and
    GRID_CHANNELS inputs (outputs the same or twice as many) up to ``max_mb``: the shapes users bring
    beside the benchmark's ten."""
    import numpy as np
    import torch

    from xconv import layouts

    rng = np.random.default_rng(0)
    rows = {}
    for taps in GRID_TAPS:
        for cin in GRID_CHANNELS:
            for cout in sorted({cin, 2 * cin if cin > 3 else 64}):
                shape = (*taps, cin, cout)
                if np.prod(shape) * 4 > max_mb * 1e6:
                    continue
                k = rng.standard_normal(shape).astype(np.float32)
                w = layouts.conv_kernel_to_torch(k)
                tk, tw, rank = torch.from_numpy(k), torch.from_numpy(w), len(taps)
                label = "x".join(map(str, taps)) + f" {cin}->{cout}"
                rows[label] = {
                    "bytes": k.nbytes,
                    "to_torch": _against_torch(lambda: layouts.conv_kernel_to_torch(k), lambda: tk.permute(*layouts.kernel_permutation(rank)).contiguous(), repeat, label),
                    "to_keras": _against_torch(lambda: layouts.conv_kernel_to_keras(w), lambda: tw.permute(*layouts.kernel_permutation(rank, "keras")).contiguous(), repeat, label),
                }
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gb", type=float, default=1.0)
    parser.add_argument("--dir", default="/tmp", help="where to put the temporary files (needs 3 x --gb free)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--kernel-repeat", type=int, default=15, help="rounds of the in-memory transform per kernel shape")
    parser.add_argument("--skip-files", action="store_true", help="only the in-memory transform (and --arch-mb, unless 0)")
    parser.add_argument("--arch-mb", type=float, default=64, help="size of the Keras model for the conversions with an architecture (0: skip)")
    parser.add_argument("--kernel-grid", action="store_true", help="also the transform on a grid of conv kernels (1 to 49 taps, 3 to 768 channels)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = {"load_average_before": os.getloadavg()}
    if not args.skip_files:
        with tempfile.TemporaryDirectory(dir=args.dir, prefix="xconv-bench-") as tmp:
            result["files"] = files_vs_cp(tmp, args.gb, args.repeat)
    if args.arch_mb > 0:
        from xconv._optional import require
        from xconv.errors import MissingDependencyError

        try:
            require("keras")  # TensorFlow's start-up lines filtered as xconv's own import does
        except MissingDependencyError:
            print("(no Keras here: the conversions with an architecture are skipped)", file=sys.stderr)
        else:
            with tempfile.TemporaryDirectory(dir=args.dir, prefix="xconv-bench-") as tmp:
                result["arch"] = arch_conversions(tmp, args.arch_mb, args.repeat)
    result["layout_transform"] = layout_vs_torch(args.kernel_repeat)
    if args.kernel_grid:
        result["layout_grid"] = layout_grid(max(args.kernel_repeat, 41))
    result["load_average_after"] = os.getloadavg()
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"load average before {result['load_average_before'][0]:.1f}, after {result['load_average_after'][0]:.1f} ({os.cpu_count()} cores)")
    if "files" in result:
        f = result["files"]
        gb = f["file_bytes"] / 2**30
        print(f"{gb:.2f} GiB safetensors, largest tensor {f['largest_tensor_bytes'] / 2**20:.0f} MiB, page cache warm; medians of {args.repeat}")
        print(f"  cp {f['cp_s']:.2f} s ({gb / f['cp_s']:.2f} GiB/s), user+sys {f['cp_cpu_s']:.2f} s")
        for name, r in f["runs"].items():
            print(
                f"  {name:38s} {r['process_s']:6.2f} s - start-up {r['start_up_s']:.2f} s = {r['net_s']:5.2f} s: {r['of_cp_throughput']:.2f} of cp; "
                f"user+sys {r['net_cpu_s']:.2f} s net; "
                f"peak RSS {r['baseline_rss_bytes'] / 2**20:.0f} MiB (tiny file) + {r['rss_growth_over_largest_tensor']:.2f} x largest tensor"
            )
    if "arch" in result:
        a = result["arch"]
        print(
            f"with an architecture (Keras loads the model): {a['file_bytes'] / 2**20:.0f} MiB .keras of {a['convs']} 3x3 512->512 convs, "
            f"largest tensor {a['largest_tensor_bytes'] / 2**20:.1f} MiB; peak RSS over a one-conv model's run, max of {args.repeat}"
        )
        for name, r in a["runs"].items():
            print(
                f"  {name:28s} {r['process_s']:6.2f} s (one-conv {r['start_up_s']:.2f} s); peak RSS {r['baseline_rss_bytes'] / 2**20:.0f} MiB "
                f"+ {r['rss_growth_bytes'] / 2**20:.0f} MiB = {r['rss_growth_over_file']:.2f} x file, {r['rss_growth_over_largest_tensor']:.2f} x largest tensor"
            )
    print("in-memory kernel transform, xconv.layouts vs torch permute().contiguous() (ms, round-robin medians; ratio <= 1 is the target):")
    for label, row in result["layout_transform"].items():
        cells = "   ".join(f"{d} {v['xconv_ms']:8.3f} / {v['torch_ms']:8.3f} = {v['ratio']:.2f}" for d, v in row.items())
        print(f"  {label:24s} {cells}")
    worst = max((v["ratio"], f"{label} {d}") for label, row in result["layout_transform"].items() for d, v in row.items())
    print()
    if "files" in result:
        r = result["files"]["runs"]["--layout torch"]
        print(
            f"RESULT --layout torch: {r['of_cp_throughput']:.2f} of cp's throughput (target >= 0.5); user+sys {r['net_cpu_s']:.2f} s net against cp's "
            f"{result['files']['cp_cpu_s']:.2f} s; peak RSS growth {r['rss_growth_over_largest_tensor']:.2f} x the largest tensor (target < 2)"
        )
    print(f"RESULT in-memory transform: worst ratio to torch {worst[0]:.2f} ({worst[1]}; target <= 1)")
    if "layout_grid" in result:
        cells = sorted((v["ratio"], f"{label} {d} ({r['bytes'] / 1024:.0f} KiB, torch {v['torch_ms'] * 1e3:.1f} us)") for label, r in result["layout_grid"].items() for d, v in r.items() if d != "bytes")
        ratios = [c[0] for c in cells]
        print(
            f"RESULT kernel grid: {len(cells)} transforms ({len(result['layout_grid'])} kernels x 2 directions), ratio to torch median {statistics.median(ratios):.2f}, "
            f"<= 1 in {sum(r <= 1 for r in ratios)}, worst: " + "; ".join(f"{r:.2f} {what}" for r, what in cells[-6:][::-1])
        )
    print(f"(load average {result['load_average_before'][0]:.1f} before, {result['load_average_after'][0]:.1f} after, on {os.cpu_count()} cores: compare on an idle machine)")


if __name__ == "__main__":
    main()
