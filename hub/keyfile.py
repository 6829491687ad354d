"""Secret keys kept as files in HUB_KEYS_DIR (never in the database), made on first use by whichever process
comes first."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def read_or_create(directory: Path, name: str, make: Callable[[], bytes]) -> bytes:
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = directory / name
    if not path.exists():
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process made it first
        else:
            with os.fdopen(fd, "wb") as handle:
                handle.write(make())
    return path.read_bytes().strip()
