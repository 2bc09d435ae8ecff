"""Builds the wheel and the sdist, installs the wheel into a fresh venv and runs the README's example.

    python .ci/check_wheel.py   # about 1-2 minutes on 2 CPU cores with a warm pip cache

Checks, in order: `python -m build` makes one wheel and one sdist of the distribution `jax-vae`; the
wheel holds the package `vaex` with `py.typed` and nothing else (no tests, experiments or benchmarks);
the wheel installs with its dependencies into a new virtual environment (no `-e`, no source tree on the
path); the python block under "Compose it in your own JAX code" in README.md runs there, from a
directory outside the checkout, and `vaex` is imported from that environment's site-packages. Exits
non-zero on any failure.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DISTRIBUTION = "jax_vae"  # The wheel's file name spells `jax-vae` with an underscore.


def _run(cmd: list[str], **kwargs) -> None:
  print("+", " ".join(cmd), flush=True)
  subprocess.run(cmd, check=True, **kwargs)


def check_wheel_contents(wheel: Path) -> None:
  names = zipfile.ZipFile(wheel).namelist()
  top_level = {name.split("/")[0] for name in names}
  expected = {"vaex", f"{DISTRIBUTION}-{wheel.name.split('-')[1]}.dist-info"}
  if top_level != expected:
    raise SystemExit(f"{wheel.name}: top-level entries {sorted(top_level)}, expected {sorted(expected)}")
  if "vaex/py.typed" not in names:
    raise SystemExit(f"{wheel.name}: vaex/py.typed is missing (package-data in pyproject.toml)")
  strays = [n for n in names if re.search(r"(^|/)(tests?|conftest|.*_test\.py$)", n)]
  if strays:
    raise SystemExit(f"{wheel.name}: test files in the wheel: {strays}")
  print(f"{wheel.name}: {len(names)} files, py.typed present, no tests", flush=True)


def compose_example() -> str:
  text = (ROOT / "README.md").read_text()
  match = re.search(r"## Compose it in your own JAX code.*?```python\n(.*?)```", text, re.S)
  if match is None:
    raise SystemExit("README.md: no python block under '## Compose it in your own JAX code'")
  return match.group(1)


def main() -> None:
  with tempfile.TemporaryDirectory(prefix="vaex-wheel-") as tmp:
    tmp = Path(tmp)
    dist = tmp / "dist"
    _run([sys.executable, "-m", "build", "--outdir", str(dist), str(ROOT)], stdout=subprocess.DEVNULL)
    wheels, sdists = sorted(dist.glob("*.whl")), sorted(dist.glob("*.tar.gz"))
    if len(wheels) != 1 or len(sdists) != 1 or not wheels[0].name.startswith(f"{DISTRIBUTION}-"):
      raise SystemExit(f"python -m build made {[p.name for p in dist.iterdir()]}, expected one "
                       f"{DISTRIBUTION} wheel and one sdist")
    check_wheel_contents(wheels[0])

    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", str(venv)])
    python = venv / "bin" / "python"
    _run([str(python), "-m", "pip", "install", "-q", str(wheels[0])])
    script = tmp / "work" / "compose_example.py"
    script.parent.mkdir()
    script.write_text(
        compose_example()
        + "\nimport pathlib, sys\n"
        + "print('vaex imported from', vaex.__file__)\n"
        + f"assert pathlib.Path(vaex.__file__).resolve().is_relative_to({str(venv.resolve())!r})\n"
        + "assert value == value and float(value) > 0, value  # a finite, positive loss\n"
    )
    # -I: isolated mode, so neither the checkout nor PYTHONPATH can shadow the installed wheel.
    _run([str(python), "-I", str(script)], cwd=script.parent)
    print("wheel check passed", flush=True)


if __name__ == "__main__":
  main()
