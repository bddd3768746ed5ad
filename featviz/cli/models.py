"""`featviz models`: the registered model names (plus the timm:/torchvision:/open_clip: prefixes)."""
from __future__ import annotations

import argparse

from featviz.models import list_models


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("models", help="list registered model names")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    for name in list_models():
        print(name)
    print("timm:NAME  torchvision:NAME  open_clip:ARCH/PRETRAINED  (any model of those libraries)")
    return 0
