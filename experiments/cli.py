"""The `dreamgym` command: one entry point, one module per subcommand.

Each module in `experiments/commands/` defines `NAME`, `HELP`, `add_arguments(parser)` and
`run(args) -> int`; it is found here without being listed.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from experiments import commands


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand in `experiments.commands`."""
    parser = argparse.ArgumentParser(
        prog="dreamgym",
        description="Train agents inside learned world models (Gymnasium-compatible).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"experiments.commands.{info.name}")
        # argparse %-formats help strings: a literal "95%" must reach it as "95%%"
        p = sub.add_parser(
            module.NAME, help=module.HELP.replace("%", "%%"), description=module.HELP
        )
        module.add_arguments(p)
        p.set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and run one subcommand; bad input ends in one `error:` line."""
    from gymnasium.error import Error as GymnasiumError
    from gymnasium.error import UnregisteredEnv

    args = build_parser().parse_args(argv)
    try:
        code = args.run(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        code = 130
    except GymnasiumError as err:  # e.g. an unknown env id, a negative seed
        unknown = isinstance(err, UnregisteredEnv)
        hint = " (`import envs` registers dreamgym's ids)" if unknown else ""
        print(f"error: {err}{hint}", file=sys.stderr)
        code = 2
    except (OSError, ValueError, ImportError) as err:  # OSError: missing files, permissions
        print(f"error: {err}", file=sys.stderr)
        code = 2
    sys.exit(code or 0)


if __name__ == "__main__":
    main()
