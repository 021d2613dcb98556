"""TrainingReport: one row per step, quantity and layer; ``ok``, ``first_divergence``, text and JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

__all__ = ["TrainingRow", "Divergence", "TrainingReport"]

# the order in which a step produces its quantities (forward, backward, optimizer)
_ORDER = {"loss": 0, "running_mean": 1, "running_var": 2, "gradient": 3, "clipped_gradient": 4, "weight": 6}


def _rank(quantity: str) -> int:
    return _ORDER.get(quantity, 5)  # optimizer state comes between the gradients and the weights


@dataclass(frozen=True)
class TrainingRow:
    """One comparison: a quantity of one layer after one step, its greatest difference, the
    layer's scale (max |Keras|), what was allowed and whether it passed."""

    step: int  # 0: the weights before training
    quantity: str  # loss, running_mean, running_var, gradient, clipped_gradient, <state key>, weight
    layer: str  # Keras layer ('' for the loss)
    module: str  # torch module
    tensor: str  # the worst tensor of the layer (torch name), e.g. 'weight'
    max_abs: float
    scale: float  # max |keras|
    allowed: float
    ok: bool

    @property
    def max_rel(self) -> float:
        """The greatest difference relative to the layer's scale."""
        return self.max_abs / self.scale if self.scale else (0.0 if self.max_abs == 0 else float("inf"))


@dataclass(frozen=True)
class Divergence:
    """Where two trainings first part: step, Keras layer ('' for the loss), quantity, and the
    torch module and tensor, with the difference and what was allowed."""

    step: int
    layer: str
    quantity: str
    module: str
    tensor: str
    max_abs: float
    allowed: float

    def __str__(self) -> str:
        where = f"layer '{self.layer}' / '{self.module}.{self.tensor}'" if self.layer else "the loss"
        return f"step {self.step}, {where}, {self.quantity}: max |diff| {self.max_abs:.3e} > allowed {self.allowed:.3e}"


@dataclass
class TrainingReport:
    """What :func:`~xconv.training.compare_training` found: the rows, what was compared with
    what (optimizers, losses, notes on the conventions mapped) and with which tolerances."""

    rows: list[TrainingRow]
    steps: int
    dtype: str
    device: str
    tolerances: dict[str, tuple[float, float]]
    keras_optimizer: str
    torch_optimizer: str
    keras_loss: str
    torch_loss: str
    compared: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every comparison passed."""
        return all(r.ok for r in self.rows)

    @property
    def first_divergence(self) -> Divergence | None:
        """The first failing row, by step and then in the order a step produces its quantities
        (loss, BatchNorm statistics, gradients, clipped gradients, optimizer state, weights); None if all pass."""
        bad = [(r.step, _rank(r.quantity), i, r) for i, r in enumerate(self.rows) if not r.ok]
        if not bad:
            return None
        r = min(bad)[3]
        return Divergence(r.step, r.layer, r.quantity, r.module, r.tensor, r.max_abs, r.allowed)

    def worst(self, quantity: str | None = None) -> float:
        """The largest share of its allowance any difference used (of one quantity, or of all): < 1 passes."""
        vals = [r.max_abs / r.allowed if r.allowed else float(r.max_abs > 0) * float("inf") for r in self.rows if quantity is None or r.quantity == quantity]
        return max(vals, default=0.0)

    def table(self, only_failures: bool = False) -> str:
        """One line per row (or per failing row), aligned."""
        head = ("step", "quantity", "layer", "module.tensor", "max abs", "max rel", "allowed", "ok")
        lines = [head]
        for r in self.rows:
            if only_failures and r.ok:
                continue
            lines.append((str(r.step), r.quantity, r.layer or "-", f"{r.module}.{r.tensor}" if r.module else "-",
                          f"{r.max_abs:.3e}", f"{r.max_rel:.3e}", f"{r.allowed:.3e}", "ok" if r.ok else "DIFF"))  # fmt: skip
        widths = [max(len(l[i]) for l in lines) for i in range(len(head))]
        return "\n".join("  ".join(c.ljust(w) for c, w in zip(l, widths)).rstrip() for l in lines)

    def summary(self) -> str:
        """What was compared, with what, under which tolerances, and the notes."""
        lines = [
            f"training comparison: {self.steps} step(s), {self.dtype} on {self.device}",
            f"  keras: {self.keras_optimizer}; loss {self.keras_loss}",
            f"  torch: {self.torch_optimizer}; loss {self.torch_loss}",
            f"  compared after every step: {', '.join(self.compared)}",
            f"  allowed: max|diff| <= atol + rtol*max|keras| with (rtol, atol): "
            + ", ".join(f"{q} ({r:g}, {a:g})" for q, (r, a) in self.tolerances.items()),
        ]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    def verdict(self) -> str:
        """MATCH or DIVERGED, with the first divergence."""
        d = self.first_divergence
        if d is None:
            return f"MATCH: {len(self.rows)} comparisons over {self.steps} step(s) agree (the largest difference used {self.worst():.1%} of its allowance)."
        n = sum(not r.ok for r in self.rows)
        return f"DIVERGED: first at {d}; {n} of {len(self.rows)} comparisons differ."

    def __str__(self) -> str:
        return f"{self.summary()}\n\n{self.table()}\n\n{self.verdict()}"

    def to_dict(self) -> dict:
        """The whole report as plain data (what :meth:`to_json` writes)."""
        d = self.first_divergence
        return {
            "ok": self.ok,
            "first_divergence": None if d is None else asdict(d),
            "steps": self.steps, "dtype": self.dtype, "device": self.device,
            "tolerances": {q: {"rtol": r, "atol": a} for q, (r, a) in self.tolerances.items()},
            "keras_optimizer": self.keras_optimizer, "torch_optimizer": self.torch_optimizer,
            "keras_loss": self.keras_loss, "torch_loss": self.torch_loss,
            "compared": self.compared, "notes": self.notes,
            "rows": [{**asdict(r), "max_rel": r.max_rel} for r in self.rows],
        }  # fmt: skip

    def to_json(self, **kw) -> str:
        """The report as JSON (``json.dumps`` keywords pass through)."""
        return json.dumps(self.to_dict(), **kw)
