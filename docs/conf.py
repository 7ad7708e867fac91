"""Sphinx configuration of the bar-sdk documentation.

Build (from the repository root, with the ``docs`` extra installed)::

    sphinx-build -W --keep-going -b html docs docs/_build/html      # runs the tutorials too
    sphinx-build -W --keep-going -b doctest -D plot_gallery=0 docs docs/_build/doctest

The API pages are generated here, at every build, from the ``__all__`` of the
public packages listed in :data:`PUBLIC_MODULES` (not from file paths, so a
module moving inside a package changes nothing here). Each public name is
documented once, on the page of the listed package closest to where it is
defined; the other packages that re-export it link there. A public class or
function without a docstring is a warning, hence an error under ``-W``.
The CLI page is the ``--help`` text of ``bar`` and of each of its
subcommands, captured by calling the console script's entry point.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import io
import os
import re
import sys
from importlib.metadata import entry_points
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import bar_sdk  # noqa: E402

project = "bar-sdk"
author = "bar-sdk contributors"
copyright = "bar-sdk contributors"
release = version = bar_sdk.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.doctest",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "myst_parser",  # the Markdown pages: usage.md, ARCHITECTURE.md, RELIABILITY.md
]

html_theme = "furo"
html_title = f"bar-sdk {release}"
exclude_patterns = ["_build", "**.ipynb", "**.py.md5", "**.zip", "**.json"]
templates_path: list[str] = []
suppress_warnings: list[str] = []

# -- references: every one must resolve (nitpicky), except names of other projects ------------------------------
# No intersphinx: the build runs offline (CI reaches package registries only), so links into the
# documentation of NumPy, PyTorch, scikit-learn, ... cannot be checked and are left as plain names.
nitpicky = True
nitpick_ignore_regex = [
    (
        r"py:.*",
        r"(numpy|np|torch|nn|sklearn|scipy|httpx|requests|ray|onnxruntime|starlette|uvicorn|matplotlib|"
        r"pathlib|os|abc|typing|collections|concurrent|asyncio|threading|joblib|tqdm)(\..*)?",
    ),
    (
        r"py:class",
        r"(Any|Callable|Sequence|Mapping|Iterable|Iterator|Path|PathLike|ndarray|array-like|optional|"
        r"default|callable|Module|int|float|str|bool|dict|list|tuple|None|bytes|object|type|Exception|"
        r"ValueError|TypeError|RuntimeError|ImportError|FloatingPointError)",
    ),
]

# -- autodoc + numpydoc -------------------------------------------------------------------------------------------
# The docstrings are numpydoc already (Parameters / Returns / Raises / Examples sections), as in NumPy, SciPy and
# scikit-learn, which this SDK's users read daily; numpydoc renders them as they are.
autodoc_typehints = "none"  # the numpydoc "Parameters" section carries the types; signatures stay short
autodoc_member_order = "bysource"
autodoc_default_options = {
    "members": True,
    "show-inheritance": True,
    # scikit-learn adds these to every estimator; their docstrings point into scikit-learn's own docs
    "exclude-members": "set_fit_request,set_score_request,set_predict_request,set_predict_proba_request,"
    "set_transform_request,get_metadata_routing",
}
autoclass_content = "class"
numpydoc_show_class_members = False  # methods are documented by autodoc below each class
numpydoc_xref_param_type = False
numpydoc_class_members_toctree = False

# -- doctests: the docstring examples run (``sphinx-build -b doctest``); vendor-only ones say ``+SKIP`` ---------------
doctest_global_setup = "import numpy as np"
doctest_test_doctest_blocks = "default"

# -- tutorials: each script in examples/tutorials runs end to end at every HTML build -----------------------------
sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples" / "tutorials"),
    "gallery_dirs": "tutorials",
    "filename_pattern": r"/tutorial_",  # run every tutorial, not only those named plot_*
    "ignore_pattern": r"/_",
    "download_all_examples": False,
    "within_subsection_order": "FileNameSortKey",
    "abort_on_example_error": True,
    "image_scrapers": ("matplotlib",),
    "show_memory": False,
    "reset_modules": ("matplotlib",),
    "remove_config_comments": True,
}

# -- the API pages, generated from __all__ ------------------------------------------------------------------------
#: the public packages and modules, in page order, with a title each
PUBLIC_MODULES = {
    "bar_sdk": "bar_sdk: reprogramming, the contract, the ledger",
    "bar_sdk.errors": "bar_sdk.errors: the exception tree",
    "bar_sdk.adapters": "bar_sdk.adapters: models behind the contract",
    "bar_sdk.adapters.nets": "bar_sdk.adapters.nets: small torch networks",
    "bar_sdk.adapters.remote": "bar_sdk.adapters.remote: paid cloud APIs",
    "bar_sdk.adapters.remote.presets": "bar_sdk.adapters.remote.presets: vendor formats",
    "bar_sdk.adapters.server": "bar_sdk.adapters.server: a local vendor-like API",
    "bar_sdk.adapters.zoo": "bar_sdk.adapters.zoo: pretrained ImageNet models",
    "bar_sdk.adapters.ray": "bar_sdk.adapters.ray: Ray scale-out",
    "bar_sdk.attacks": "bar_sdk.attacks: query-counted attacks",
    "bar_sdk.audit": "bar_sdk.audit: audits of vendor models",
    "bar_sdk.transfer": "bar_sdk.transfer: transfer and baselines",
    "bar_sdk.plan": "bar_sdk.plan: cost before spending",
    "bar_sdk.reporting.files": "bar_sdk.reporting.files: output folders and JSON documents",
    "bar_sdk.reporting.plots": "bar_sdk.reporting.plots: plots, and the rule for a missing matplotlib",
    "bar_sdk.reporting.audit": "bar_sdk.reporting.audit: the audit's report files",
    "bar_sdk.distributed": "bar_sdk.distributed: shared budgets on Ray",
    "bar_sdk.zo": "bar_sdk.zo: zeroth-order estimators and optimizers",
}


CANONICAL: dict[int, str] = {}  # id(public object) -> the name it is documented under
BY_SHORT_NAME: dict[str, list[str]] = {}
KEEP: list[object] = []  # keeps the objects alive, so their ids stay theirs


def _module(name: str):
    importlib.import_module(name)
    return sys.modules[name]  # not getattr: the function bar_sdk.audit shadows its module's name


def _public(name: str) -> list[str]:
    module = _module(name)
    names = getattr(module, "__all__", None)
    if names is None:
        raise RuntimeError(f"{name} has no __all__; its public names cannot be listed")
    return list(names)


def _home(obj, candidates: list[str]) -> str:
    """The listed module closest to where ``obj`` is defined (longest dotted prefix), else the first listing."""
    defined = getattr(obj, "__module__", None) or ""
    best = [c for c in candidates if defined == c or defined.startswith(c + ".")]
    return max(best, key=len) if best else candidates[0]


def _first_line(obj) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def _kind(obj) -> str:
    if inspect.isclass(obj):
        return "exception" if issubclass(obj, BaseException) else "class"
    if callable(obj):
        return "function"
    return "data"


def _exception_tree() -> list[str]:
    from bar_sdk.errors import BarError

    lines: list[str] = []

    def walk(cls, depth):
        builtins = [b.__name__ for b in cls.__bases__ if b.__module__ == "builtins" and b is not Exception]
        extra = f" ({', '.join(builtins)})" if builtins else ""
        lines.append(f"{'  ' * depth}- :exc:`~bar_sdk.errors.{cls.__name__}`{extra}")
        lines.append("")
        for sub in sorted(cls.__subclasses__(), key=lambda c: c.__name__):
            if sub.__module__ == "bar_sdk.errors":
                walk(sub, depth + 1)

    walk(BarError, 0)
    return lines


def generate_api(out: Path) -> list[str]:
    """Write one page per public module into ``out``; return the problems found (undocumented names)."""
    out.mkdir(parents=True, exist_ok=True)
    listed: dict[int, list[str]] = {}
    objects: dict[tuple[str, str], object] = {}
    for mod in PUBLIC_MODULES:
        module = _module(mod)
        for name in _public(mod):
            obj = getattr(module, name)
            if inspect.ismodule(obj):  # a callable module (bar_sdk.audit): its own page documents it
                continue
            objects[mod, name] = obj
            listed.setdefault(id(obj), []).append(mod)
    problems = []
    for (_, name), obj in objects.items():
        home = _home(obj, listed[id(obj)])
        CANONICAL[id(obj)] = f"{home}.{name}"
        KEEP.append(obj)
    for full in set(CANONICAL.values()):
        BY_SHORT_NAME.setdefault(full.rsplit(".", 1)[1], []).append(full)
    for mod, title in PUBLIC_MODULES.items():
        lines = [
            title,
            "=" * len(title),
            "",
            # the docstring examples run in their package's public namespace, as doctest.testmod would
            ".. testsetup:: *",
            "",
            f"   from {mod} import *",
            "",
            f".. automodule:: {mod}",
            "   :no-members:",
            "",
            f".. currentmodule:: {mod}",
            "",
        ]
        if mod == "bar_sdk.errors":
            lines += ["The tree (each error also derives from the builtin in brackets):", ""] + _exception_tree()
        here: list[tuple[str, object, str]] = []
        elsewhere: list[tuple[str, object, str]] = []
        module = _module(mod)
        modules = [name for name in _public(mod) if inspect.ismodule(getattr(module, name))]
        for name in _public(mod):
            if name in modules:
                continue
            obj = objects[mod, name]
            home = _home(obj, listed[id(obj)])
            (here if home == mod else elsewhere).append((name, obj, home))
        if here:
            lines += ["Summary", "-------", "", ".. list-table::", "   :widths: 30 70", ""]
            for name, obj, _ in here:
                lines += [f"   * - :py:obj:`{name} <{mod}.{name}>`", f"     - {_first_line(obj) or ' '}"]
            lines.append("")
        if elsewhere or modules:
            lines += ["Also exported here", "------------------", ""]
            for name, _, home in elsewhere:
                lines.append(f"- ``{name}``: :py:obj:`{home}.{name}`")
            for name in modules:  # a module one calls like a function
                lines.append(f"- ``{name}``: the callable module :py:mod:`{getattr(module, name).__name__}`")
            lines.append("")
        if here:
            lines += ["Reference", "---------", ""]
        for name, obj, _ in here:
            kind = _kind(obj)
            if kind != "data" and not _first_line(obj):
                problems.append(f"{mod}.{name} is public (in __all__) but has no docstring")
            if kind == "data":
                lines += [f".. autodata:: {mod}.{name}"] + (["   :no-value:"] if _is_big(obj) else []) + [""]
            elif kind in ("class", "exception"):
                lines += [f".. auto{kind}:: {mod}.{name}", ""]
            else:
                lines += [f".. autofunction:: {mod}.{name}", ""]
        page = out / f"{mod}.rst"
        text = "\n".join(lines) + "\n"
        if not page.exists() or page.read_text() != text:  # unchanged pages keep their time stamp: no rebuild
            page.write_text(text)
    index = [
        "API reference",
        "=============",
        "",
        "Every public name (each package's ``__all__``), documented on the page of the package",
        "closest to where it is defined.",
        "",
        ".. toctree::",
        "   :maxdepth: 1",
        "",
    ]
    index += [f"   {mod}" for mod in PUBLIC_MODULES]
    (out / "index.rst").write_text("\n".join(index) + "\n")
    return problems


def _is_big(obj) -> bool:
    return len(repr(obj)) > 80


def generate_cli(out: Path) -> None:
    """``bar --help`` and ``bar <command> --help``, from the installed console script's entry point."""
    (script,) = entry_points(group="console_scripts", name="bar")
    target = script.value
    main = script.load()

    def help_text(argv: list[str]) -> str:
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf), contextlib.suppress(SystemExit):
            main(argv + ["--help"])
        return buf.getvalue()

    top = help_text([])
    found = re.search(r"\{([a-z0-9_,-]+)\}", top)
    commands = found.group(1).split(",") if found else []
    lines = [
        "Command line",
        "============",
        "",
        f"The ``bar`` console script (entry point ``{target}``). Every text below is its ``--help``,",
        "captured when these pages were built.",
        "",
        "bar",
        "---",
        "",
        ".. code-block:: text",
        "",
    ]
    lines += ["   " + line if line else "" for line in top.rstrip().splitlines()] + [""]
    for command in commands:
        lines += [f"bar {command}", "-" * (4 + len(command)), "", ".. code-block:: text", ""]
        lines += ["   " + line if line else "" for line in help_text([command]).rstrip().splitlines()] + [""]
    (out / "cli.rst").write_text("\n".join(lines) + "\n")


