"""`featviz models`: the registered model names, then every model source with its name syntax."""
from __future__ import annotations

import argparse

from featviz.models import list_models, list_sources


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `featviz models` on ``subparsers``, the `featviz` parser's subcommands.

    Example:
        >>> from featviz.cli import build_parser
        >>> build_parser().parse_args(["models"]).run is run
        True
    """
    parser = subparsers.add_parser("models", help="list registered model names and the model sources")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """With ``args``, the parsed command line: print one registered name a line, then one line per source: its
    syntax and what it loads.

    Example:
        >>> run(argparse.Namespace())
        efficientnet_lite0
        ...
        timm:NAME                  any timm model; NAME may carry a pretrained tag, e.g. timm:resnet18.a1_in1k
        ...
        0
    """
    for name in list_models():
        print(name)
    sources = list_sources()
    width = max((len(source.syntax) for source in sources), default=0)
    for source in sources:
        print(f"{source.syntax:<{width}}  {source.description}")
    return 0
