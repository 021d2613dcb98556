"""What does compare_training cost over the two frameworks' own training steps?

Measures, in one run and on one machine: 3 Keras training steps (GradientTape, the loss,
``optimizer.apply``), 3 PyTorch training steps (``backward``, ``optimizer.step``), and
``xconv.compare_training`` for the same 3 steps (which copies both models, moves the weights,
trains both and compares the loss, every gradient, the optimizer state and the weights after
each step), on unet_encoder with a batch of 2, MSE and Adam. Reports
compare_training / (keras + torch); the target is at most 1.5. Timings are the median of
--repeat runs after one warm-up, run round-robin.

    python scripts/bench_training.py [--input-shape 200,200,1] [--batch 2] [--repeat 3] [--json]
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
    parser.add_argument("--input-shape", help="build the zoo model for this input (default: the spec's)")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import keras
    import numpy as np
    import tensorflow as tf
    import torch

    import xconv
    from xconv import zoo

    shape = tuple(int(s) for s in args.input_shape.split(",")) if args.input_shape else None
    k = zoo.build(args.model, "keras", random_biases=True, input_shape=shape)
    t = zoo.build(args.model, "torch", input_shape=shape)
    xconv.transfer_weights(k, t)
    rng = np.random.default_rng(0)
    x = rng.random((args.batch, *k.inputs[0].shape[1:])).astype("float32")
    ys = [rng.random((args.batch, *o.shape[1:])).astype("float32") for o in k.outputs]
    xt = torch.from_numpy(np.ascontiguousarray(np.moveaxis(x, -1, 1)))
    yts = [torch.from_numpy(np.ascontiguousarray(np.moveaxis(y, -1, 1))) for y in ys]
    start_k, start_t = k.get_weights(), {n: v.clone() for n, v in t.state_dict().items()}

    def keras_steps():
        k.set_weights(start_k)
        opt, loss = keras.optimizers.Adam(), keras.losses.MeanSquaredError()
        for _ in range(args.steps):
            with tf.GradientTape() as tape:
                outs = k(x, training=True)
                value = sum(loss(y, o) for y, o in zip(ys, outs))
            grads = tape.gradient(value, k.trainable_variables)
            opt.apply(grads, k.trainable_variables)
        return float(value)

    def torch_steps():
        t.load_state_dict(start_t)
        t.train()
        opt = torch.optim.Adam(t.parameters())
        for _ in range(args.steps):
            opt.zero_grad()
            value = sum(torch.nn.functional.mse_loss(o, y) for o, y in zip(t(xt), yts))
            value.backward()
            opt.step()
        return float(value.detach())

    def compared():
        k.set_weights(start_k)
        return xconv.compare_training(k, t, x, ys, loss="mse", optimizer="adam", steps=args.steps)

    tk, tt, tc = median_times([keras_steps, torch_steps, compared], args.repeat)
    report = compared()
    result = {
        "model": args.model,
        "input_shape": list(k.inputs[0].shape[1:]),
        "batch": args.batch,
        "steps": args.steps,
        "repeat": args.repeat,
        "keras_s": round(tk, 3),
        "torch_s": round(tt, 3),
        "compare_training_s": round(tc, 3),
        "ratio": round(tc / (tk + tt), 3),
        "target": 1.5,
        "ok": report.ok,
        "comparisons": len(report.rows),
        "when": time.strftime("%Y-%m-%d"),
    }
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>20}: {value}")


if __name__ == "__main__":
    main()