os.environ["COLUMNS"] = "100"  # argparse wraps its help at this width: the same page on every machine
_PROBLEMS = generate_api(DOCS / "api")
generate_cli(DOCS)


def _report_problems(app) -> None:
    from sphinx.util import logging as sphinx_logging

    log = sphinx_logging.getLogger("bar_sdk.docs")
    for problem in _PROBLEMS:
        log.warning(problem)


def _resolve(dotted: str):
    """The object at a dotted path (a module, then attributes), or None."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = _module(".".join(parts[:cut]))
        except Exception:
            continue
        trail = [(".".join(parts[:cut]), obj)]
        for part in parts[cut:]:
            try:
                obj = inspect.getattr_static(obj, part) if inspect.isclass(obj) else getattr(obj, part)
            except AttributeError:
                return None, []
            trail.append((part, obj))
        return obj, trail
    return None, []


def _canonical(dotted: str) -> str | None:
    """The documented name of the object at ``dotted`` (it may be reached by any public path)."""
    obj, trail = _resolve(dotted)
    if not trail:
        return None
    for i, (_, step) in enumerate(trail):
        home = CANONICAL.get(id(step))
        if home is not None:
            return ".".join([home] + [part for part, _ in trail[i + 1 :]])
    return None


def _missing_reference(app, env, node, contnode):
    """Resolve a reference Sphinx did not find, without hiding broken ones.

    A docstring may name a public object by any path it is reachable by (``bar_sdk.adapters.RemoteModel``,
    ``bar_sdk.adapters.remote.RemoteModel``) or by its bare name when that is unique among the documented
    names (``BARClassifier.fit``); those link to the one page that documents the object. A name that
    exists in the code but is not documented (a private hook such as ``Attack._attack_sample``, an
    internal module) is shown as code without a link. A name that exists nowhere stays a warning, an error
    under ``-W``: that is what a broken reference is.
    """
    if node.get("refdomain") != "py":
        return None
    target = node["reftarget"].lstrip("~.")
    module, cls = node.get("py:module"), node.get("py:class")
    scopes = [f"{module}.{cls}" if module and cls else None, module, None]
    context = _resolve(scopes[0])[0] if scopes[0] else None
    if context is not None and getattr(context, "__module__", None):
        scopes[1:1] = [f"{context.__module__}.{context.__qualname__}", context.__module__]
    tries = [f"{scope}.{target}" if scope else target for scope in scopes]
    head, _, rest = target.partition(".")
    for full in BY_SHORT_NAME.get(head, [])[:1] if len(BY_SHORT_NAME.get(head, [])) == 1 else []:
        tries.append(f"{full}.{rest}" if rest else full)
    domain = env.get_domain("py")
    for dotted in tries:
        home = _canonical(dotted)
        if home is not None and home != node["reftarget"]:
            for role in (node["reftype"], "obj"):
                found = domain.resolve_xref(env, node["refdoc"], app.builder, role, home, node, contnode)
                if found is not None:
                    return found
    for dotted in tries:
        if _resolve(dotted)[1]:
            return contnode
    if inspect.isclass(context) and node["reftype"] == "attr" and _sets_attribute(context, target):
        return contnode
    if (
        module
        and "." not in target
        and any(  # a name defined in a submodule of the page's package
            name.startswith(module + ".") and hasattr(sub, target) for name, sub in list(sys.modules.items())
        )
    ):
        return contnode
    return None


def _sets_attribute(cls, name: str) -> bool:
    """Whether ``cls`` (or a base) assigns ``self.<name>`` in its source: an instance attribute."""
    for klass in inspect.getmro(cls):
        try:
            source = inspect.getsource(klass)
        except (OSError, TypeError):
            continue
        if re.search(rf"self\.{re.escape(name)}\s*(:[^=]*)?=", source):
            return True
    return False


def setup(app) -> dict:
    app.connect("builder-inited", _report_problems)
    app.connect("missing-reference", _missing_reference)
    return {"parallel_read_safe": True}
