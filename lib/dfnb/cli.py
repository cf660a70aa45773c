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
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
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
    """Run a sub-command.  A user error (bad parameter, missing file, existing run, and any
    ``ValueError`` / ``KeyError`` the library raises about its input) prints one line naming it and
    exits with 2; ``dfnb --debug ...`` shows the traceback instead."""
    from dfnb.runner import ParameterError, RunExistsError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ParameterError, RunExistsError, FileNotFoundError, FileExistsError, NotADirectoryError,
            PermissionError, ValueError, KeyError) as e:
        if args.debug:
            raise
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"dfnb {args.command}: error: {msg} (dfnb --debug {args.command} ... for the traceback)",
              file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
