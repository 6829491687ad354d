"""Custom scalars, registered with the schema through StrawberryConfig.scalar_map."""

from __future__ import annotations

import datetime as dt
from typing import NewType

import dateutil.parser
import strawberry
from strawberry.types.scalar import ScalarDefinition

from hub.errors import DomainError

# Instants and dates the hub accepts: anything outside cannot be a member's birthday or a purchase, and near the
# ends of Python's range a time zone offset overflows on conversion to UTC.
FIRST_YEAR, LAST_YEAR = 1900, 2100

# GraphQL's Int is 32-bit; point totals (balances, settlement sums) may not be.
BigInt = NewType("BigInt", int)


def _in_range(year: int, what: str) -> None:
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise DomainError("INVALID_INPUT", f"{what} must be in the years {FIRST_YEAR} to {LAST_YEAR}")


def _text(value: object, what: str) -> str:
    # Not ISO 8601 at all is a malformed variable (GRAPHQL_VALIDATION_FAILED), as for any scalar.
    if not isinstance(value, str) or len(value) > 64:
        raise ValueError(f"{what} is an ISO 8601 string")
    return value


def parse_datetime(value: object) -> dt.datetime:
    """ISO 8601 with a zone offset; the year within FIRST_YEAR..LAST_YEAR (and so is its UTC instant)."""
    try:
        parsed = dateutil.parser.isoparse(_text(value, "a DateTime"))
    except OverflowError:
        raise DomainError("INVALID_INPUT", f"a DateTime must be in the years {FIRST_YEAR} to {LAST_YEAR}") from None
    except ValueError:
        raise ValueError("not an ISO 8601 date and time") from None
    _in_range(parsed.year, "a DateTime")
    if parsed.tzinfo is not None:
        _in_range(parsed.astimezone(dt.UTC).year, "a DateTime")
    return parsed


def parse_date(value: object) -> dt.date:
    """ISO 8601; a calendar date cannot overflow, so its range is each field's rule (a birthday's, say)."""
    try:
        return dt.date.fromisoformat(_text(value, "a Date"))
    except ValueError:
        raise ValueError("not an ISO 8601 date") from None


SCALARS: dict[object, ScalarDefinition] = {
    dt.datetime: strawberry.scalar(
        name="DateTime",
        description=f"Date with time (ISO 8601), years {FIRST_YEAR} to {LAST_YEAR}",
        serialize=dt.datetime.isoformat,
        parse_value=parse_datetime,
    ),
    dt.date: strawberry.scalar(
        name="Date",
        description="Date (ISO 8601)",
        serialize=dt.date.isoformat,
        parse_value=parse_date,
    ),
    BigInt: strawberry.scalar(
        name="BigInt",
        description="An integer that may exceed 32 bits (point totals), serialised as a JSON number.",
        serialize=int,
        parse_value=int,
    ),
}
