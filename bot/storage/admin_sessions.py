"""AdminSessionRepo: sign-ins to the /admin dashboard, kept as the sha256 of the cookie's secret.

The secret (secrets.token_urlsafe(32)) lives only in the admin's cookie; a stolen copy of the table
opens nothing. A session is valid until `expires_at` unless revoked (sign-out, `tandem admin revoke`),
and every worker sharing the database sees the same sessions.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, or_, select, update

from bot.storage.database import Database
from bot.storage.schema import AdminSession, utcnow

SECRET_BYTES = 32
# What token_urlsafe(32) makes: 43 characters of URL-safe base64. Anything else is refused before
# the database is asked.
_SECRET = re.compile(r"[A-Za-z0-9_-]{43}")
CLIENT_CHARS = 64  # the width of admin_sessions.client


def session_id(secret: str) -> str:
    """The row id of the session a cookie's secret opens: its sha256, in hex."""
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class AdminSessionRecord:
    id: str  # sha256 hex of the secret
    created_at: datetime  # UTC
    expires_at: datetime  # UTC
    client: str | None


class AdminSessionRepo:
    """Creates, finds, revokes and forgets admin sessions; one transaction per call."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, lifetime: timedelta, client: str | None = None) -> str:
        """A new session valid for `lifetime`; returns the secret for the cookie (stored only hashed)."""
        secret = secrets.token_urlsafe(SECRET_BYTES)
        now = utcnow()
        async with self.db.transaction() as session:
            session.add(AdminSession(id=session_id(secret), created_at=now, expires_at=now + lifetime,
                                     client=client[:CLIENT_CHARS] if client else None))
        return secret

    async def lookup(self, secret: str) -> AdminSessionRecord | None:
        """The session `secret` opens, if it is neither expired nor revoked."""
        if not _SECRET.fullmatch(secret):
            return None
        async with self.db.transaction() as session:
            row = await session.scalar(select(AdminSession).where(
                AdminSession.id == session_id(secret), AdminSession.revoked_at.is_(None),
                AdminSession.expires_at > utcnow()))
            return None if row is None else _record(row)

    async def revoke(self, id_: str) -> bool:
        """Revoke the session with row id `id_`; False when no valid session has it."""
        async with self.db.transaction() as session:
            result = await session.execute(
                update(AdminSession).where(AdminSession.id == id_, *_valid()).values(revoked_at=utcnow()))
            return result.rowcount > 0

    async def revoke_all(self) -> int:
        """Revoke every valid session (every signed-in browser signs in again); returns how many."""
        async with self.db.transaction() as session:
            result = await session.execute(update(AdminSession).where(*_valid()).values(revoked_at=utcnow()))
            return result.rowcount

    async def active(self) -> list[AdminSessionRecord]:
        """The valid sessions, oldest first."""
        async with self.db.transaction() as session:
            rows = await session.scalars(select(AdminSession).where(*_valid()).order_by(AdminSession.created_at))
            return [_record(row) for row in rows]

    async def delete_expired(self) -> int:
        """Forget the sessions no cookie can open any more (expired or revoked); returns how many."""
        async with self.db.transaction() as session:
            result = await session.execute(delete(AdminSession).where(
                or_(AdminSession.expires_at <= utcnow(), AdminSession.revoked_at.is_not(None))))
            return result.rowcount


def _valid() -> tuple:
    return AdminSession.revoked_at.is_(None), AdminSession.expires_at > utcnow()


def _utc(value: datetime) -> datetime:
    # SQLite gives naive datetimes back; everything is stored in UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _record(row: AdminSession) -> AdminSessionRecord:
    return AdminSessionRecord(row.id, _utc(row.created_at), _utc(row.expires_at), row.client)
