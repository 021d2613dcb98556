"""``xconv layers``: what xconv translates and converts, read from the registries."""

from __future__ import annotations


def add_arguments(p) -> None:
    """Declare the arguments of ``xconv layers`` on the subparser ``p``."""
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--markdown", action="store_true", help="print the docs' support table (docs/layers.md)")
    p.add_argument("--torch", action="store_true", help="with --json: the PyTorch ops torch_to_keras converts")


def table() -> list[dict]:
    """One row per Keras layer type: ``family``, the file of its converter
    (``xconv/translate/layers/<family>.py``); ``weight_family``, the map in ``xconv/weights/`` that
    moves its weights (None for a layer without weights); ``weights_to``, the torch types
    ``transfer_weights`` moves them into."""
    from ..weights import family_for_keras
    from ..translate import supported_layers
    from ..errors import UnsupportedLayerError

    rows = []
    for keras_type, family in supported_layers().items():
        try:
            weights = family_for_keras(keras_type)
            torch_types, weight_family = ", ".join(weights.torch_types) or "Conv (groups)", weights.name
        except UnsupportedLayerError:
            torch_types, weight_family = "", None
        rows.append({"keras": keras_type, "family": family, "weight_family": weight_family, "weights_to": torch_types})
    return rows


def ops_table() -> list[str]:
    """The Keras operations (``keras.ops`` classes, and operators on KerasTensors) keras_to_torch converts."""
    from ..translate import supported_operations

    return supported_operations()


def torch_table() -> list[dict]:
    """One row per PyTorch op (or whole module) torch_to_keras converts: ``family``, the file of its
    converter (``xconv/translate/torch_to_keras/<family>.py``), and what it becomes."""
    from ..translate.torch_to_keras.converters import supported

    return [{"torch": key, "family": c.family, "keras": c.note} for key, c in supported().items()]


def markdown() -> str:
    """docs/layers.md: the support table of both directions, generated from the converter registries."""
    rows = table()
    out = [
        "# Supported Keras layers",
        "",
        "Generated from the registries by `xconv layers --markdown` (a test keeps this file current).",
        "`keras_to_torch` translates every layer below. *Converter* is the file that translates it",
        "(`xconv/translate/layers/<converter>.py`); *weight family* the one map of its weights",
        "(`xconv/weights/`), which both translations, `transfer_weights`, `convert` and `inspect`",
        "use; the last column lists the PyTorch types that `transfer_weights` moves the layer's",
        "weights into between hand-written twins.",
        "",
        "| Keras layer | converter | weight family | transfer_weights to |",
        "|---|---|---|---|",
    ]
    out += [f"| {r['keras']} | {r['family']} | {r['weight_family'] or ''} | {r['weights_to']} |" for r in rows]
    out += [
        "",
        "# Supported Keras operations",
        "",
        "Operations on KerasTensors in a functional graph (`x + 3.0`, `keras.ops.mean(x, axis=...)`) and",
        "inside traced custom layers; each is written inline in the module's `forward`. Another",
        "operation raises `UnsupportedLayerError` naming it and its node.",
        "",
        ", ".join(f"`{name}`" for name in ops_table()),
        "",
        "# Supported PyTorch ops",
        "",
        "`torch_to_keras` exports the module with `torch.export`, lowers it to core ATen operators but",
        "keeps whole every op listed here, and converts each op with the converter registered for it",
        "(`module:` rows are modules converted as one Keras layer; *converter* is its file,",
        "`xconv/translate/torch_to_keras/<converter>.py`). An op missing here raises",
        "`UnsupportedLayerError` naming the op, the module path and the source line.",
        "",
        "| PyTorch op | converter | Keras |",
        "|---|---|---|",
    ]
    out += [f"| `{r['torch']}` | {r['family']} | {r['keras']} |" for r in torch_table()]
    return "\n".join(out) + "\n"


def run(args) -> int:
    """``xconv layers`` with the parsed ``args``: print the supported layers; always 0."""
    import json

    if args.markdown:
        print(markdown(), end="")
        return 0
    rows = table()
    if args.json:
        print(json.dumps(torch_table() if args.torch else rows, indent=2))
        return 0
    w = max(len(r["keras"]) for r in rows)
    f = max(len(r["family"]) for r in rows)
    for r in rows:
        print(f"{r['keras']:<{w}}  {r['family']:<{f}}  {r['weights_to']}")
    print(f"{len(rows)} Keras layer types (keras_to_torch).")
    ops = torch_table()
    w = max(len(r["torch"]) for r in ops)
    f = max(len(r["family"]) for r in ops)
    for r in ops:
        print(f"{r['torch']:<{w}}  {r['family']:<{f}}  {r['keras']}")
    print(f"{len(ops)} PyTorch ops and modules (torch_to_keras).")
    return 0
