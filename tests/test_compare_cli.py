"""`xconv compare A B` on a user's own files: a .keras model, a module file or package class,
a state_dict, an input file; exit 0 on a match, 1 on a mismatch, 2 on bad input."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest
import torch

from conftest import needs_keras
from xconv.cli.main import main

pytestmark = needs_keras
twins = pytest.importorskip("corpus.twins")
TWINS_FILE = pathlib.Path(twins.__file__).resolve()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cmp")
    twin = twins.TWINS["functional_activations"]
    k = twin.build_keras()
    t = twin.torch_for(k)
    k.save(tmp / "model.keras")
    torch.save(t.state_dict(), tmp / "port.pt")
    broken, layer = twin.planted["filter"](t)
    torch.save(broken.state_dict(), tmp / "broken.pt")
    np.save(tmp / "x.npy", np.random.default_rng(0).normal(size=(2, 16, 16, 3)).astype(np.float32))
    np.save(tmp / "x_cf.npy", np.random.default_rng(0).normal(size=(2, 3, 16, 16)).astype(np.float32))
    return tmp, layer


def test_a_keras_file_against_a_module_file_and_its_state_dict(files, capsys):
    tmp, _ = files
    spec = f"{TWINS_FILE}:FunctionalNet"
    assert main(["compare", str(tmp / "model.keras"), spec, "--weights", str(tmp / "port.pt")]) == 0
    assert "MATCH" in capsys.readouterr().out
    assert main(["compare", str(tmp / "model.keras"), spec, "--weights", str(tmp / "port.pt"), "--input", str(tmp / "x.npy"), "--dtype", "float64", "--local", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] and data["dtype"] == "float64" and data["capture"] == "graph"


def test_a_planted_bug_exits_1_and_names_the_layer(files, capsys):
    tmp, layer = files
    code = main(["compare", str(tmp / "model.keras"), "corpus.twins:FunctionalNet", "--weights", str(tmp / "broken.pt"), "--local"])
    out = capsys.readouterr().out
    assert code == 1 and f"first divergence at '{layer}'" in out and f"error starts at '{layer}'" in out


def test_the_module_first_with_weights_moved_from_keras(files, capsys):
    tmp, _ = files
    assert main(["compare", "corpus.twins:FunctionalNet", str(tmp / "model.keras"), "--input", str(tmp / "x_cf.npy")]) == 0
    captured = capsys.readouterr()
    assert "Moved" in captured.err and "MATCH" in captured.out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["{k}", "corpus.twins:Nope"], "has no class 'Nope'"),
        (["{k}", "no_such_pkg.mod:Net"], "Cannot import 'no_such_pkg.mod'"),
        (["{k}", "corpus.twins:FunctionalNet", "--kwargs", "[1"], "--kwargs must be a JSON object"),
        (["{k}", "corpus.twins:FunctionalNet", "--kwargs", '{"width": 3}'], "unexpected keyword"),
        (["{k}", "corpus.twins:FunctionalNet", "--weights", "{k}"], "--weights takes the module's state_dict (.pt, .pth, .ckpt"),
        (["{k}", "corpus.twins:SharedNet", "--weights", "{tmp}/port.pt"], "does not fit SharedNet: missing"),
        (["{k}", "corpus.twins:FunctionalNet", "--input", "{tmp}/missing.npy"], "No such file"),
        (["{k}", "{tmp}/nothing.keras"], "nothing.keras"),
        (["{k}", "weights.bin"], "Cannot use 'weights.bin' as a side of compare"),
        (["two_conv", "{k}"], "write zoo:two_conv"),
        (["{k}"], "compare takes two models"),
    ],
)
def test_bad_input_exits_2_with_one_line(files, capsys, argv, message):
    tmp, _ = files
    argv = [a.replace("{k}", str(tmp / "model.keras")).replace("{tmp}", str(tmp)) for a in argv]
    assert main(["compare", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
