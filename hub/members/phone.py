from __future__ import annotations

import phonenumbers

from hub.errors import DomainError


def normalise(raw: str, default_region: str) -> str:
    """Return the number in E.164 form, or raise INVALID_PHONE. Local numbers are read in `default_region`."""
    try:
        number = phonenumbers.parse(raw, default_region)
    except phonenumbers.NumberParseException as exc:
        raise DomainError("INVALID_PHONE", f"not a phone number: {raw!r}", "phone") from exc
    if not phonenumbers.is_valid_number(number):
        raise DomainError("INVALID_PHONE", f"not a valid phone number: {raw!r}", "phone")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
