"""mkdocs hook: the command-line reference (cli.md), written from `featviz.cli.build_parser()` while the site builds.

Nothing is written to docs/: the page is generated from the same argparse parsers that `featviz --help` prints,
so it cannot drift from them, and a command added to featviz/cli/ (one module with ``add_parser``) appears on it
without editing anything.
"""
from __future__ import annotations

import argparse
import copy

from mkdocs.structure.files import File

PAGE = "cli.md"
WIDTH = 80  # usage lines wrap at this width, so they fit the page's code blocks


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, tuple[str, argparse.ArgumentParser]]:
    """``{name: (one-line help, parser)}`` of ``parser``'s subcommands, in `featviz --help`'s order."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
            return {name: (helps.get(name, ""), sub) for name, sub in action.choices.items()}
    return {}


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _usage(parser: argparse.ArgumentParser) -> str:
    formatter = parser.formatter_class(prog=parser.prog, width=WIDTH)
    formatter.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups, prefix="")
    return formatter.format_help().strip()


def _argument_rows(parser: argparse.ArgumentParser) -> list[str]:
    formatter = parser.formatter_class(prog=parser.prog, width=WIDTH)
    rows = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction) or action.help == argparse.SUPPRESS:
            continue
        choices = list(action.choices) if action.choices is not None else None
        shown = copy.copy(action)
        shown.choices = None  # the choices go in the meaning column, not in the name: `--param KIND`, not {fft,...}
        if action.option_strings:
            metavar = "" if action.nargs == 0 else " " + formatter._format_args(shown, action.dest.upper())
            name = ", ".join(f"`{option}{metavar}`" for option in action.option_strings)
        else:
            name = f"`{formatter._format_args(shown, action.dest)}`"
        text = formatter._expand_help(action) if action.help else ""
        if choices is not None:
            listed = ", ".join(str(choice) for choice in choices)
            text = f"{text} (one of: {listed})" if text else f"one of: {listed}"
        rows.append(f"| {_cell(name)} | {_cell(text) or '—'} |")
    return rows


def page(parser: argparse.ArgumentParser | None = None) -> str:
    """The reference page's Markdown for ``parser`` (default: featviz's own)."""
    if parser is None:
        from featviz.cli import build_parser

        parser = build_parser()
    commands = _subcommands(parser)
    lines = [
        "# Command line",
        "",
        f"`featviz` has {len(commands)} commands. This page is generated from their argument parsers when the site is",
        "built, so it says what `featviz COMMAND --help` says. Every user mistake prints one line on stderr and exits",
        "with code 2, without a traceback and without leaving a half-written file.",
        "",
        "| command | what it does |",
        "|---|---|",
    ]
    lines += [f"| [{name}](#{name}) | {_cell(help)} |" for name, (help, _) in commands.items()]
    for name, (help, sub) in commands.items():
        lines += ["", f"## {name} {{#{name}}}", ""]
        if help:
            lines += [_cell(help)[:1].upper() + _cell(help)[1:] + ".", ""]
        if sub.description:
            lines += [_cell(sub.description), ""]
        lines += ["```text", _usage(sub), "```", ""]
        rows = _argument_rows(sub)
        if rows:
            lines += ["| argument | meaning |", "|---|---|", *rows]
        if sub.epilog:
            lines += ["", _cell(sub.epilog)]
    return "\n".join(lines) + "\n"


def on_files(files, config):
    files.append(File.generated(config, PAGE, content=page()))
    return files
