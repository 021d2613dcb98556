"""pytest plugin, registered as ``xconv`` (entry point ``pytest11``) when xconv is installed.

- ``--xconv-update-snapshots``: ``xconv.testing.assert_snapshot`` re-records instead of checking.
- fixture ``xconv_device``: runs a test on "cpu", and on "cuda" where a GPU is present.
- fixture ``xconv_numerics``: TF32 off and deterministic algorithms for the test, restored after.
- markers ``xconv_needs_tf`` and ``xconv_needs_cuda``: skip with the reason where TensorFlow or a
  GPU is missing (TensorFlow is looked for, never imported, to decide).

Under pytest-xdist (``-n 2``) every worker reads the flag from its own configuration; snapshots are
written to a temporary file of their own and renamed into place, and read as one version of the
file, so workers that record and check the same snapshot at once never see half of one.
"""

from __future__ import annotations

import importlib.util

import pytest


def pytest_addoption(parser):
    """``--xconv-update-snapshots``."""
    group = parser.getgroup("xconv")
    group.addoption("--xconv-update-snapshots", action="store_true", default=False, help="re-record xconv activation snapshots instead of checking them")


def pytest_configure(config):
    """The markers, and the update flag: set in every process, so each pytest-xdist worker has it."""
    config.addinivalue_line("markers", "xconv_needs_tf: the test needs TensorFlow/Keras (skipped without it)")
    config.addinivalue_line("markers", "xconv_needs_cuda: the test needs a CUDA GPU (skipped without one)")
    if config.getoption("xconv_update_snapshots", default=False):
        from . import _UPDATE

        _UPDATE["on"] = True


def pytest_unconfigure(config):
    """The update flag off again (pytester runs several sessions in one process)."""
    from . import _UPDATE

    _UPDATE["on"] = False


def _has_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def pytest_runtest_setup(item):
    """Skip, with the reason, a test marked for TensorFlow or a GPU where it is missing."""
    if item.get_closest_marker("xconv_needs_tf") and importlib.util.find_spec("tensorflow") is None:
        pytest.skip('needs TensorFlow (pip install "xconv[tf]")')
    if item.get_closest_marker("xconv_needs_cuda") and not _has_cuda():
        pytest.skip("needs a CUDA GPU")


@pytest.fixture(params=["cpu", "cuda"])
def xconv_device(request):
    """The device to run on: 'cpu', and 'cuda' where a GPU is present (skipped otherwise)."""
    if request.param == "cuda" and not _has_cuda():
        pytest.skip("needs a CUDA GPU")
    return request.param


@pytest.fixture
def xconv_numerics():
    """TF32 off, deterministic algorithms on; the previous settings come back after the test."""
    import torch

    from ..frameworks.torch_side import numerics

    saved = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        with numerics(allow_tf32=False, deterministic=True) as settings:
            yield settings
    finally:
        torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
