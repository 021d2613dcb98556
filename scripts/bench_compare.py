"""How much does compare() cost over running the two models bare?

Measures, in one run and on one machine: a bare Keras forward pass, a bare PyTorch forward
pass, and ``xconv.compare`` (which runs both, the PyTorch side as its exported graph node by
node, captures every layer and measures them), on unet_encoder with a batch of 4. Reports the
ratio compare / (keras + torch); the target is at most 1.25. Timings are the median of --repeat
runs after one warm-up; --rounds further rounds then give one ratio each (on a loaded
machine, their spread says how far one figure can be trusted). ``torch.export`` runs once per
module structure (later calls reuse the graph with the module's current weights): its one-off
cost is timed apart, as ``export_s``. Where compare's time goes is timed part by part, each
alone in the same round-robin: the Keras sub-model with every layer's output kept, the PyTorch
graph with every layer's value kept, and the measuring of every layer; the rest (alignment,
report) is what compare costs beyond those.

    python scripts/bench_compare.py [--model unet_encoder] [--batch 4] [--repeat 7] [--rounds 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import statistics  # noqa: E402

from _timing import median_times  # noqa: E402 - scripts/ is on sys.path when run as a script


def round_ratios(bare_keras, bare_torch, compared, rounds: int) -> list[float]:
    """compare / (Keras + PyTorch), one figure per round of three back-to-back calls: on a loaded
    machine the load drifts between rounds more than within one, so each round is its own ratio."""
    out = []
    for _ in range(rounds):
        spent = []
        for fn in (bare_keras, bare_torch, compared):
            start = time.perf_counter()
            fn()
            spent.append(time.perf_counter() - start)
        out.append(spent[2] / (spent[0] + spent[1]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="unet_encoder")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=5, help="extra rounds, each giving its own ratio")
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

    from xconv.comparison import core
    from xconv.frameworks import keras_side as ks
    from xconv.frameworks import torch_side as ts

    ts._GRAPHS.clear()
    start = time.perf_counter()
    ts.export_graph(t, [xt])  # the one-off export compare() pays on its first call for this structure
    export_s = time.perf_counter() - start
    graph = ts.export_graph(t, [xt])
    ends = {n.name for n in graph.nodes if n.op in ("aten::relu", "aten::max_pool2d")}  # every layer's value
    state = ts.module_state(t)
    captured = core.capture_pair(k, t, x)  # the aligned values compare measures

    def keras_capture():
        return ks.capture(k, [x], calls=True, read_only=True)

    def torch_graph():
        return graph.run([xt], keep=ends, state=state)

    def measuring():
        scratch = core._Scratch()
        return [core._measure(a.name, a.type, a.keras, a.torch, 1e-4, 1e-6, scratch) for a in captured.layers if a.torch is not None]

    fns = [bare_keras, bare_torch, compared, keras_capture, torch_graph, measuring]
    tk, tt, tc, tkc, tg, tm = median_times(fns, args.repeat)
    per_round = round_ratios(bare_keras, bare_torch, compared, args.rounds) if args.rounds > 0 else []
    ratio = tc / (tk + tt)
    result = {
        "model": args.model,
        "batch": args.batch,
        "repeat": args.repeat,
        "threads": torch.get_num_threads(),
        "load_average": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
        "keras_s": round(tk, 4),
        "torch_s": round(tt, 4),
        "compare_s": round(tc, 4),
        "ratio": round(ratio, 4),
        "target_ratio": 1.25,
        "target_met": ratio <= 1.25,
        "round_ratios": [round(r, 4) for r in per_round],
        "round_ratio_median": round(statistics.median(per_round), 4) if per_round else None,
        "parts": {  # each timed alone: compare ~ keras_capture_s + torch_graph_s + measuring_s + rest_s
            "keras_capture_s": round(tkc, 4),
            "torch_graph_s": round(tg, 4),
            "measuring_s": round(tm, 4),
            "rest_s": round(tc - tkc - tg - tm, 4),
            "layers_measured": sum(a.torch is not None for a in captured.layers),
        },
        "export_s": round(export_s, 4),
        "torch_graph_s": round(tg, 4),
        "capture": captured.capture,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    parts = result["parts"]
    print(f"{args.model}, batch {args.batch}, median of {args.repeat} (load average {result['load_average']} on {result['cpus']} CPUs):")
    print(f"  bare Keras forward                        {tk:7.3f} s")
    print(f"  bare PyTorch forward                      {tt:7.3f} s")
    print(f"  xconv.compare                             {tc:7.3f} s")
    print(f"  RATIO compare / (Keras + PyTorch)         {ratio:7.3f}    target <= 1.25: {'met' if result['target_met'] else 'NOT met'}")
    if per_round:
        print(f"  ratio in each of {len(per_round)} further rounds: {', '.join(f'{r:.3f}' for r in per_round)} (median {result['round_ratio_median']:.3f})")
    print("  where compare's time goes (each part timed alone):")
    print(f"    Keras sub-model, every layer kept       {tkc:7.3f} s  ({tkc / tk:.2f} x the bare Keras forward)")
    print(f"    PyTorch graph, every layer kept         {tg:7.3f} s  ({tg / tt:.2f} x the bare PyTorch forward; captured by {result['capture']})")
    print(f"    measuring {parts['layers_measured']:2d} layers                      {tm:7.3f} s")
    print(f"    the rest (alignment, copies, report)    {parts['rest_s']:7.3f} s")
    print(f"  one-off torch.export of the module (first compare of this structure) {export_s:.3f} s")


if __name__ == "__main__":
    main()
