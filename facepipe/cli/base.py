"""What the command modules share: the one error a user can fix, the subcommand registry they add their parsers
to, and the operator commands' `--stack` / `--local` options with the Target they name. The CLI is the one place
that knows both kinds of Target: a deployed stack (facepipe.ops) and the local stack (facepipe.local)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TypeAlias

from facepipe import ops
from facepipe.ops import Target

Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
Command: TypeAlias = Callable[[argparse.Namespace], int]


class CliError(Exception):
    """A problem the user can fix: printed as one line, exit status 1."""


def target_options() -> argparse.ArgumentParser:
    """The parent parser of every operator command: which stack it acts on."""
    target = argparse.ArgumentParser(add_help=False)
    where = target.add_mutually_exclusive_group()
    where.add_argument(
        "--stack", default="Facepipe", help="deployed stack name (default Facepipe; AWS env decides region)"
    )
    where.add_argument("--local", action="store_true", help="the running `python -m facepipe local up` stack")
    return target


def operator_command(sub: Subcommands, name: str, help: str, example: str, func: Command) -> argparse.ArgumentParser:
    """An operator command's parser: its help, an example, and the --stack/--local options."""
    parser = sub.add_parser(
        name,
        help=help,
        description=help,
        parents=[target_options()],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"example:\n  {example}",
    )
    parser.set_defaults(func=func)
    return parser


def target_of(args: argparse.Namespace) -> Target:
    """The stack an operator command acts on: the local one (`--local`, from the state `local up` wrote), else the
    deployed stack named by `--stack`. Looked up on the modules at call time, so tests can put their own."""
    if args.local:
        import facepipe.local as local_mode  # the local stack's modules load only for --local

        return local_mode.local_target()
    return ops.stack_target(args.stack)
