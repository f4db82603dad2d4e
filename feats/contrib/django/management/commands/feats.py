"""``manage.py feats ...``: the feats command line on the FEATS setting's Redis, namespace
and App (``manage.py feats list``, ``manage.py feats set PaymentProcessor premium ...``)."""

from __future__ import annotations

import argparse
import os
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from feats.contrib.django._settings import feats_settings


def cli_arguments(given: list[str]) -> list[str]:
    """The feats CLI's argv: FEATS' App unless ``--app`` was given; its Redis URL and
    namespace go through the environment the CLI reads (unless already set there)."""
    config = feats_settings()
    os.environ.setdefault("FEATS_REDIS_URL", config.redis_url)
    if config.namespace is not None:
        os.environ.setdefault("FEATS_NAMESPACE", config.namespace)
    if any(argument == "--app" or argument.startswith("--app=") for argument in given):
        return given
    return ["--app", config.app, *given]


class Command(BaseCommand):
    help = "The feats command line (feats --help), on settings.FEATS' Redis, namespace and App."

    def run_from_argv(self, argv: list[str]) -> None:
        # Everything after `feats` is the feats CLI's, --help included: no Django parsing.
        from feats._cli import cli

        cli.main(args=cli_arguments(argv[2:]), prog_name=f"{os.path.basename(argv[0])} feats")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("arguments", nargs=argparse.REMAINDER)

    def handle(self, *args: Any, **options: Any) -> None:
        # call_command("feats", "list"): the same, without leaving the process.
        from feats._cli import cli

        cli.main(
            args=cli_arguments(list(options["arguments"])), prog_name="feats", standalone_mode=False
        )
