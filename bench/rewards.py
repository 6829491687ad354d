"""Benchmarks for rewards, each a ratio against a baseline measured in the same run on the same server.

`quote`: `quoteBasket` (a three-line basket with points as cash: a tier read, the balance, the plan, one quote row
written) against the `member(id:)` read, both over GraphQL with random members, runs alternating.

`claim`: `claimReward` with 64 concurrent claimants on one reward (every claim holds the member's points, then
takes the reward's row lock to decrement its stock) against `redeemPoints(points: 1)` from the same 64
connections on random members (no shared row), and against claims of a reward with unlimited stock (the same
work without the shared row). Afterwards the stock must equal the limited reward's claims, every answered
claim must have written its row, and `hub ledger verify` must hold.

    python -m bench.rewards quote [--database postgresql://postgres@127.0.0.1:5432/postgres] [--runs 5]
    python -m bench.rewards claim [--database ...] [--runs 5] [--connections 64]

Needs wrk (Debian package `wrk`).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sys
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from bench.common import alternate, analyze, arguments, hub_server, prepared, token
from hub.points import ledger
from hub.points.verify import verify
from hub.rewards import catalogue
from hub.rewards.models import pos_quote, reward, reward_claim
from hub.state import Hub

PERMISSIONS = ["member:read", "points:earn", "points:redeem", "purchases:write"]
SCOPES = {*PERMISSIONS, "rewards:manage", "rewards:redeem"}
MEMBER = "query Member($id: ID!) { member(id: $id) { id externalId name birthday memberSince } }"
QUOTE = (
    "mutation Quote($input: QuoteBasketInput!) { quoteBasket(input: $input) { quote { id amountToPay "
    "pointsEarned maxPointsToRedeem lines { amountToPay pointsEarned } } errors { code } } }"
)
BASKET = (
    '"lines":[{"sku":"VIT-C","category":"vitamins","amount":"88.00"},'
    '{"sku":"RX-1","category":"rx","amount":"40.00","prescription":true},'
    '{"sku":"MASK","category":"personal care","amount":"19.90","quantity":2}],"pointsToRedeem":500'
)
CLAIM = "mutation Claim($input: ClaimRewardInput!) { claimReward(input: $input) { claim { id } errors { code } } }"
REDEEM = (
    "mutation Redeem($input: RedeemPointsInput!) { redeemPoints(input: $input) { transaction { id } errors { code } } }"
)

# Each request a random member; writes carry a key no other request used: the script's nonce, the second this wrk
# run loaded it (`alternate` runs one script several times: the same keys again would be replays, not claims), the
# thread, a counter.
LUA = """
local ids = {%(ids)s}
local started = os.time()
local counter = 0
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
wrk.headers["Authorization"] = "Bearer %(token)s"
wrk.headers["Content-Type"] = "application/json"
request = function()
  counter = counter + 1
  local id = ids[math.random(#ids)]
  local key = "%(nonce)s-" .. started .. "-" .. tid .. "-" .. counter
  local body = '{"query":"%(query)s","variables":' .. string.format('%(variables)s', id, key) .. '}'
  return wrk.format("POST", "/graphql", nil, body)
end
"""
VARIABLES = {
    "member": '{"id":"%s"}',
    "quote": '{"input":{"memberId":"%s",' + BASKET + "}}",
    "claim": '{"input":{"memberId":"%s","rewardId":"REWARD","idempotencyKey":"%s"}}',
    "unlimited": '{"input":{"memberId":"%s","rewardId":"UNLIMITED","idempotencyKey":"%s"}}',
    "redeem": '{"input":{"memberId":"%s","points":1,"idempotencyKey":"%s"}}',
}
QUERIES = {"member": MEMBER, "quote": QUOTE, "claim": CLAIM, "unlimited": CLAIM, "redeem": REDEEM}


async def fund(ready: Any) -> dict[str, str]:
    """Plenty of points for every member; a reward with stock enough for the whole run (every claim decrements its
    row), and one with unlimited stock (no shared row: what the stock's row costs, by difference)."""
    hub = Hub.create(ready.settings)
    now = hub.clock.now()
    for i, pairwise_id in enumerate(ready.seeded.member_ids):
        async with hub.db.write() as conn:
            earn = ledger.Earn(pairwise_id, 100_000_000, None, None, None, f"seed-{i}")
            await ledger.earn(conn, ready.seeded.partner_pk, earn, now, ready.settings.points_policy)
    found = {}
    async with hub.db.write() as conn:
        version = ready.settings.programme.at(now)
        for name, stock in (("REWARD", 10**8), ("UNLIMITED", None)):
            given = catalogue.RewardInput(kind="GIFT", name=name, points_cost=10, face_value="5.00", stock=stock)
            found[name] = (await catalogue.create(conn, ready.seeded.partner_pk, given, version, now)).public_id
    await hub.close()
    return found


async def check(ready: Any) -> dict[str, Any]:
    """What the run wrote (warm-up and probes included): every answered request must have written its row."""
    hub = Hub.create(ready.settings)
    async with hub.db.read() as conn:
        claims = int(await conn.scalar(select(func.count()).select_from(reward_claim)) or 0)
        quotes = int(await conn.scalar(select(func.count()).select_from(pos_quote)) or 0)
        left = int(await conn.scalar(select(reward.c.stock_left).where(reward.c.stock_left.is_not(None))) or 0)
        problems = await verify(conn)
    await hub.close()
    return {"claims_written": claims, "stock_taken": 10**8 - left, "quotes_written": quotes,
            "ledger_problems": len(problems)}  # fmt: skip


def variables_of(mode: str, rewards: dict[str, str]) -> str:
    text = VARIABLES[mode]
    for name, public_id in rewards.items():
        text = text.replace(name, public_id)
    return text


def script(ready: Any, mode: str, bearer: str, rewards: dict[str, str]) -> Any:
    path = ready.workdir / f"{mode}-{secrets.token_hex(4)}.lua"
    variables = variables_of(mode, rewards).replace('"', '\\"')
    path.write_text(
        LUA
        % {
            "ids": ",".join(f'"{i}"' for i in ready.seeded.member_ids),
            "token": bearer,
            "query": QUERIES[mode].replace('"', '\\"'),
            "nonce": secrets.token_hex(6),
            "variables": variables,
        }
    )
    return path


def main() -> None:
    which = sys.argv.pop(1) if len(sys.argv) > 1 and sys.argv[1] in ("quote", "claim") else "quote"
    args = arguments(runs=5, connections=64 if which == "claim" else 32).parse_args()
    ready = prepared(args.database, f"hub_bench_{which}", args.members, PERMISSIONS, SCOPES)
    rewards = asyncio.run(fund(ready))
    analyze(ready.url)
    modes = ("quote", "member") if which == "quote" else ("claim", "redeem", "unlimited")
    with hub_server(ready.url, ready.workdir, pool=32 if which == "claim" else 10) as base:
        bearer = token(base, ready.seeded)
        auth = {"Authorization": f"Bearer {bearer}"}
        for mode in modes:  # each request works before anything is measured
            body = variables_of(mode, rewards) % tuple(
                [ready.seeded.member_ids[0], "probe-" + mode][: VARIABLES[mode].count("%s")]
            )
            answer = httpx.post(base + "/graphql", json={"query": QUERIES[mode], "variables": json.loads(body)},
                                headers=auth).json()  # fmt: skip
            found = next(iter(answer["data"].values()))
            assert found and not found.get("errors"), answer
        targets = {mode: (base, script(ready, mode, bearer, rewards)) for mode in modes}
        measured = alternate(targets, args.runs, args.seconds, args.connections)
    first, baseline = (measured["medians"][m] for m in modes[:2])
    report = {
        "benchmark": which,
        "database": make_url(ready.url).get_backend_name(),
        "connections": args.connections,
        "runs": measured["runs"],
        f"{modes[0]}_median_rps": first,
        f"{modes[1]}_median_rps": baseline,
        "ratio": round(first / baseline, 3),
    }
    if which == "claim":
        report["unlimited_median_rps"] = measured["medians"]["unlimited"]
        report["claim_over_unlimited"] = round(first / measured["medians"]["unlimited"], 3)
    report["measured_requests"] = measured["requests"]
    report |= asyncio.run(check(ready))
    written = report["claims_written"] if which == "claim" else report["quotes_written"]
    answered = measured["requests"][modes[0]] + measured["requests"].get("unlimited", 0)
    if written < answered:  # an answer without its row: an error or a replay, not a figure
        sys.exit(f"only {written} rows for {answered} answered requests: {report}")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
