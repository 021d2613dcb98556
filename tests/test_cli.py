"""The command line as a user meets it: exit codes, JSON, clear errors without tracebacks."""

import json
import os
import subprocess
import sys

import pytest

from conftest import needs_keras
from xconv import zoo
from xconv.cli.main import main


def run_cli(*args, env=None, timeout=300):
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "xconv.cli.main", *args], capture_output=True, text=True, env=full_env, timeout=timeout
    )


@needs_keras
@pytest.mark.parametrize("name, dtype", [("two_conv", "float64"), ("conv3d_demo", "float32")])
def test_demo_json_reports_every_layer(name, dtype, capsys):
    """The CLI's side of demo: NAME and --dtype reach the comparison, --json prints the report
    (that every zoo model matches in both dtypes is test_compare's to show)."""
    assert main(["demo", name, "--dtype", dtype, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is True and data["first_divergence"] is None
    assert data["dtype"] == dtype and data["device"] == "cpu" and data["tf32"] is False
    assert [l["name"] for l in data["layers"]] == [l.name for l in zoo.spec(name).layers]
    if dtype == "float64":
        assert max(l["max_rel"] for l in data["layers"]) <= 1e-10


@needs_keras
@pytest.mark.slow
def test_demo_default_runs_as_a_real_process():
    proc = run_cli("demo")
    assert proc.returncode == 0, proc.stderr
    assert "conv4_2" in proc.stdout and "MATCH" in proc.stdout
    assert "Traceback" not in proc.stderr


def test_demo_exit_code_one_on_mismatch(monkeypatch, capsys):
    pytest.importorskip("keras")
    import xconv.transfer as transfer

    real = transfer.transfer_weights

    def planted(src, dst):  # a porting bug: one kernel value wrong after the copy
        manifest = real(src, dst)
        import torch

        with torch.no_grad():
            dst.conv2.weight[0, 0, 1, 1] += 0.5
        return manifest

    monkeypatch.setattr(transfer, "transfer_weights", planted)
    assert main(["demo", "two_conv"]) == 1
    out = capsys.readouterr().out
    assert "MISMATCH" in out and "first divergence at 'conv2'" in out


@pytest.mark.parametrize(
    "args, message",
    [
        (["demo", "resnet50"], "Unknown zoo model 'resnet50'"),
        (["inspect", "zoo:nope"], "Unknown zoo model 'nope'"),
        (["inspect", "model.npz"], "unknown weight file type"),
        (["demo", "two_conv", "--batch", "0"], "--batch"),
    ],
)
def test_bad_input_exits_two_with_one_clear_line(args, message, capsys):
    # in-process: main() is what the process runs (test_demo_default_runs_as_a_real_process and
    # test_cuda_without_gpu_is_a_clear_error run it as one); a subprocess each cost ~2 s
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_usage_errors_exit_two(capsys):
    with pytest.raises(SystemExit) as exc:  # argparse's own exit, as the process exits
        main(["demo", "--dtype", "float16"])
    assert exc.value.code == 2 and "invalid choice: 'float16'" in capsys.readouterr().err
    assert main([]) == 2


@needs_keras
def test_cuda_without_gpu_is_a_clear_error():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    proc = run_cli("demo", "two_conv", "--device", "cuda")
    assert proc.returncode == 2 and "no CUDA GPU" in proc.stderr and "Traceback" not in proc.stderr


def test_missing_tensorflow_says_how_to_install():
    # block keras and tensorflow in the child process, as on a machine without them
    code = (
        "import sys; sys.modules['keras'] = None; sys.modules['tensorflow'] = None\n"
        "from xconv.cli.main import main; sys.exit(main(['demo', 'two_conv']))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 2
    assert 'pip install "xconv[tf]"' in proc.stderr and "Traceback" not in proc.stderr


def test_inspect_answers_what_the_kernel_numbers_mean(capsys):
    assert main(["inspect", "zoo:unet_encoder"]) == 0
    out = capsys.readouterr().out
    assert "(3, 3, 512, 512)" in out and "(512, 512, 3, 3)" in out
    assert "3x3 window x 512 input channels x 512 filters" in out
    assert "Total parameters: 5,384,832" in out
    assert main(["inspect", "zoo:conv3d_demo", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["total_params"] == 629_511
    dense = next(t for t in data["tensors"] if t["layer"] == "dense_a" and t["keras_name"] == "kernel")
    assert dense["keras_shape"] == [6272, 100] and dense["torch_shape"] == [100, 6272]


def test_layers_and_env(capsys):
    assert main(["layers"]) == 0
    assert "Conv3D" in capsys.readouterr().out
    assert main(["env", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert {"python", "xconv", "torch", "numpy", "cuda"} <= set(info)


def test_help_loads_no_framework():
    code = (
        "import sys\nfrom xconv.cli.main import main\ntry:\n    main(['--help'])\nexcept SystemExit as exc:\n    code = exc.code\n"
        "print('exit', code, *(m for m in ('torch', 'tensorflow', 'keras', 'onnx', 'matplotlib') if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "demo" in proc.stdout and "lint" in proc.stdout
    assert proc.stdout.splitlines()[-1] == "exit 0", proc.stdout[-500:]  # and no framework module loaded


def test_layers_table_is_generated_from_the_registry_and_docs_are_current(capsys):
    import pathlib

    assert main(["layers", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    from xconv.translate import supported_layers

    assert [r["keras"] for r in rows] == list(supported_layers())
    assert {"Conv3D", "Conv2DTranspose", "DepthwiseConv2D", "BatchNormalization", "Concatenate"} <= {r["keras"] for r in rows}
    assert main(["layers", "--markdown"]) == 0
    docs = (pathlib.Path(__file__).resolve().parents[1] / "docs" / "layers.md").read_text()
    assert capsys.readouterr().out == docs, "docs/layers.md is stale: run xconv layers --markdown > docs/layers.md"


def test_registries_reject_duplicates():
    from xconv.translate.converters import converter

    with pytest.raises(ValueError, match="already has a converter"):
        converter("Conv2D", family="again")(lambda layer: None)
    from xconv.weights import WeightFamily, register

    with pytest.raises(ValueError, match="already registered"):
        register(WeightFamily("conv_again", ("Conv2D",), (), lambda w, c: w, lambda w, c: w))
