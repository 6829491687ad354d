"""The base of every domain error: a stable code (public API), a message for people, and the input field."""

from __future__ import annotations


class DomainError(Exception):
    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
