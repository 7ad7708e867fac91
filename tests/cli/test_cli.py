"""The ``bar`` command line: every subcommand registered; a broken import fails loudly."""

import importlib

import pytest

import bar_sdk.cli as cli


def _failing_import(monkeypatch, module_name, exc):
    """Make importing ``module_name`` (only) raise ``exc`` inside ``bar_sdk.cli``."""
    real = importlib.import_module

    def fake(name, *a):
        if name == module_name:
            raise exc
        return real(name, *a)

    monkeypatch.setattr(cli.importlib, "import_module", fake)


def test_every_subcommand_is_registered(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    assert all(command in out for command in ("demo", "audit", "plan", "serve"))


def test_a_broken_import_in_a_command_module_is_raised_not_hidden(monkeypatch):
    _failing_import(monkeypatch, "bar_sdk.cli.plan", ImportError("cannot import name 'plan_bar' from 'bar_sdk.plan'"))
    with pytest.raises(ImportError, match="plan_bar"):
        cli.main(["plan", "--help"])


def test_a_missing_module_of_our_own_is_raised_too(monkeypatch):
    _failing_import(
        monkeypatch,
        "bar_sdk.cli.audit",
        ModuleNotFoundError("No module named 'bar_sdk.audit_helpers'", name="bar_sdk.audit_helpers"),
    )
    with pytest.raises(ModuleNotFoundError, match="audit_helpers"):
        cli.main(["audit", "--help"])


def test_a_missing_optional_extra_names_the_extra(monkeypatch, capsys):
    _failing_import(
        monkeypatch, "bar_sdk.adapters.server.cli", ModuleNotFoundError("No module named 'starlette'", name="starlette")
    )
    assert cli.main(["serve", "--port", "8000"]) == 2
    err = capsys.readouterr().err
    assert "'server' extra" in err and "bar-sdk[server]" in err and "starlette" in err
