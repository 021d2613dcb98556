"""The result of a comparison: one row per layer, a verdict, a table and JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class LayerDiff:
    """How one layer's activations differ (shape and index in channels-first layout)."""

    name: str
    type: str
    shape: tuple[int, ...]
    max_abs: float
    max_rel: float  # max_abs / max |reference|
    where: tuple[int, ...]  # index of the greatest absolute difference
    atol: float
    rtol: float
    ok: bool
    note: str = ""  # why a layer could not be measured (e.g. the shapes differ)
    scale: float = 0.0  # max |reference|: the layer passes when max_abs <= atol + rtol * scale
    # local mode: the layer run on the reference's own input to it (its own error, not inherited)
    local_max_abs: float | None = None
    local_max_rel: float | None = None
    local_ok: bool | None = None
    # onnx=True: ONNX Runtime on each framework's own export, against that framework
    onnx_keras_rel: float | None = None
    onnx_torch_rel: float | None = None

    @property
    def allowed(self) -> float:
        """The greatest absolute difference this layer may have: ``atol + rtol * scale``."""
        return self.atol + self.rtol * self.scale


@dataclass
class Report:
    """What ``compare`` found: one :class:`LayerDiff` per aligned layer, the setting it ran in,
    and what could not be aligned (``skipped``); ``str(report)`` is the table and the verdict."""

    a: str  # framework of the reference side
    b: str
    device: str
    dtype: str
    tf32: bool
    layers: list[LayerDiff] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (layer, why it is not aligned)
    capture: str = "graph"  # how the PyTorch side was captured: 'graph' (torch.export) or 'hooks'
    notes: list[str] = field(default_factory=list)  # said with the verdict (training mode, hook fallback)

    def repro(self, path, layer: str | None = None) -> str:
        """Write a minimal reproduction of ``layer`` (default: where error starts, else the first
        divergence), any layer of this report (see :mod:`xconv.repro`)."""
        from ..repro import write_repro

        return write_repro(self, path, layer)

    @property
    def ok(self) -> bool:
        """Every compared layer is within tolerance."""
        return all(row.ok for row in self.layers)

    @property
    def first_divergence(self) -> str | None:
        """The first layer, in graph order, beyond tolerance (None when all match)."""
        return next((row.name for row in self.layers if not row.ok), None)

    @property
    def first_local_divergence(self) -> str | None:
        """The first layer whose *own* error breaks tolerance (local mode), where error starts."""
        return next((row.name for row in self.layers if row.local_ok is False), None)

    @property
    def local(self) -> bool:
        """The report has local-mode columns (``compare(..., mode="local")``)."""
        return any(row.local_ok is not None for row in self.layers)

    def __getitem__(self, name: str) -> LayerDiff:
        for row in self.layers:
            if row.name == name:
                return row
        raise KeyError(f"no layer {name!r} in this report; layers: {[r.name for r in self.layers]}")

    def to_dict(self) -> dict:
        """The report as plain data (what ``to_json`` writes)."""
        return {
            "ok": self.ok,
            "a": self.a,
            "b": self.b,
            "device": self.device,
            "dtype": self.dtype,
            "tf32": self.tf32,
            "first_divergence": self.first_divergence,
            "first_local_divergence": self.first_local_divergence,
            "capture": self.capture,
            "notes": list(self.notes),
            "layers": [{**asdict(r), "shape": list(r.shape), "where": list(r.where)} for r in self.layers],
            "skipped": [{"name": n, "why": w} for n, w in self.skipped],
        }

    def to_json(self, **kw) -> str:
        """``to_dict()`` as JSON; keywords go to ``json.dumps`` (``indent=2``)."""
        return json.dumps(self.to_dict(), **kw)

    def verdict(self) -> str:
        """One paragraph: MATCH or MISMATCH, the setting, the first divergence, the notes."""
        return " ".join([self._verdict(), *self.notes, *([f"{len(self.skipped)} layer(s) not aligned (listed above)."] if self.skipped else [])])

    def _verdict(self) -> str:
        n = len(self.layers)
        setting = f"{self.dtype} on {self.device}, TF32 {'on' if self.tf32 else 'off'}"
        if self.ok:
            worst = max(self.layers, key=lambda r: r.max_rel, default=None)
            tail = f"; greatest relative difference {worst.max_rel:.2e} at '{worst.name}'" if worst else ""
            return f"MATCH: all {n} layers of {self.a} and {self.b} agree within tolerance ({setting}){tail}."
        bad = sum(not r.ok for r in self.layers)
        text = f"MISMATCH: {bad} of {n} layers differ beyond tolerance ({setting}); first divergence at '{self.first_divergence}'."
        if self.local:
            start = self.first_local_divergence
            text += (
                f" Local errors: the error starts at '{start}'." if start
                else " Local errors: every layer is right on its own inputs; the differences come from the inputs."
            )
        return text

    def table(self) -> str:
        """One row per layer: shape, greatest differences, what was allowed, where, ok."""
        head = ("layer", "type", "shape (N,C,...)", "max abs", "allowed abs", "max rel", "at", "ok")
        rows = [
            (
                r.name, r.type, "x".join(map(str, r.shape)), f"{r.max_abs:.3e}", f"{r.allowed:.3e}", f"{r.max_rel:.3e}",
                str(tuple(r.where)), "ok" if r.ok else "FAIL",
            )
            for r in self.layers
        ]  # fmt: skip
        if any(r.onnx_keras_rel is not None or r.onnx_torch_rel is not None for r in self.layers):
            fmt = lambda v: "-" if v is None else f"{v:.1e}"  # noqa: E731
            head = (*head, "onnx~keras", "onnx~torch")
            rows = [(*row, fmt(r.onnx_keras_rel), fmt(r.onnx_torch_rel)) for row, r in zip(rows, self.layers)]
        if self.local:
            head = (*head, "local rel", "local ok")
            rows = [
                (*row, "-" if r.local_max_rel is None else f"{r.local_max_rel:.3e}", "-" if r.local_ok is None else ("ok" if r.local_ok else "FAIL"))
                for row, r in zip(rows, self.layers)
            ]
        widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(head)]
        line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
        out = [line(head), line(["-" * w for w in widths]), *map(line, rows)]
        for r in self.layers:
            if r.note:
                out.append(f"({r.name}: {r.note})")
        for name, why in self.skipped:
            out.append(f"(not aligned: {name}: {why})")
        return "\n".join(out)

    def __str__(self) -> str:
        return f"{self.table()}\n{self.verdict()}"
