"""Human output of the command line: stdout normally, stderr under --json so stdout stays one object.

Everything printed for people goes through `clean`: text from files, records and models (a file
name, a domain tag, a model's answer) may hold terminal control sequences, which are shown as
visible escapes, never sent to the terminal. With --json, JSON's own escaping applies.
"""

from __future__ import annotations

import argparse
import re
import sys

# C0/C1 controls (but newline and tab), DEL, and bidirectional overrides that could reorder the screen.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def clean(value: object) -> str:
    """The text with every control character shown as a visible escape, e.g. ESC as \\x1b."""
    return _UNSAFE.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100 else f"\\u{ord(m.group()):04x}",
                       str(value))


def emit(args: argparse.Namespace, text: str) -> None:
    """Human output goes to stdout normally, to stderr under --json so stdout stays one object."""
    print(clean(text), file=sys.stderr if args.json else sys.stdout, flush=True)
