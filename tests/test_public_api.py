"""The public API: every exported function and class says what it does (issue 16)."""

from __future__ import annotations

import importlib
import inspect

import pytest

import xconv

# the modules a user imports from, and what each exports (their __all__)
PUBLIC = [
    "xconv", "xconv.errors", "xconv.layouts", "xconv.padding", "xconv.zoo", "xconv.transfer", "xconv.comparison",
    "xconv.describe", "xconv.translate", "xconv.linting", "xconv.onnx", "xconv.repro", "xconv.testing", "xconv.viz",
    "xconv.weights", "xconv.convert", "xconv.capture",
]  # fmt: skip


# named in issue 16, used by whoever extends xconv, in modules without an __all__
EXTENSION_POINTS = [("xconv.translate.graph", "walk"), ("xconv.translate.converters", "Converter"), ("xconv.translate.converters", "converter")]


def _exported():
    seen = {}
    for module, attr in EXTENSION_POINTS:
        obj = getattr(importlib.import_module(module), attr)
        seen[f"{module}.{attr}"] = obj
    for name in PUBLIC:
        module = importlib.import_module(name)
        for attr in getattr(module, "__all__", ()):
            obj = getattr(module, attr)
            if (inspect.isclass(obj) or inspect.isfunction(obj)) and getattr(obj, "__module__", "").startswith("xconv"):
                seen.setdefault(f"{obj.__module__}.{obj.__qualname__}", obj)
    return seen


def _missing(obj) -> list[str]:
    doc = inspect.getdoc(obj) or ""
    auto = inspect.isclass(obj) and doc.startswith(f"{obj.__name__}(")  # what @dataclass writes when there is none
    out = [obj.__qualname__] if not doc or auto else []
    if inspect.isclass(obj) and not issubclass(obj, BaseException):
        for name, member in vars(obj).items():
            if name.startswith("_"):
                continue
            target = member.fget if isinstance(member, property) else getattr(member, "__func__", member)
            if inspect.isfunction(target) and not (target.__doc__ or "").strip():
                out.append(f"{obj.__qualname__}.{name}")
    return out


def test_every_exported_function_and_class_has_a_docstring():
    missing = [m for obj in _exported().values() for m in _missing(obj)]
    assert missing == []


@pytest.mark.parametrize("name, module", [("LayerDiff", "xconv.comparison"), ("TransferEntry", "xconv.transfer")])
def test_report_rows_and_manifest_entries_are_exported(name, module):
    assert name in xconv.__all__
    assert getattr(xconv, name) is getattr(importlib.import_module(module), name)
