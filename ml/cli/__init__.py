"""The `python -m ml` command line: one module per command group, each exposing
`add_parser(subparsers)` that registers its sub-commands with `func=` handlers."""
import argparse
import importlib

COMMAND_MODULES = ["demo", "generate", "precompute", "train", "judge", "evaluate"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ml", description="Distillery ML core")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"ml.cli.{name}").add_parser(subparsers)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args) or 0
