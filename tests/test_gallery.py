"""The gallery renders from a fresh install (the script the docs' pictures come from)."""

import pathlib
import subprocess
import sys

import pytest

from conftest import needs_keras

ROOT = pathlib.Path(__file__).resolve().parents[1]


@needs_keras
@pytest.mark.slow
def test_make_gallery_renders_every_picture(tmp_path):
    """Every picture the docs ship is drawn, through the same calls; --small (unet_encoder on 64x64,
    fewer tiles) keeps the run short: the full run took 40 s idle, over 100 s under load."""
    pytest.importorskip("matplotlib")
    from matplotlib import image

    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "make_gallery.py"), "--small", "--out", str(tmp_path)], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    made = sorted(p.name for p in tmp_path.iterdir())
    shipped = sorted(p.name for p in (ROOT / "docs" / "gallery").iterdir())
    assert made == shipped and len(made) == 10
    for p in tmp_path.iterdir():
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 10_000
        pixels = image.imread(p)  # decodes: not cut short
        assert pixels.ndim == 3 and min(pixels.shape[:2]) > 100 and pixels.std() > 0, p.name
    text = (ROOT / "docs" / "gallery.md").read_text()
    assert all(f"gallery/{name}" in text for name in made)
