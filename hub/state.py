"""The long-lived parts one hub process shares between requests."""

from __future__ import annotations

from dataclasses import dataclass

from hub.auth.keys import KeyStore
from hub.clock import Clock
from hub.config import Settings
from hub.db import Database


@dataclass
class Hub:
    settings: Settings
    db: Database
    keys: KeyStore
    clock: Clock

    @classmethod
    def create(cls, settings: Settings, clock: Clock | None = None) -> Hub:
        return cls(
            settings=settings,
            db=Database(settings.database_url, settings.db_pool_size),
            keys=KeyStore(settings.keys_dir),
            clock=clock or Clock(),
        )
