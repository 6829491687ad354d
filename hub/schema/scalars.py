"""Custom scalars, registered with the schema through StrawberryConfig.scalar_map."""

from __future__ import annotations

from typing import NewType

import strawberry
from strawberry.types.scalar import ScalarDefinition

# GraphQL's Int is 32-bit; point totals (balances, settlement sums) may not be.
BigInt = NewType("BigInt", int)

SCALARS: dict[object, ScalarDefinition] = {
    BigInt: strawberry.scalar(
        name="BigInt",
        description="An integer that may exceed 32 bits (point totals), serialised as a JSON number.",
        serialize=int,
        parse_value=int,
    )
}
