"""Translation benchmarks, all in one run on one machine.

1. Forward time of keras_to_torch(unet_encoder) against the hand-written zoo twin (target:
   within 5%), batch 4, run round-robin, medians.
2. Time to translate unet_encoder with xconv against the tf2onnx + onnx2torch route (target:
   under a tenth). The peer is timed when installed; where onnx2torch is missing (it needs
   torchvision) the tf2onnx half alone is timed, a lower bound of the route.
3. PyTorch -> Keras: torch_to_keras(unet_encoder's torch twin) the first time in a fresh process
   (torch.export's warm-up included; imports are not), warm (median of 3), and the translated
   Keras model's forward time against the hand-written Keras twin's (target: within 5%).

    python scripts/bench_translate.py [--batch 4] [--repeat 7] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _timing import median_times  # noqa: E402 - scripts/ is on sys.path when run as a script




def peer_route(model) -> tuple[float | None, str]:
    """Seconds for tf2onnx (+ onnx2torch when importable) on ``model``, and what was timed."""
    try:
        import tensorflow as tf
        import tf2onnx
    except ImportError:
        return None, "tf2onnx not installed"
    spec = [tf.TensorSpec((None, *model.inputs[0].shape[1:]), tf.float32, name="input")]
    start = time.perf_counter()
    proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=17)
    tf2onnx_s = time.perf_counter() - start
    try:
        from onnx2torch import convert
    except Exception:  # noqa: BLE001 - onnx2torch needs torchvision, which may not import
        return tf2onnx_s, "tf2onnx only (onnx2torch not importable): a lower bound of the route"
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "m.onnx")
        with open(path, "wb") as fh:
            fh.write(proto.SerializeToString())
        start = time.perf_counter()
        convert(path)
    return tf2onnx_s + time.perf_counter() - start, "tf2onnx + onnx2torch"


_FIRST = """
import os, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import torch, keras, xconv
from xconv import zoo
from xconv.translate.torch_to_keras import torch_to_keras
twin = zoo.build("unet_encoder", "torch", random_biases=True)
start = time.perf_counter()
torch_to_keras(twin, (1, 200, 200))
print(time.perf_counter() - start)
"""


def first_translation_s() -> float:
    """torch_to_keras once in a fresh interpreter: what a user's first call costs."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", _FIRST], capture_output=True, text=True, check=True)
    return float(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import torch

    import xconv
    from xconv import zoo

    keras_model = zoo.build("unet_encoder", "keras", random_biases=True)
    twin = zoo.build("unet_encoder", "torch")
    xconv.transfer_weights(keras_model, twin)
    start = time.perf_counter()
    translated = xconv.keras_to_torch(keras_model)
    translate_s = time.perf_counter() - start
    translate_s = min(translate_s, *median_times([lambda: xconv.keras_to_torch(keras_model)], 3))
    x = torch.from_numpy(zoo.sample_input("unet_encoder", args.batch, layout="torch"))

    def run(module):
        def fn():
            with torch.inference_mode():
                module(x)

        return fn

    t_twin, t_translated = median_times([run(twin), run(translated)], args.repeat)
    peer_s, peer_what = peer_route(keras_model)

    # the reverse direction: the zoo's PyTorch twin translated to Keras, against the hand-written Keras twin
    first_s = first_translation_s()
    back = xconv.torch_to_keras(twin, (1, 200, 200))
    reverse_s = min(median_times([lambda: xconv.torch_to_keras(twin, (1, 200, 200))], 3))
    xk = zoo.sample_input("unet_encoder", args.batch)

    def keras_run(model):
        def fn():
            [o.numpy() for o in model(xk, training=False)]

        return fn

    t_keras_twin, t_keras_back = median_times([keras_run(keras_model), keras_run(back)], args.repeat)
    result = {
        "batch": args.batch,
        "threads": torch.get_num_threads(),
        "twin_forward_s": round(t_twin, 4),
        "translated_forward_s": round(t_translated, 4),
        "forward_ratio": round(t_translated / t_twin, 4),
        "translate_s": round(translate_s, 4),
        "peer_s": None if peer_s is None else round(peer_s, 4),
        "peer": peer_what,
        "translate_over_peer": None if peer_s is None else round(translate_s / peer_s, 4),
        "torch_to_keras_first_s": round(first_s, 4),
        "torch_to_keras_s": round(reverse_s, 4),
        "keras_twin_forward_s": round(t_keras_twin, 4),
        "keras_translated_forward_s": round(t_keras_back, 4),
        "keras_forward_ratio": round(t_keras_back / t_keras_twin, 4),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"unet_encoder forward, batch {args.batch}, median of {args.repeat}:")
    print(f"  hand-written zoo twin   {t_twin:7.3f} s")
    print(f"  keras_to_torch result   {t_translated:7.3f} s   ratio {result['forward_ratio']:.3f} (target <= 1.05)")
    print("translating unet_encoder:")
    print(f"  xconv.keras_to_torch    {translate_s:7.3f} s")
    if peer_s is None:
        print(f"  peer route              skipped ({peer_what})")
    else:
        print(f"  {peer_what}: {peer_s:.3f} s   xconv / peer = {result['translate_over_peer']:.3f} (target < 0.1)")
    print("the reverse direction:")
    print(f"  xconv.torch_to_keras    {first_s:7.3f} s   first call in a fresh process (export warm-up included)")
    print(f"  xconv.torch_to_keras    {reverse_s:7.3f} s   warm")
    print(f"  hand-written Keras twin {t_keras_twin:7.3f} s forward")
    print(f"  torch_to_keras result   {t_keras_back:7.3f} s forward   ratio {result['keras_forward_ratio']:.3f} (target <= 1.05)")


if __name__ == "__main__":
    main()
