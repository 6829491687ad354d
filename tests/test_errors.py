"""Domain errors are mapped to a mutation's payload in one place (hub/schema/errors.py)."""

from __future__ import annotations

import logging
from enum import Enum

import pytest
import strawberry

from hub.errors import DomainError
from hub.schema.errors import ErrorCodes, mutation


@strawberry.enum
class ThingErrorCode(Enum):
    INVALID_INPUT = "INVALID_INPUT"


@strawberry.type
class ThingError:
    field: str | None
    message: str
    code: ThingErrorCode


@strawberry.type
class ThingPayload:
    thing: str | None = None
    errors: list[ThingError]


@strawberry.type
class Mutation:
    @mutation(extensions=[], description="Fails with the code it is given.")
    async def make_thing(self, code: str) -> ThingPayload:
        if code:
            raise DomainError(code, "no thing", "code")
        return ThingPayload(thing="made", errors=[])


@strawberry.type
class Query:
    ok: bool = True


SCHEMA = strawberry.Schema(query=Query, mutation=Mutation, extensions=[ErrorCodes])
MAKE = "mutation($code: String!) { makeThing(code: $code) { thing errors { field message code } } }"


async def test_a_domain_error_answers_in_the_payload() -> None:
    made = await SCHEMA.execute(MAKE, {"code": ""})
    assert made.data == {"makeThing": {"thing": "made", "errors": []}}
    refused = await SCHEMA.execute(MAKE, {"code": "INVALID_INPUT"})
    assert refused.errors is None
    assert refused.data == {
        "makeThing": {"thing": None, "errors": [{"field": "code", "message": "no thing", "code": "INVALID_INPUT"}]}
    }


async def test_a_code_missing_from_the_enum_is_an_internal_error_and_logged(caplog: pytest.LogCaptureFixture):
    with caplog.at_level(logging.ERROR, logger="hub.schema.errors"):
        result = await SCHEMA.execute(MAKE, {"code": "NOT_A_CODE"})
    assert result.data is None and result.errors
    assert "NOT_A_CODE is not in ThingErrorCode" in str(result.errors[0])
    ours = [r.getMessage() for r in caplog.records if r.name == "hub.schema.errors"]
    assert ours == ["NOT_A_CODE is not in ThingErrorCode"]
    caplog.clear()  # the suite's guard (conftest) would fail this test for the record it wanted
