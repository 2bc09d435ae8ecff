"""experiments/figure5.py end to end on a tiny budget: 1 epoch on 300 examples, Nz in {2, 3}."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from subprocess_env import script_env

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("VAEX_DATA_DIR", ROOT.parent / "shared" / "data"))


def _figure5(workdir):
  env = script_env()
  out = subprocess.run(
      [sys.executable, str(ROOT / "experiments" / "figure5.py"), f"--workdir={workdir}",
       f"--data_dir={DATA_DIR}", "--epochs=1", "--num_train_examples=300", "--latent_dims=2,3",
       "--num_samples=16"],
      capture_output=True, text=True, timeout=300, env=env, cwd=ROOT,
  )
  assert out.returncode == 0, out.stderr[-3000:]
  rows = [json.loads(line) for line in (workdir / "figure5.jsonl").read_text().splitlines()]
  with np.load(workdir / "figure5_samples.npz") as f:
    samples = {k: f[k] for k in f.files}
  return out.stdout, rows, samples


def test_figure5_writes_the_figure_and_the_elbos_and_reuses_its_runs(tmp_path):
  stdout, rows, samples = _figure5(tmp_path)
  assert "Nz=  2: test ELBO" in stdout and "Nz=  3: test ELBO" in stdout
  assert [r["latent_dim"] for r in rows] == [2, 3]
  for r in rows:
    assert r["epoch"] == 1 and r["step"] == 3 and r["config"] == "mnist_adam"
    assert np.isfinite(r["test_elbo"]) and -600 < r["test_elbo"] < 0
  assert sorted(samples) == ["nz2", "nz3"]
  for s in samples.values():
    assert s.shape == (16, 784) and s.dtype == np.float32 and ((s >= 0) & (s <= 1)).all()
  for name in ("figure5.png", "figure5_nz2.png", "figure5_nz3.png"):
    assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  import matplotlib.image

  picture = matplotlib.image.imread(tmp_path / "figure5.png")[..., :3].mean(-1)
  height, width = picture.shape
  panel = 2 * (4 * 29 - 1)  # A 4x4 grid of 28x28 images with 1-pixel gaps, drawn at 2x.
  assert width > 2 * panel and 2 * panel > height > panel  # Two panels side by side, titles above.
  # The panels do not overlap: the images (not white) fill two panels' width of columns, less the
  # white gaps between images.
  image_columns = (picture[-panel // 2:] < 0.95).any(axis=0).sum()
  assert 1.8 * panel < image_columns <= 2 * panel

  # Re-running reuses the finished runs (no training rows are added) and draws the same samples.
  metrics = (tmp_path / "nz2" / "metrics.jsonl").read_text()
  _, rows_again, samples_again = _figure5(tmp_path)
  assert (tmp_path / "nz2" / "metrics.jsonl").read_text() == metrics
  assert [r["test_elbo"] for r in rows_again] == [r["test_elbo"] for r in rows]
  for k in samples:
    np.testing.assert_array_equal(samples_again[k], samples[k])
