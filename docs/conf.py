"""Sphinx configuration for the vaex documentation (distribution `jax-vae`).

    pip install -e '.[docs]'
    sphinx-build -W --keep-going -b html docs docs/_build/html

The API reference is generated at build time from the `__all__` lists of `vaex`, `vaex.data`,
`vaex.plots` and `vaex.experiment` (one page per public name, written to `docs/api/generated/`), so a
name added to an `__all__` appears without editing the docs, and nothing private does. The guides in
`docs/guides/` are MyST notebooks executed on every build (a failing cell fails the build).
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import io
import os
import re
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))  # Document the checkout being built, installed or not.
# The executed guides start kernels that import vaex too: give them the same checkout.
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import docutils.frontend  # noqa: E402
import docutils.parsers.rst  # noqa: E402
import docutils.utils  # noqa: E402
import flax.linen as nn  # noqa: E402
from sphinx.pycode import ModuleAnalyzer  # noqa: E402
from sphinx.util import logging  # noqa: E402

import vaex  # noqa: E402

project = "vaex"
author = "the vaex authors"
copyright = "the vaex authors"  # noqa: A001
release = version = vaex.__version__

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
]
exclude_patterns = ["_build", "**.ipynb_checkpoints", "README.md"]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb"}
html_theme = "furo"
html_title = f"vaex {release}"
# Docstrings write code in single backticks, as Markdown does: render it as code.
default_role = "literal"

# -- API reference -----------------------------------------------------------------------------------
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_inherit_docstrings = False
autosummary_generate = False  # The pages are written below, from __all__.
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_use_ivar = True  # "Attributes:" as a field list, not as objects that would clash across pages.

PUBLIC_MODULES = ("vaex", "vaex.data", "vaex.plots", "vaex.experiment")
GENERATED = DOCS / "api" / "generated"
logger = logging.getLogger(__name__)


def _kind(obj) -> str:
  if inspect.isclass(obj):
    if issubclass(obj, BaseException):
      return "exception"
    if issubclass(obj, nn.Module):
      return "linen"
    if issubclass(obj, tuple):
      return "namedtuple"
    return "class"
  if callable(obj):
    return "function"
  return "data"


def _attribute_doc(obj_name: str, module_name: str) -> str:
  """The `#:` comment or docstring after an assignment, from the module that defines a constant."""
  for name in (module_name, *[m for m in sys.modules if m.startswith("vaex._src.")]):
    try:
      docs = ModuleAnalyzer.for_module(name).find_attr_docs()
    except Exception:  # noqa: BLE001 - a module without source has no attribute docs.
      continue
    if ("", obj_name) in docs:
      return "\n".join(docs[("", obj_name)]).strip()
  return ""


def _page(module_name: str, name: str) -> str:
  obj = getattr(importlib.import_module(module_name), name)
  title = f"{module_name}.{name}"
  lines = [title, "=" * len(title), "", f".. currentmodule:: {module_name}", ""]
  kind = _kind(obj)
  if kind == "function":
    lines += [f".. autofunction:: {name}"]
  elif kind == "exception":
    lines += [f".. autoexception:: {name}", "   :show-inheritance:"]
  elif kind == "linen":
    # A Flax linen module: its own methods and __call__, none of nn.Module's. Its fields are in the
    # signature and in the docstring's "Attributes:", so autodoc does not list them a second time.
    fields = ", ".join(["parent", "name", *(f.name for f in dataclasses.fields(obj))])
    lines += [f".. autoclass:: {name}", "   :members:", "   :special-members: __call__",
              f"   :exclude-members: {fields}"]
  elif kind == "namedtuple":
    lines += [f".. autoclass:: {name}"]  # Fields are listed under "Attributes" in the docstring.
  elif kind == "class":
    lines += [f".. autoclass:: {name}", "   :members:"]
  else:
    lines += [f".. py:data:: {name}", f"   :value: {obj!r}", ""]
    doc = _attribute_doc(name, module_name)
    lines += ["   " + line for line in doc.splitlines()] if doc else []
  return "\n".join(lines) + "\n"


def _module_page(module_name: str) -> str:
  module = importlib.import_module(module_name)
  title = f"``{module_name}``"
  lines = [title, "=" * len(title), "", f".. automodule:: {module_name}", "   :no-members:", "",
           f".. currentmodule:: {module_name}", "", ".. autosummary::", "   :nosignatures:", ""]
  names = sorted(module.__all__, key=str.lower)
  lines += [f"   {name}" for name in names]
  lines += ["", ".. toctree::", "   :hidden:", ""]
  lines += [f"   {module_name}.{name}" for name in names]
  return "\n".join(lines) + "\n"


def _write_if_changed(path: Path, text: str) -> None:
  if not path.exists() or path.read_text() != text:  # Unchanged files keep Sphinx's cache valid.
    path.write_text(text)


def generate_api_pages() -> None:
  GENERATED.mkdir(parents=True, exist_ok=True)
  wanted = set()
  for module_name in PUBLIC_MODULES:
    module = importlib.import_module(module_name)
    wanted.add(f"{module_name}.rst")
    _write_if_changed(GENERATED / f"{module_name}.rst", _module_page(module_name))
    for name in module.__all__:
      wanted.add(f"{module_name}.{name}.rst")
      _write_if_changed(GENERATED / f"{module_name}.{name}.rst", _page(module_name, name))
  for stale in GENERATED.glob("*.rst"):  # A name removed from __all__ loses its page.
    if stale.name not in wanted:
      stale.unlink()


generate_api_pages()


_FUNCTION_REPR = re.compile(r"<PjitFunction of <function ([\w.]+) at 0x[0-9a-f]+>>"
                            r"|<function ([\w.]+) at 0x[0-9a-f]+>")


def _strip_linen_fields(app, what, name, obj, options, signature, return_annotation):
  """Drops linen's `parent` and `name` fields from a module's signature; names default functions."""
  if what == "class" and inspect.isclass(obj) and issubclass(obj, nn.Module) and signature:
    parameters = [p for p in inspect.signature(obj).parameters.values()
                  if p.name not in ("parent", "name")]
    signature = str(inspect.Signature(parameters))
  if signature:  # Default functions print as `tanh`, not `<PjitFunction of <function tanh at 0x...>>`.
    signature = _FUNCTION_REPR.sub(lambda m: m.group(1) or m.group(2), signature)
  return signature, return_annotation


# Docstrings are written for `help()` and editors, in a Markdown-like plain text: `|x|` for norms and
# `a`s for plurals mean other things to reStructuredText. Before napoleon reads a docstring, `|` outside
# backticks is escaped and a closing backtick followed by a letter gets an escaped space. After napoleon,
# a docstring that still does not parse cleanly as reStructuredText is shown verbatim (a literal block,
# as `help()` shows it), never dropped or mangled; the build log names each one.
_BACKTICKS = re.compile(r"(`[^`]+`)")
_ORIGINAL: dict[str, list[str]] = {}
_IGNORED = ("Unknown interpreted text role", "Unknown directive type", "No role entry",
            "No directive entry")


def _escape_docstring(app, what, name, obj, options, lines):
  if what in ("data", "attribute"):  # A constant's docstring is its type's (dict's): use its own.
    module_name, _, short_name = name.rpartition(".")
    lines[:] = _attribute_doc(short_name, module_name).splitlines()
  _ORIGINAL[name] = list(lines)
  parts = _BACKTICKS.split("\n".join(lines))
  for i in range(0, len(parts), 2):  # Even parts are outside backticks.
    parts[i] = parts[i].replace("|", "\\|")
    if i and parts[i][:1].isalnum():
      parts[i] = "\\ " + parts[i]
  lines[:] = "".join(parts).split("\n")


def _rst_problems(app, text: str) -> list[str]:
  stream = io.StringIO()
  settings = docutils.frontend.get_default_settings(docutils.parsers.rst.Parser)
  overrides = {"report_level": 2, "halt_level": 5, "warning_stream": stream, "env": app.env}
  for key, value in overrides.items():
    setattr(settings, key, value)
  document = docutils.utils.new_document("<docstring>", settings)
  try:
    docutils.parsers.rst.Parser().parse(text, document)
  except Exception:  # noqa: BLE001 - a Sphinx role that needs a page; Sphinx itself will judge it.
    return []
  messages = [line for line in stream.getvalue().splitlines()
              if "(WARNING/" in line or "(ERROR/" in line]
  return [m for m in messages if not any(ignored in m for ignored in _IGNORED)]


def _verbatim_if_broken(app, what, name, obj, options, lines):
  problems = _rst_problems(app, "\n".join(lines))
  if problems and name in _ORIGINAL:
    logger.info("docstring of %s shown verbatim: %s", name, problems[0])
    lines[:] = ["::", ""] + ["   " + line for line in _ORIGINAL[name]] + [""]


def setup(app):
  app.connect("autodoc-process-signature", _strip_linen_fields)
  app.connect("autodoc-process-docstring", _escape_docstring, priority=400)  # napoleon is 500.
  app.connect("autodoc-process-docstring", _verbatim_if_broken, priority=600)


# -- Executed guides (myst-nb) ------------------------------------------------------------------------
nb_execution_mode = "force"  # Every build runs every guide.
nb_execution_raise_on_error = True  # A failing cell fails the build.
nb_execution_timeout = 600  # Seconds per cell.
nb_execution_show_tb = True
nb_merge_streams = True
myst_enable_extensions = ["dollarmath", "colon_fence"]
myst_heading_anchors = 3
