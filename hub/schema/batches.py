"""A member's nested fields, read once for every member a request hands out, then answered from memory.

Every resolver that hands out members (a page, entities, one member, a mutation's payload) calls `prefetch` with
the members' views before returning them. It finds the fields asked of those members (through fragments and
aliases, with their arguments) and runs each kind's batched domain read once for all of them, concurrently: a
page of a hundred members with points and tier is one statement per kind. The `Member` fields then answer
synchronously from what was read: no coroutine, task or future per member, which is what a list of a hundred
members spends most of its time on otherwise (strawberry's per-field cost doubles with each async hop).

What a read finds for a member is its answer or the domain's refusal (`ConsentRequired` where that member's
consent lacks the permission), stored per (kind, arguments) and view; answering raises the refusal.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from strawberry.types.nodes import SelectedField, Selection

from hub.consent.rule import MemberView
from hub.errors import DomainError
from hub.schema.context import Context, Info

T = TypeVar("T")
Load = Callable[[Context, Sequence[MemberView]], Awaitable[Sequence[Any]]]


@dataclass(frozen=True)
class Batch:
    """One kind of nested read with its arguments (the key), and how to read it for many members at once."""

    key: tuple[Hashable, ...]
    load: Load = field(compare=False, hash=False)


# What each nested field of Member needs read, given how it was selected (arguments, subfields): filled by the
# modules that define those fields (schema/members.py puts them together).
Needs = Callable[[SelectedField], list[Batch]]


def fields_of(selections: Iterable[Selection]) -> list[SelectedField]:
    """The fields of a selection, fragments (named or inline) opened."""
    found: list[SelectedField] = []
    for selection in selections:
        if isinstance(selection, SelectedField):
            found.append(selection)
        else:
            found.extend(fields_of(selection.selections))
    return found


def below(info: Info, *path: str) -> list[SelectedField]:
    """The fields asked at `path` below the field being resolved (e.g. `edges`, `node` below `members`)."""
    found = fields_of(s for root in fields_of(info.selected_fields) for s in root.selections)
    for name in path:
        found = fields_of(s for f in found if f.name == name for s in f.selections)
    return found


def argument(selected: SelectedField, name: str, kind: type[T]) -> T | None:
    """An argument as the resolver will get it: a variable arrives coerced, a literal as its source text (the
    document was validated against the schema, so `kind` reads it)."""
    value = selected.arguments.get(name)
    return None if value is None else kind(value)  # type: ignore[call-arg]


async def prefetch(info: Info, views: Sequence[MemberView], asked: list[SelectedField], needs: dict[str, Needs]):
    """Read every kind the `asked` member fields need, for all `views`, before any member is resolved."""
    if not views:
        return
    batches = {b for f in asked if f.name in needs for b in needs[f.name](f)}
    await asyncio.gather(*(_fetch(info.context, b, views) for b in batches))


async def _fetch(ctx: Context, batch: Batch, views: Sequence[MemberView]) -> None:
    store = ctx.batches.setdefault(batch.key, {})
    missing = list({v.member_id: v for v in views if v.member_id not in store}.values())
    if not missing:
        return
    try:
        # Shielded: a read cancelled mid-way (graphql-core cancels siblings of a failed field) would drop its
        # connection instead of returning it to the pool.
        found: Sequence[Any] = await asyncio.shield(batch.load(ctx, missing))
    except DomainError as refused:  # the arguments themselves (a `first` out of range): every member's answer
        found = [refused] * len(missing)
    store.update(zip((v.member_id for v in missing), found, strict=True))


def already_read(ctx: Context, batch: Batch, answers: Iterable[tuple[MemberView, Any]]) -> None:
    """Answers a resolver read on its way to handing the members out (so `prefetch` does not read them again)."""
    store = ctx.batches.setdefault(batch.key, {})
    for view, found in answers:
        store.setdefault(view.member_id, found)


def answer(info: Info, batch: Batch, view: MemberView) -> Any:
    """What the batch read for this member (raising the domain's refusal, if that was the answer)."""
    found = info.context.batches[batch.key][view.member_id]
    if isinstance(found, Exception):
        raise found
    return found
