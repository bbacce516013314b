"""The command line: ``python -m playground COMMAND ...`` with noise, schedule, sample, edit, train, autoencoder,
distill and toy; the same services as the tabs, the same checks and sentences. Bad input prints one sentence and
exits with status 2."""

from __future__ import annotations

import sys

from playground.cli.parsers import build_parser


def main(argv: list[str] | None = None) -> int:
    from playground.cli import commands, training
    from playground.data.images import ImageError

    args = build_parser().parse_args(argv)
    run = {"noise": commands.run_noise, "schedule": commands.run_schedule, "sample": commands.run_sample,
           "edit": commands.run_edit,
           "toy": commands.run_toy, "train": training.run_train, "autoencoder": training.run_autoencoder,
           "distill": training.run_distill}
    try:
        return run[args.command](args)
    except (ImageError, ValueError, FileNotFoundError) as error:  # a sentence for the person, not a traceback
        print(f"error: {error}", file=sys.stderr)
        return 2
