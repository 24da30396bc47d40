"""The `dualtrain` command: one subcommand per module in `dualtrain.commands`.

Bad input of any kind ends with exit code 2 and one line naming the value and
what was expected; never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from dualtrain.errors import ConfigError

EXIT_BAD_INPUT = 2


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line, not the usage block and a line."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    from dualtrain.commands import compare, lr_find, port, schedule, sweep, train

    parser = OneLineParser(prog="dualtrain", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    for module in (train, compare, port, sweep, lr_find, schedule):
        module.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    try:
        args = build_parser().parse_args(argv)
        return int(args.run(args) or 0)
    except (ConfigError, ValueError, ArithmeticError, OSError) as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"dualtrain: error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
