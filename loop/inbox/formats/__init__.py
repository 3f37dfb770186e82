"""The parser registry: each inbox format says whether it can read a file and streams its records."""

from loop.inbox.formats.base import (  # noqa: F401  the package's public names
    CHAOS_STYLES, MB, REGISTRY, SNIFF_BYTES, BadFile, BadRecord, Format, Options, Record, check_text, detect, register,
)

# Importing the format modules registers them, in order of precedence.
from loop.inbox.formats import zips  # noqa: E402,F401  binary magic, checked first
from loop.inbox.formats import jsonl  # noqa: E402,F401  one JSON object per line
from loop.inbox.formats import jsondoc  # noqa: E402,F401  one JSON document: a list or an object
from loop.inbox.formats import documents  # noqa: E402,F401  any other UTF-8 text
