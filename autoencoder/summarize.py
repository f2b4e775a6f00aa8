"""Rebuild a sweep's summary (summary.md, summary.csv, summary.png): `python -m autoencoder.summarize <sweep folder>`."""

import sys
from pathlib import Path

from autoencoder.sweeps.summary import summarize
from autoencoder.utils.cli import command
from autoencoder.utils.errors import UserError


def main(argv: list[str] | None = None) -> None:
    """`argv`: the command line after the command's name (the console script passes none)."""
    argv = sys.argv[1:] if argv is None else argv
    with command():
        if len(argv) != 1:
            raise UserError("usage: python -m autoencoder.summarize <sweep folder>")
        summarize(Path(argv[0]))
        print((Path(argv[0]) / "summary.md").read_text(), end="")


if __name__ == "__main__":
    main()
