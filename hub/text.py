"""What text the hub accepts from outside: the same rule for GraphQL variables, literals and forms.

A NUL character is refused by PostgreSQL and stored by SQLite; an unpaired surrogate cannot be encoded as UTF-8 at
all. Both are refused before any database sees them, so the two backends answer alike, and so is text longer
than any field of the API takes (each field's own, shorter limit is its domain's check).
"""

from __future__ import annotations

import re

MAX_TEXT = 4000  # characters; the longest text field of the API (a webhook URL) takes 2,000
MAX_JSON_DEPTH = 64  # objects and lists inside each other in a request body

_FORBIDDEN = re.compile("[\x00\ud800-\udfff]")


def problem(value: str, max_length: int = MAX_TEXT) -> str | None:
    """Why `value` is refused, or None."""
    if len(value) > max_length:
        return f"text longer than {max_length} characters"
    found = _FORBIDDEN.search(value)
    if found is None:
        return None
    return "a NUL character" if found.group() == "\x00" else "an unpaired surrogate (not Unicode text)"
