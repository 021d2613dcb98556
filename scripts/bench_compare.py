"""How much does compare() cost over running the two models bare?

Measures, in one run and on one machine: a bare Keras forward pass, a bare PyTorch forward
pass, and ``xconv.compare`` (which runs both, captures every layer and measures them), on
unet_encoder with a batch of 4. Reports the overhead ratio compare / (keras + torch) - 1;
the target is at most 25%. Timings are the median of --repeat runs after one warm-up.

    python scripts/bench_compare.py [--model unet_encoder] [--batch 4] [--repeat 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _timing import median_times  # noqa: E402 - scripts/ is on sys.path when run as a script




def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="unet_encoder")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import numpy as np
    import torch

    import xconv
    from xconv import zoo

    k = zoo.build(args.model, "keras", random_biases=True)
    t = zoo.build(args.model, "torch")
    xconv.transfer_weights(k, t)
    x = zoo.sample_input(args.model, args.batch)
    xt = torch.from_numpy(np.ascontiguousarray(np.moveaxis(x, -1, 1)))

    def bare_keras():
        out = k(x, training=False)
        return [o.numpy() for o in (out if isinstance(out, (list, tuple)) else [out])]

    def bare_torch():
        with torch.inference_mode():
            return t(xt)

    def compared():
        return xconv.compare(k, t, x)

    tk, tt, tc = median_times([bare_keras, bare_torch, compared], args.repeat)
    result = {
        "model": args.model,
        "batch": args.batch,
        "repeat": args.repeat,
        "threads": torch.get_num_threads(),
        "keras_s": round(tk, 4),
        "torch_s": round(tt, 4),
        "compare_s": round(tc, 4),
        "overhead": round(tc / (tk + tt) - 1, 4),
        "target_overhead": 0.25,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{args.model}, batch {args.batch}, median of {args.repeat}:")
        print(f"  bare Keras forward    {tk:8.3f} s")
        print(f"  bare PyTorch forward  {tt:8.3f} s")
        print(f"  xconv.compare         {tc:8.3f} s")
        print(f"  overhead: compare / (Keras + PyTorch) - 1 = {result['overhead']:+.1%} (target <= +25%)")


if __name__ == "__main__":
    main()
