"""xconv train-check: exit 0 when the port trains the same, 1 when it diverges, 2 on bad input."""

import json

import pytest

from conftest import needs_keras

pytestmark = needs_keras


def _run(capsys, *args):
    from xconv.cli.main import main

    code = main(["train-check", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_train_check_zoo_twins_match(capsys):
    code, out, _ = _run(capsys, "zoo:two_conv", "zoo:two_conv", "--loss", "mse", "--optimizer", "adam:learning_rate=0.01", "--steps", "2", "--dtype", "float64")
    assert code == 0, out
    assert "MATCH" in out and "exp_avg_sq" in out and "float64" in out


def test_train_check_json_and_a_small_conv3d(capsys):
    code, out, _ = _run(capsys, "zoo:conv3d_demo", "zoo:conv3d_demo", "--input-shape", "32,32,3,1", "--loss", "sparse_categorical_crossentropy",
                        "--optimizer", "sgd:momentum=0.9", "--steps", "1", "--json")  # fmt: skip
    assert code == 0
    data = json.loads(out)
    assert data["ok"] is True and data["first_divergence"] is None and data["steps"] == 1


def test_train_check_port_with_its_own_optimizer_diverges(capsys):
    # the port's code uses torch's Adam with eps=1e-7 as it reads Keras's: placed the other way
    code, out, _ = _run(capsys, "zoo:two_conv", "zoo:two_conv", "--loss", "mse", "--optimizer", "adam:beta_1=0.5,beta_2=0.75",
                        "--torch-optimizer", "torch.adam:lr=0.0010000000474974513,betas=0.5/0.75,eps=1e-7", "--dtype", "float64", "--failures")  # fmt: skip
    assert code == 1
    assert "DIVERGED: first at step 1" in out and "weight" in out


@pytest.mark.parametrize(
    "args,match",
    [
        (["--loss", "mse", "--optimizer", "torch.adam:weight_decay=0.1"], "L2"),
        (["--loss", "poisson", "--optimizer", "adam"], "Unknown loss"),
        (["--loss", "mse", "--optimizer", "adam", "--input-shape", "a,b"], "comma-separated"),
    ],
)
def test_train_check_bad_input_exits_2(capsys, args, match):
    code, _, err = _run(capsys, "zoo:two_conv", "zoo:two_conv", *args)
    assert code == 2 and match in err and "Traceback" not in err


def test_train_check_keras_file_against_a_user_module(capsys, tmp_path):
    from xconv.training.examples import bn_classifier

    path = tmp_path / "classifier.keras"
    bn_classifier("keras").save(path)
    code, out, err = _run(capsys, str(path), "xconv.training.examples:bn_classifier", "--kwargs", '{"framework": "torch"}', "--batch", "4",
                          "--loss", "sparse_categorical_crossentropy:from_logits=true", "--optimizer", "sgd:momentum=0.9", "--dtype", "float64")  # fmt: skip
    assert code == 0, out + err
    assert "running_var" in out and "switched off" in out
    code, out, _ = _run(capsys, str(path), "xconv.training.examples:bn_classifier", "--kwargs", '{"framework": "torch", "momentum": 0.1}',
                        "--batch", "4", "--loss", "sparse_categorical_crossentropy:from_logits=true", "--optimizer", "sgd", "--failures")  # fmt: skip
    assert code == 1 and "DIVERGED: first at step 1, layer 'bn1'" in out
