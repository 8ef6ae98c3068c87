"""AdminSessionRepo on SQLite and PostgreSQL: only hashes stored, expiry, revocation, the list, clean-up."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from bot.storage.admin_sessions import AdminSessionRepo, session_id
from bot.storage.database import Database
from bot.storage.schema import AdminSession

HOURS_8 = timedelta(hours=8)


@pytest.fixture
async def repo(database_url: str):
    db = Database(database_url)
    await db.migrate()
    try:
        yield AdminSessionRepo(db)
    finally:
        await db.close()


async def stored(repo: AdminSessionRepo) -> list[AdminSession]:
    async with repo.db.transaction() as session:
        return list(await session.scalars(select(AdminSession).order_by(AdminSession.created_at)))


async def set_expiry(repo: AdminSessionRepo, id_: str, moment: datetime) -> None:
    async with repo.db.transaction() as session:
        await session.execute(update(AdminSession).where(AdminSession.id == id_).values(expires_at=moment))


async def test_a_session_stores_only_the_hash_of_its_secret(repo) -> None:
    first = await repo.create(HOURS_8, "127.0.0.1")
    second = await repo.create(HOURS_8, "127.0.0.1")
    assert first != second and len(first) == 43
    rows = await stored(repo)
    assert {row.id for row in rows} == {hashlib.sha256(s.encode()).hexdigest() for s in (first, second)}
    assert all(first not in (row.id, row.client) and second not in (row.id, row.client) for row in rows)
    found = await repo.lookup(first)
    assert found is not None and found.id == session_id(first) and found.client == "127.0.0.1"
    assert found.expires_at - found.created_at == HOURS_8 and found.created_at.tzinfo is UTC


async def test_unknown_malformed_and_hash_values_open_nothing(repo) -> None:
    secret = await repo.create(HOURS_8)
    for value in ("", "forged", secrets.token_urlsafe(32), session_id(secret), secret + "x", secret[:-1],
                  "\x00" * 43, "' OR 1=1 --" + "a" * 32):
        assert await repo.lookup(value) is None, value
    assert await repo.lookup(secret) is not None


async def test_an_expired_session_opens_nothing_and_is_not_listed(repo) -> None:
    kept, expired = await repo.create(HOURS_8), await repo.create(HOURS_8)
    await set_expiry(repo, session_id(expired), datetime.now(UTC) - timedelta(seconds=1))
    assert await repo.lookup(expired) is None
    assert [r.id for r in await repo.active()] == [session_id(kept)]
    assert not await repo.revoke(session_id(expired))


async def test_revoking_one_leaves_the_others(repo) -> None:
    first, second = await repo.create(HOURS_8, "10.0.0.1"), await repo.create(HOURS_8, "10.0.0.2")
    assert await repo.revoke(session_id(first))
    assert not await repo.revoke(session_id(first))  # already revoked
    assert not await repo.revoke("0" * 64)
    assert await repo.lookup(first) is None and await repo.lookup(second) is not None
    assert [(r.id, r.client) for r in await repo.active()] == [(session_id(second), "10.0.0.2")]


async def test_revoke_all_ends_every_valid_session(repo) -> None:
    secrets_ = [await repo.create(HOURS_8) for _ in range(3)]
    await repo.revoke(session_id(secrets_[0]))
    assert await repo.revoke_all() == 2
    assert await repo.active() == [] and await repo.revoke_all() == 0
    assert [await repo.lookup(s) for s in secrets_] == [None, None, None]


async def test_the_list_is_oldest_first_with_times_in_utc(repo) -> None:
    first = await repo.create(HOURS_8, "a")
    second = await repo.create(timedelta(hours=1), "b" * 100)
    listed = await repo.active()
    assert [r.id for r in listed] == [session_id(first), session_id(second)]
    assert listed[1].client == "b" * 64  # the column's width
    now = datetime.now(UTC)
    assert all(r.created_at <= now < r.expires_at and r.expires_at.tzinfo is UTC for r in listed)


async def test_delete_expired_forgets_expired_and_revoked_rows_only(repo) -> None:
    live, expired, revoked = [await repo.create(HOURS_8) for _ in range(3)]
    await set_expiry(repo, session_id(expired), datetime.now(UTC) - timedelta(minutes=1))
    await repo.revoke(session_id(revoked))
    assert await repo.delete_expired() == 2
    assert [row.id for row in await stored(repo)] == [session_id(live)]
    assert await repo.lookup(live) is not None and await repo.delete_expired() == 0
