"""The ``dfnb`` command line.  Each sub-command lives beside the code it drives:

- ``dfnb run CHAPTER --profile smoke|default|paper -p key=value``  (``dfnb.runner``)
- ``dfnb book --profile default``                                  (``dfnb.book``)
- ``dfnb data synth --out DIR --n N --seed S``                    (``dfnb.data.cli``)
- ``dfnb predict IMAGE_OR_DIR --method M --checkpoint PATH``      (``dfnb.predict``)

A module plugs in by defining ``add_parser(subparsers)`` that registers its
parser and sets ``func`` (called with the parsed namespace, returns an exit code).
"""
from __future__ import annotations

import argparse
import importlib
import sys

_SUBCOMMAND_MODULES = ("dfnb.runner", "dfnb.book", "dfnb.data.cli", "dfnb.predict")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dfnb", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for mod in _SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name == mod:
                continue
            raise
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run a sub-command; user errors (bad parameter, missing file, existing run) print one line, exit 2."""
    from dfnb.runner import ParameterError, RunExistsError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ParameterError, RunExistsError, FileNotFoundError, FileExistsError, NotADirectoryError) as e:
        print(f"dfnb {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
