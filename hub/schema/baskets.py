"""A basket's line, as a till sends it: to recordPurchase, and to quoteBasket (the same lines, so a quoted basket is
recorded as it was quoted)."""

from __future__ import annotations

import strawberry


@strawberry.input
class PurchaseLineInput:
    sku: str
    category: str
    amount: str = strawberry.field(
        description='The line\'s total in yuan, a decimal string: "39.90" (at list price in a quote, and when '
        "recording a quoted basket)"
    )
    quantity: int = 1
    prescription: bool = False
    insurer_paid: bool = False
    discountable: bool = strawberry.field(
        default=True, description="False: no tier discount, coupon or points as cash on this line (quoteBasket)"
    )
