"""The command registry areas plug their CLI commands into, so each package owns its commands.

An area module (e.g. ``ingest.commands``) defines ``register(registry: CommandRegistry) -> None``
and is listed in ``newsflow.cli.COMMAND_MODULES``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

Handler = Callable[[argparse.Namespace], int]


def emit(args: argparse.Namespace, payload: dict[str, Any], text: str) -> None:
    """Print one JSON object with ``--json``, else the human-readable text."""
    if getattr(args, "json", False):
        sys.stdout.write(json.dumps(payload, ensure_ascii=False, default=str) + "\n")
    else:
        sys.stdout.write(text.rstrip("\n") + "\n")


class CommandRegistry:
    """Adds top-level commands and ``newsflow eval <name>`` commands to the parser."""

    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self._sub = parser.add_subparsers(dest="command", required=True)
        self._eval: Any = None

    def command(
        self, name: str, handler: Handler, help_text: str, json_flag: bool = True
    ) -> argparse.ArgumentParser:
        return self._add(self._sub, name, handler, help_text, json_flag)

    def eval_command(self, name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        """``newsflow eval NAME``: quality measurements, each with ``--json``."""
        if self._eval is None:
            group = self._sub.add_parser("eval", help="measure quality on a labelled data set")
            self._eval = group.add_subparsers(dest="eval_target", required=True)
        return self._add(self._eval, name, handler, help_text, True)

    @staticmethod
    def _add(
        sub: Any, name: str, handler: Handler, help_text: str, json_flag: bool
    ) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = sub.add_parser(name, help=help_text, description=help_text)
        parser.set_defaults(handler=handler)
        if json_flag:
            parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
        return parser
