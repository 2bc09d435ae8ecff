"""The package as users meet it: the public API, a light `import vaex`, the README's example."""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np

import vaex

ROOT = Path(__file__).resolve().parents[1]


def test_public_api_is_exported():
  for name in vaex.__all__:
    assert hasattr(vaex, name), name
  for name in ("bernoulli_log_likelihood", "gaussian_log_likelihood", "diag_gaussian_log_prob",
               "standard_normal_log_prob", "gaussian_kl", "reparameterize", "elbo", "iwae_bound",
               "MLPEncoder", "BernoulliMLPDecoder", "GaussianMLPDecoder", "log_importance_weights",
               "elbo_terms", "ELBOTerms", "importance_sampled_log_likelihood",
               "categorical_log_likelihood", "discretized_logistic_log_likelihood",
               "discretized_logistic_mixture_log_likelihood", "continuous_bernoulli_log_likelihood"):
    assert name in vaex.__all__, name


def test_import_vaex_is_light():
  heavy = ("tensorflow", "tensorflow_datasets", "matplotlib", "distrax", "tensorflow_probability",
           "equinox")
  code = (f"import sys, vaex; heavy = [m for m in {heavy!r} if m in sys.modules]; "
          "assert not heavy, heavy")
  subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_readme_starts_with_the_two_commands():
  text = (ROOT / "README.md").read_text()
  block = re.search(r"```bash\n(.*?)```", text, re.S).group(1)
  commands = [line for line in block.splitlines() if line and not line.startswith("#")]
  assert len(commands) == 2
  assert "experiments/train.py" in commands[0] and "pip install" in commands[0]
  assert "pytest" in commands[1] and "pip install" in commands[1]
  # CI runs the README's test command.
  ci = (ROOT / ".ci" / "run").read_text()
  assert "pip install -e '.[data,plots,test]'" in ci and "-m pytest -n 2 tests" in ci
  assert "-m pytest -n 2 tests" in commands[1] and "'.[data,plots,test]'" in commands[1]


def test_readme_compose_example_runs():
  text = (ROOT / "README.md").read_text()
  code = re.search(r"## Compose it in your own JAX code.*?```python\n(.*?)```", text, re.S).group(1)
  namespace = {}
  exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102
  assert np.isfinite(namespace["value"]) and float(namespace["value"]) > 0


def test_readme_bring_your_own_example_runs(allow_rank_promotion):
  # distrax broadcasts implicitly, which the suite's rank_promotion='raise' would refuse.
  text = (ROOT / "README.md").read_text()
  code = re.search(r"## Bring your own posterior, prior and likelihood.*?```python\n(.*?)```", text,
                   re.S).group(1)
  for used in ("distrax.MultivariateNormalTri", "distrax.MixtureSameFamily", "distrax.Bernoulli",
               "log_likelihood=None", "analytic_kl=False", "vaex.log_importance_weights"):
    assert used in code, used
  namespace = {}
  exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102
  assert np.isfinite(namespace["value"])


def test_distribution_name_py_typed_and_install_hints():
  # PyPI's `vaex` is an unrelated DataFrame library that also imports as `vaex`: the distribution is
  # `jax-vae`, and every install hint a user meets must name it.
  project = tomllib.loads((ROOT / "pyproject.toml").read_text())
  assert project["project"]["name"] == "jax-vae"
  assert "py.typed" in project["tool"]["setuptools"]["package-data"]["vaex"]
  assert (ROOT / "vaex" / "py.typed").is_file()
  assert {"data", "plots", "test", "docs"} <= set(project["project"]["optional-dependencies"])
  readme = (ROOT / "README.md").read_text()
  assert "`jax-vae`" in readme and "DataFrame" in readme
  assert "cannot be installed in one" in readme.replace("\n", " ")
  files = [ROOT / "README.md", ROOT / "BUILD_NOTES.md"]
  for folder in ("vaex", "experiments", "benchmarks", "docs"):
    files += [p for p in (ROOT / folder).rglob("*") if p.suffix in (".py", ".md", ".rst")
              and "_build" not in p.parts and "generated" not in p.parts]
  wrong = re.compile(r"pip install (-e )?['\"]?vaex\b(?!-)")
  offenders = [f"{p.relative_to(ROOT)}: {m.group(0)}" for p in files
               for m in wrong.finditer(p.read_text(errors="replace"))]
  assert not offenders, offenders
