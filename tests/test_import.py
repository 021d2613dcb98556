"""``import xconv`` stays light: NumPy only; frameworks load on first use."""

import subprocess
import sys

HEAVY = ("torch", "tensorflow", "keras", "onnx", "onnxruntime", "tf2onnx", "matplotlib")


def _loaded_after(code: str) -> set[str]:
    probe = f"import sys\n{code}\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_import_xconv_loads_no_framework():
    assert _loaded_after("import xconv, xconv.layouts, xconv.padding, xconv.errors, xconv.viz") == set()


def test_zoo_specs_and_registry_load_no_framework():
    assert _loaded_after("import xconv; xconv.zoo.spec('unet_encoder'); xconv.weights.families()") == set()


def test_torch_work_never_loads_tensorflow():
    loaded = _loaded_after("import xconv; from xconv import zoo; m = zoo.build('two_conv', 'torch'); xconv.describe(m)")
    assert "torch" in loaded and not loaded & {"tensorflow", "keras"}


def test_lazy_public_api():
    import xconv

    assert callable(xconv.compare) and callable(xconv.transfer_weights) and callable(xconv.assert_match)
    assert set(xconv.__all__) <= set(dir(xconv))


def test_commands_on_torch_files_never_load_tensorflow(tmp_path):
    code = (
        "import torch; from xconv import zoo\n"
        f"torch.save(zoo.build('two_conv', 'torch').state_dict(), {str(tmp_path / 'w.pt')!r})\n"
        "from xconv.cli.main import main\n"
        f"assert main(['convert', {str(tmp_path / 'w.pt')!r}, {str(tmp_path / 'w.safetensors')!r}, '--quiet']) == 0\n"
        f"assert main(['inspect', {str(tmp_path / 'w.safetensors')!r}]) == 0\n"
        f"assert main(['diff', {str(tmp_path / 'w.pt')!r}, {str(tmp_path / 'w.safetensors')!r}]) == 0\n"
        f"assert main(['convert', {str(tmp_path / 'w.safetensors')!r}, {str(tmp_path / 'k.safetensors')!r}, '--layout', 'keras', '--quiet']) == 0"
    )
    loaded = _loaded_after(code)
    assert "torch" in loaded and not loaded & {"tensorflow", "keras"}
