"""Human output of the command line: stdout normally, stderr under --json so stdout stays one object."""

from __future__ import annotations

import argparse
import sys


def emit(args: argparse.Namespace, text: str) -> None:
    """Human output goes to stdout normally, to stderr under --json so stdout stays one object."""
    print(text, file=sys.stderr if args.json else sys.stdout, flush=True)
