"""The `featviz` command: `featviz models`, `featviz layers MODEL`, `featviz render MODEL OBJECTIVE ...`.

User mistakes print one line on stderr and exit with code 2, never a traceback.
"""
from __future__ import annotations

import argparse
import sys
import warnings
from typing import Any, Callable, Sequence

from featviz.discovery import import_modules
from featviz.errors import FeatvizError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, like every other user mistake
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    parser = _Parser(prog="featviz", description="Feature visualization for PyTorch vision models.")
    subparsers = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for command in _commands():
        command.add_parser(subparsers)
    return parser


def _commands() -> list:
    """Every module of this package with an ``add_parser``: a subcommand is one module, nothing else lists it.
    The first steps of a session come first in ``featviz --help``; the rest follow alphabetically."""
    import_modules(__name__, __path__)
    first = ["models", "layers", "render"]
    commands = {
        name.rpartition(".")[2]: module
        for name, module in list(sys.modules.items())
        if name.startswith(f"{__name__}.") and hasattr(module, "add_parser")
    }
    names = [name for name in first if name in commands] + sorted(set(commands) - set(first))
    return [commands[name] for name in names]


def _one_line_warnings(previous: Callable[..., None]) -> Callable[..., None]:
    """A ``warnings.showwarning`` that prints featviz's own warnings as one ``featviz: warning: ...`` line on
    stderr (no file name, no source line) and hands every other warning to ``previous``."""

    def show(message: Any, category: type, filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
        if getattr(category, "__module__", "").startswith("featviz."):
            print(f"featviz: warning: {' '.join(str(message).split())}", file=file or sys.stderr)
        else:
            previous(message, category, filename, lineno, file, line)

    return show


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); return the exit code (0 ok, 2 user mistake, 130
    interrupted)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit:  # --help, or a malformed command line (already reported on one line)
        return int(exit.code or 0)
    try:
        with warnings.catch_warnings():
            # torch.load warns about a pickle's protocol before refusing it; the refusal is the one line printed.
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            warnings.showwarning = _one_line_warnings(warnings.showwarning)
            return int(args.run(args) or 0)
    except FeatvizError as error:
        message = " ".join(str(error).split())
        print(f"featviz: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("featviz: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `featviz layers MODEL | head`: the reader left, which is not an error
        sys.stdout = None
        return 0


if __name__ == "__main__":
    sys.exit(main())
