"""The verb list of `pixsearch`: every listed verb imports and registers; nothing is skipped."""

from __future__ import annotations

import argparse
import importlib
import pkgutil

import pytest

import pixsearch.cli as cli


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The sub-verb parsers of `parser` by name ({} for a leaf)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _leaves(name: str, parser: argparse.ArgumentParser):
    """(path, parser) of every runnable command under `parser`, e.g. ("index build", ...)."""
    subs = _subparsers(parser)
    if not subs:
        yield name, parser
    for sub_name, sub in subs.items():
        yield from _leaves(f"{name} {sub_name}", sub)


def test_every_listed_verb_imports_and_registers():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="verb")
    for verb in cli.VERBS:
        importlib.import_module(f"pixsearch.cli.{verb}").register(sub)
        assert verb in sub.choices, f"{verb}.register() added no `{verb}` parser"
        for path, leaf in _leaves(verb, sub.choices[verb]):
            assert callable(leaf.get_default("func")), f"`{path}` sets no func"
    assert list(sub.choices) == list(cli.VERBS)


def test_parser_lists_exactly_the_verbs():
    assert list(_subparsers(cli.build_parser())) == list(cli.VERBS)


def test_every_verb_module_in_the_package_is_listed():
    # a module of pixsearch.cli with `register` is a verb; helpers (options, show) have none
    found = set()
    for info in pkgutil.iter_modules(cli.__path__):
        if hasattr(importlib.import_module(f"pixsearch.cli.{info.name}"), "register"):
            found.add(info.name)
    assert found == set(cli.VERBS)


def test_a_missing_verb_module_fails_loudly(monkeypatch):
    monkeypatch.setattr(cli, "VERBS", (*cli.VERBS, "no_such_verb"))
    with pytest.raises(ModuleNotFoundError):
        cli.build_parser()
