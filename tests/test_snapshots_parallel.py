"""The pytest plugin under pytest-xdist: snapshots recorded and checked by two workers at once."""

from __future__ import annotations

import pytest

pytest.importorskip("xdist")
pytest_plugins = ["pytester"]

# Two workers meet at a barrier, then each records and checks one snapshot in a loop (both write
# it and read it at the same time), then checks (or, under the flag, records) one of its own.
USER_TEST = r'''
import os, pathlib, time

import numpy as np
import pytest
import torch

from xconv.testing import _UPDATE, assert_snapshot, check_snapshot, record_snapshot

SNAPSHOTS = pathlib.Path(os.environ["SNAPSHOTS"])
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")


def model(scale=1.0):
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 3), torch.nn.ReLU(), torch.nn.Conv2d(3, 2, 3)).eval()
    with torch.no_grad():
        m[2].weight *= scale
    return m


X = np.random.default_rng(0).random((1, 1, 12, 12)).astype(np.float32)


def barrier(name, parties=2, timeout=60):
    (SNAPSHOTS / f"{name}.{WORKER}").touch()
    end = time.monotonic() + timeout
    while len(list(SNAPSHOTS.glob(f"{name}.*"))) < parties:
        assert time.monotonic() < end, "the other worker never came"
        time.sleep(0.01)


@pytest.mark.parametrize("n", [0, 1])  # two items: xdist gives one to each worker
def test_record_and_check_together(n):
    (SNAPSHOTS / f"update.{WORKER}").write_text(str(_UPDATE["on"]))
    barrier("start")
    for _ in range(25):
        record_snapshot(model(), X, SNAPSHOTS / "shared.safetensors")
        assert check_snapshot(model(), X, SNAPSHOTS / "shared.safetensors").ok
    # re-recorded under --xconv-update-snapshots, checked otherwise
    assert_snapshot(model(float(os.environ["SCALE"])), X, SNAPSHOTS / "nested" / WORKER / "own.safetensors")
'''


def _run(pytester, snapshots, *args, scale=1.0):
    pytester.makepyfile(test_parallel=USER_TEST)
    for marker in snapshots.glob("start.*"):
        marker.unlink()
    env = {"SNAPSHOTS": str(snapshots), "SCALE": str(scale)}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        return pytester.runpytest_subprocess("-n", "2", "-p", "xdist", "-p", "no:cacheprovider", *args)


@pytest.mark.slow
def test_snapshots_record_and_check_in_two_workers_without_clashes(pytester):
    from xconv.testing import snapshot_info

    snapshots = pytester.path / "snapshots"
    snapshots.mkdir()

    recorded = _run(pytester, snapshots, "--xconv-update-snapshots", scale=2.0)
    recorded.assert_outcomes(passed=2)
    flags = {p.name: p.read_text() for p in snapshots.glob("update.*")}
    assert sorted(flags) == ["update.gw0", "update.gw1"], flags  # both workers ran a test...
    assert set(flags.values()) == {"True"}, flags  # ...and each had the flag on
    own = sorted(p.relative_to(snapshots).as_posix() for p in snapshots.glob("nested/*/own.safetensors"))
    assert own == ["nested/gw0/own.safetensors", "nested/gw1/own.safetensors"]  # folders made as needed
    assert snapshot_info(snapshots / "shared.safetensors")["framework"] == "torch"

    stale = _run(pytester, snapshots, scale=1.0)  # no flag, the model changed: checked, it fails in both workers
    stale.assert_outcomes(failed=2)
    assert stale.stdout.str().count("activations differ from snapshot") >= 2
    assert set(p.read_text() for p in snapshots.glob("update.*")) == {"False"}

    leftovers = [p.name for p in snapshots.rglob("*") if p.is_file() and p.suffix != ".safetensors" and not p.name.startswith(("start.", "update."))]
    assert leftovers == []  # no temporary file left behind by any worker
