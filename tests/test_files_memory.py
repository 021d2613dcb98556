"""Peak memory of non-streamed conversions, measured in child processes (VmHWM), as scripts/bench_convert.py does.

A conversion into a Keras file needs the whole Keras model in memory (the Keras loader and
writer hold it), so the 2x-largest-tensor rule of the streamed paths cannot hold there; what
xconv adds on top of loading the architecture is bounded here instead.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytest.importorskip("keras")

HWM = "print(int(__import__('re').search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)) * 1024, file=sys.stderr)\n"
CONVERT = "import sys\nfrom xconv.cli.main import main\ncode = main(sys.argv[1:])\n" + HWM + "sys.exit(code)\n"
LOAD = "import sys\nfrom xconv.files import load_keras_model\nm = load_keras_model(sys.argv[1])\n" + HWM


def _peak(code: str, *args: str) -> int:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return int(proc.stderr.strip().splitlines()[-1])


@pytest.mark.slow
def test_arch_into_keras_weights_adds_little_to_the_loaded_architecture(tmp_path):
    from xconv.convert import convert_file
    from xconv.frameworks.keras_side import keras

    k = keras()
    inp = k.Input((4, 4, 512))
    x = inp
    for i in range(8):  # 8 kernels of 9 MiB: the file is 8x the largest tensor
        x = k.layers.Conv2D(512, 3, padding="same", name=f"conv{i}")(x)
    arch = str(tmp_path / "arch.keras")
    k.Model(inp, x).save(arch)
    src = str(tmp_path / "in.safetensors")
    convert_file(arch, src)
    size, largest = os.path.getsize(src), 3 * 3 * 512 * 512 * 4
    model_only = _peak(LOAD, arch)  # the interpreter, Keras and the architecture: the floor
    converted = _peak(CONVERT, "convert", src, str(tmp_path / "out.weights.h5"), "--arch", arch, "--quiet")
    extra = converted - model_only
    # before the plans (float64 index per element, every tensor read at once) this was ~5.8x the file
    assert extra < 2 * size, f"{extra / 2**20:.0f} MiB over the loaded architecture ({extra / largest:.1f} x the largest tensor, {extra / size:.2f} x the file)"
