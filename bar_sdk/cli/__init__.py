"""The ``bar`` command line: ``bar demo`` (the main job), ``bar audit``, ``bar plan``, ``bar serve``.

The app layer: it imports the core (``bar_sdk``) and the adapters; neither
imports it. One module per command, its parser next to its body
(``add_parser(subparsers)``): :mod:`bar_sdk.cli.demo`, :mod:`bar_sdk.cli.audit`,
:mod:`bar_sdk.cli.plan`, and the server's own :mod:`bar_sdk.adapters.server.cli`.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Any

__all__ = ["main"]

#: ``bar`` subcommand -> the module holding its ``add_parser(subparsers)``
COMMANDS = {
    "demo": "bar_sdk.cli.demo",
    "audit": "bar_sdk.cli.audit",
    "plan": "bar_sdk.cli.plan",
    "serve": "bar_sdk.adapters.server.cli",
}
#: third-party packages of the optional extras (a missing one is a missing extra; anything else is a bug)
EXTRA_PACKAGES = {
    "starlette": "server",
    "uvicorn": "server",
    "httpx": "remote",
    "tenacity": "remote",
    "requests": "remote",
    "PIL": "remote",
    "botocore": "remote",
    "torch": "torch",
    "onnxruntime": "onnx",
    "matplotlib": "report",
    "ray": "ray",
}


def missing_extra(exc: ModuleNotFoundError) -> str | None:
    """The optional extra whose package ``exc`` did not find, or None (then it is a bug: re-raise it)."""
    return EXTRA_PACKAGES.get((exc.name or "").split(".")[0])


def _missing_extra(command: str, extra: str, exc: ModuleNotFoundError):
    def run(args: Any) -> int:
        print(
            f"error: `bar {command}` needs the '{extra}' extra (pip install 'bar-sdk[{extra}]'); {exc}", file=sys.stderr
        )
        return 2

    return run


def _add_commands(sub: Any) -> None:
    """Register every subcommand; a broken import fails loudly, a missing optional extra says which one."""
    for command, module_name in COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            extra = missing_extra(exc)
            if extra is None:
                raise
            # takes any arguments (no option prefix), so `bar serve --port 1` reaches the message
            p = sub.add_parser(
                command,
                help=f"(needs the '{extra}' extra: pip install 'bar-sdk[{extra}]')",
                add_help=False,
                prefix_chars="\0",
            )
            p.add_argument("rest", nargs=argparse.REMAINDER)
            p.set_defaults(func=_missing_extra(command, extra, exc))
            continue
        module.add_parser(sub)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bar", description="bar-sdk: black-box adversarial reprogramming")
    parser.add_argument("-v", "--log-level", default="WARNING", help="logging level (default WARNING)")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_commands(sub)
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    return int(args.func(args) or 0)
