"""FeedbackReport: what the dashboard and `tandem feedback report` show, and the feedback export.

Every figure is aggregated in SQL (the day of a timestamp and the length of a conversation are
the only dialect-specific expressions: `_day`, `_seconds_between`); a user who changes a thumb or
a rating counts once, with the latest value. The export streams in keyset pages.
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import case, exists, extract, func, select
from sqlalchemy.orm import aliased

from bot.storage.database import Database
from bot.storage.schema import Conversation, Feedback, FeedbackOffer, Message, Passage, Story

EXPORT_FIELDS = (
    "feedback_id", "kind", "value", "comment", "channel", "created_at", "conversation_id", "user_id",
    "message_id", "message_text", "message_skill", "message_flow", "message_node", "message_status",
    "user_message_text",
)


@dataclass(frozen=True)
class DayCount:
    day: str  # ISO date
    conversations: int
    turns: int
    users: int


@dataclass(frozen=True)
class ThumbStat:
    """Thumbs on the bot messages of one skill or one dialog-graph node."""

    key: str
    up: int
    down: int

    @property
    def total(self) -> int:
        return self.up + self.down

    @property
    def ratio(self) -> float | None:
        return self.up / self.total if self.total else None


@dataclass(frozen=True)
class CommentRow:
    created_at: str
    kind: str
    value: int | None
    comment: str
    conversation_id: str


@dataclass(frozen=True)
class StoryStats:
    """Story co-writing: `stories` and `thumbs_*` are over all time, the rest over the report window."""

    stories: int = 0
    stories_started: int = 0
    passages_user: int = 0
    passages_model: int = 0
    passages_edited: int = 0
    model_incomplete: int = 0  # model passages cut short (stopped, timed out, too long)
    # Model passages offered beside other candidates (a group of two or more; StoryService makes every
    # generated passage a candidate and takes a lone one itself), and those of them chosen.
    candidates: int = 0
    candidates_chosen: int = 0
    thumbs_up: int = 0
    thumbs_down: int = 0

    @property
    def passages(self) -> int:
        return self.passages_user + self.passages_model + self.passages_edited

    @property
    def candidate_choice_rate(self) -> float | None:
        return self.candidates_chosen / self.candidates if self.candidates else None

    @property
    def thumbs_up_ratio(self) -> float | None:
        total = self.thumbs_up + self.thumbs_down
        return self.thumbs_up / total if total else None


@dataclass
class FeedbackReport:
    """The numbers of the dashboard over the last `days` days (totals are over all time)."""

    days: int
    generated_at: str
    conversations: int = 0
    users: int = 0
    turns: int = 0
    by_day: list[DayCount] = field(default_factory=list)
    rating_count: int = 0
    rating_average: float | None = None
    rating_distribution: dict[int, int] = field(default_factory=dict)
    thumbs_by_skill: list[ThumbStat] = field(default_factory=list)
    thumbs_by_node: list[ThumbStat] = field(default_factory=list)
    offers: int = 0
    offers_answered: int = 0
    average_messages: float | None = None
    average_turns: float | None = None
    average_duration_s: float | None = None
    latest_comments: list[CommentRow] = field(default_factory=list)
    stories: StoryStats = field(default_factory=StoryStats)

    @property
    def offer_response_rate(self) -> float | None:
        return self.offers_answered / self.offers if self.offers else None

    @property
    def thumbs_up_ratio(self) -> float | None:
        up = sum(s.up for s in self.thumbs_by_skill)
        total = sum(s.total for s in self.thumbs_by_skill)
        return up / total if total else None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["rating_distribution"] = {str(k): v for k, v in self.rating_distribution.items()}
        for key in ("thumbs_by_skill", "thumbs_by_node"):
            data[key] = [asdict(s) | {"ratio": s.ratio} for s in getattr(self, key)]
        data["offer_response_rate"] = self.offer_response_rate
        data["thumbs_up_ratio"] = self.thumbs_up_ratio
        data["stories"] |= {"passages": self.stories.passages,
                            "candidate_choice_rate": self.stories.candidate_choice_rate,
                            "thumbs_up_ratio": self.stories.thumbs_up_ratio}
        return data

    def to_text(self) -> str:
        """The report for a terminal."""
        lines = [f"Tandem feedback report ({self.generated_at}, daily figures over {self.days} days)", ""]
        lines.append(f"conversations {self.conversations}   users {self.users}   turns {self.turns}")
        lines.append(f"average conversation: {_num(self.average_messages)} messages, {_num(self.average_turns)} "
                     f"turns, {_duration(self.average_duration_s)}")
        lines.append(f"rating: average {_num(self.rating_average, 2)} of {self.rating_count} "
                     f"rating(s); distribution " + "  ".join(f"{k}★ {self.rating_distribution.get(k, 0)}"
                                                           for k in range(1, 6)))
        lines.append(f"rating offers: {self.offers_answered}/{self.offers} answered ({_pct(self.offer_response_rate)})")
        lines.append(f"thumbs up overall: {_pct(self.thumbs_up_ratio)}")
        for title, stats in (("by skill", self.thumbs_by_skill), ("by dialog node", self.thumbs_by_node)):
            lines.append(f"thumbs {title}:")
            lines += [f"  {s.key:<32} {s.up:>4} up {s.down:>4} down  {_pct(s.ratio)}" for s in stats] or ["  (none)"]
        lines.append("per day (conversations / turns / users):")
        lines += [f"  {d.day}  {d.conversations:>4} {d.turns:>5} {d.users:>4}" for d in self.by_day if d.turns
                  or d.conversations] or ["  (no activity)"]
        st = self.stories
        lines.append(f"stories {st.stories} ({st.stories_started} started in the last {self.days} days)")
        lines.append(f"passages in the last {self.days} days: {st.passages} ({st.passages_user} user, "
                     f"{st.passages_model} model, {st.passages_edited} edited); "
                     f"{st.model_incomplete} model passage(s) incomplete")
        lines.append(f"alternatives: {st.candidates_chosen}/{st.candidates} chosen ({_pct(st.candidate_choice_rate)})")
        lines.append(f"passage thumbs: {st.thumbs_up} up, {st.thumbs_down} down ({_pct(st.thumbs_up_ratio)} up)")
        lines.append("latest comments:")
        lines += [f"  {c.created_at[:16]}  {c.kind}{'' if c.value is None else ' ' + str(c.value)}: "
                  f"{' '.join(c.comment.split())}" for c in self.latest_comments] or ["  (none)"]
        return "\n".join(lines) + "\n"


def _num(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.0f}%"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


def _utc(value: datetime) -> datetime:
    # SQLite gives naive datetimes back; everything is stored in UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


async def build_report(db: Database, *, days: int = 30, now: datetime | None = None,
                       comments: int = 10) -> FeedbackReport:
    """Every figure is aggregated by the database (a constant number of grouped queries, each on
    an index), so the report costs the same on a thousand messages and on millions."""
    now = _utc(now or datetime.now(UTC))
    first_day = now.date() - timedelta(days=days - 1)
    since = datetime.combine(first_day, datetime.min.time(), UTC)
    dialect = db.engine.dialect.name
    report = FeedbackReport(days=days, generated_at=now.isoformat(timespec="seconds"))
    async with db.transaction() as session:
        report.conversations, report.users = (await session.execute(
            select(func.count(), func.count(func.distinct(Conversation.user_id))).select_from(Conversation))).one()
        report.turns = await session.scalar(
            select(func.count()).select_from(Message).where(Message.author == "user")) or 0

        started_day = _day(Conversation.started_at, dialect)
        started = dict((await session.execute(
            select(started_day, func.count()).where(Conversation.started_at >= since).group_by(started_day))).all())
        turn_day = _day(Message.created_at, dialect)
        turns = {day: (count, users) for day, count, users in (await session.execute(
            select(turn_day, func.count(), func.count(func.distinct(Conversation.user_id)))
            .join(Conversation, Conversation.id == Message.conversation_id)
            .where(Message.author == "user", Message.created_at >= since).group_by(turn_day))).all()}

        # A user who changes a rating or a thumb counts once, with the latest value: a row counts
        # when no later row of the same kind has the same user and target (an anti-join on the
        # index of the target, where grouping by max(id) would hash every row first).
        later = aliased(Feedback)

        def latest(kind: str, target):
            return ~exists().where(later.kind == kind, getattr(later, target) == getattr(Feedback, target),
                                   later.user_id == Feedback.user_id, later.id > Feedback.id)

        ratings = dict((await session.execute(
            select(Feedback.value, func.count()).where(Feedback.kind == "rating", latest("rating", "conversation_id"))
            .group_by(Feedback.value))).all())
        ups, downs = _count_if(Feedback.value > 0), _count_if(Feedback.value < 0)
        # One pass over the thumbs, grouped by skill and node together (a few dozen groups),
        # summed both ways below.
        thumbs = (await session.execute(
            select(Message.skill, Message.flow, Message.node, ups, downs).select_from(Feedback)
            .join(Message, Message.id == Feedback.message_id)
            .where(Feedback.kind == "thumb", latest("thumb", "message_id"))
            .group_by(Message.skill, Message.flow, Message.node))).all()

        report.offers, report.offers_answered = (int(n) for n in (await session.execute(
            select(func.count(), _count_if(FeedbackOffer.answered.is_(True)))
            .where(FeedbackOffer.kind == "rating"))).one())

        # Conversation length and duration, over the conversations started in the window: from
        # the conversations to their messages (grouped by conversation id, which SQLite then
        # reads in index order), never a scan of every message.
        per_conversation = (
            select(func.count().label("messages"), _count_if(Message.author == "user").label("turns"),
                   func.min(Message.created_at).label("first"), func.max(Message.created_at).label("last"))
            .select_from(Conversation).join(Message, Message.conversation_id == Conversation.id)
            .where(Conversation.started_at >= since).group_by(Conversation.id).subquery())
        measured, average_messages, average_turns, average_duration = (await session.execute(
            select(func.count(), func.avg(per_conversation.c.messages), func.avg(per_conversation.c.turns),
                   func.avg(_seconds_between(per_conversation.c.first, per_conversation.c.last, dialect)))
        )).one()
        latest = (await session.execute(
            select(Feedback.created_at, Feedback.kind, Feedback.value, Feedback.comment, Feedback.conversation_id)
            .where(Feedback.comment.is_not(None)).order_by(Feedback.id.desc()).limit(comments)
        )).all()
        report.stories = await _story_stats(session, since)

    report.by_day = _by_day(first_day, days, started, turns)
    report.rating_count = sum(ratings.values())
    report.rating_distribution = {k: ratings.get(k, 0) for k in range(1, 6)}
    report.rating_average = (sum(k * n for k, n in ratings.items()) / report.rating_count
                             if report.rating_count else None)
    report.thumbs_by_skill = _thumb_stats((skill or "(none)", up, down) for skill, _, _, up, down in thumbs)
    report.thumbs_by_node = _thumb_stats((f"{flow}/{node}", up, down) for _, flow, node, up, down in thumbs
                                         if flow and node)
    if measured:
        report.average_messages = float(average_messages)
        report.average_turns = float(average_turns)
        # Milliseconds: SQLite's julianday() is a float of days, exact to about a microsecond.
        report.average_duration_s = round(float(average_duration or 0.0), 3)
    report.latest_comments = [
        CommentRow(_utc(r.created_at).isoformat(timespec="seconds"), r.kind, r.value, r.comment, r.conversation_id)
        for r in latest
    ]
    return report


def _count_if(condition):
    """CASE sums (not FILTER), so SQLite and PostgreSQL both run them."""
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def _day(column, dialect: str):
    """The UTC calendar day of a timestamp as 'YYYY-MM-DD'. SQLite keeps timestamps as UTC text
    ('2026-12-03 06:12:11.000000'), so the day is its first ten characters."""
    if dialect == "sqlite":
        return func.substr(column, 1, 10)
    return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD")


def _seconds_between(first, last, dialect: str):
    if dialect == "sqlite":
        return (func.julianday(last) - func.julianday(first)) * 86400.0
    return extract("epoch", last - first)


async def _story_stats(session, since: datetime) -> StoryStats:
    stories, started = (await session.execute(
        select(func.count(), _count_if(Story.created_at >= since)).select_from(Story))).one()
    by_author = {row[0]: row[1:] for row in (await session.execute(
        select(Passage.author, func.count(), _count_if(Passage.status == "incomplete"))
        .where(Passage.created_at >= since).group_by(Passage.author)
    )).all()}
    # Alternatives are candidates offered beside others: a lone candidate is taken by itself, so
    # counting it would make nearly every passage a "choice". Candidates are written together, so
    # the groups of the window are those of its passages.
    offered_together = (
        select(Passage.story_id, Passage.candidate_group)
        .where(Passage.candidate_group.is_not(None), Passage.created_at >= since)
        .group_by(Passage.story_id, Passage.candidate_group).having(func.count() > 1).subquery())
    candidates, chosen = (await session.execute(
        select(func.count(), _count_if(Passage.chosen_at.is_not(None))).select_from(Passage)
        .join(offered_together, (offered_together.c.story_id == Passage.story_id)
              & (offered_together.c.candidate_group == Passage.candidate_group))
        .where(Passage.created_at >= since, Passage.author == "model"))).one()
    thumbs = dict((await session.execute(
        select(Passage.rating, func.count()).where(Passage.rating.is_not(None)).group_by(Passage.rating)
    )).all())
    model = by_author.get("model", (0, 0))
    return StoryStats(
        stories=stories, stories_started=int(started),
        passages_user=by_author.get("user", (0,))[0], passages_model=model[0],
        passages_edited=by_author.get("edited", (0,))[0],
        model_incomplete=int(model[1]), candidates=int(candidates), candidates_chosen=int(chosen),
        thumbs_up=thumbs.get(1, 0), thumbs_down=thumbs.get(-1, 0),
    )


def _by_day(first_day: date, days: int, started: dict[str, int],
            turns: dict[str, tuple[int, int]]) -> list[DayCount]:
    out = []
    for offset in range(days):
        day = (first_day + timedelta(days=offset)).isoformat()
        day_turns, day_users = turns.get(day, (0, 0))
        out.append(DayCount(day, started.get(day, 0), day_turns, day_users))
    return out


def _thumb_stats(rows) -> list[ThumbStat]:
    table: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for key, up, down in rows:  # '' and NULL skills both read "(none)": one row for them
        table[key][0] += int(up)
        table[key][1] += int(down)
    return sorted((ThumbStat(k, up, down) for k, (up, down) in table.items()), key=lambda s: (-s.total, s.key))


# --- export -------------------------------------------------------------------------------------

EXPORT_BATCH = 500


async def iter_feedback_rows(db: Database, *, batch: int | None = None) -> AsyncIterator[dict[str, Any]]:
    """Every piece of feedback with the bot message it refers to and the user message before it,
    in id order, read `batch` rows at a time by id (keyset pages, one short transaction each): the
    export's memory stays constant however much feedback there is, and no transaction is held
    open while a slow client downloads."""
    batch = batch or EXPORT_BATCH
    bot = aliased(Message)
    asked = aliased(Message)
    after = 0
    while True:
        async with db.transaction() as session:
            # Columns, not ORM objects: the export reads each row once and never changes it.
            rows = (await session.execute(
                select(Feedback.id, Feedback.kind, Feedback.value, Feedback.comment, Feedback.channel,
                       Feedback.created_at, Feedback.conversation_id, Feedback.user_id, Feedback.message_id,
                       bot.text, bot.skill, bot.flow, bot.node, bot.status, asked.text)
                .outerjoin(bot, bot.id == Feedback.message_id)
                .outerjoin(asked, asked.id == bot.parent_id)
                .where(Feedback.id > after).order_by(Feedback.id).limit(batch)
            )).all()
        for row in rows:
            values = dict(zip(EXPORT_FIELDS, row, strict=True))
            values["created_at"] = _utc(row.created_at).isoformat(timespec="seconds")
            yield values
        if len(rows) < batch:
            return
        after = rows[-1].id


async def feedback_rows(db: Database) -> list[dict[str, Any]]:
    """The export as a list, for callers that want it whole (tests, small tools)."""
    return [row async for row in iter_feedback_rows(db)]


async def export_chunks(db: Database, fmt: str, *, report: dict[str, Any] | None = None) -> AsyncIterator[str]:
    """The feedback export as pieces of text, a page of rows at a time: CSV with a header, or
    JSON `{"report": ..., "feedback": [...]}` (the report only when given). The CLI and the
    dashboard write these pieces as they come."""
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=EXPORT_FIELDS, lineterminator="\n")
        writer.writeheader()
        async for row in iter_feedback_rows(db):
            # A spreadsheet would run a cell starting with = + - @ as a formula: quote it as text.
            writer.writerow({k: _cell(row.get(k)) for k in EXPORT_FIELDS})
            if out.tell() >= 64 * 1024:
                yield _drain(out)
        yield _drain(out)
        return
    if fmt != "json":
        raise ValueError(f"unknown export format {fmt!r}")
    head = "{" + (f'"report": {json.dumps(report, ensure_ascii=False)}, ' if report is not None else "")
    yield head + '"feedback": ['
    separator = "\n"
    async for row in iter_feedback_rows(db):
        yield separator + json.dumps(row, ensure_ascii=False)
        separator = ",\n"
    yield "\n]}\n"


def _drain(out: io.StringIO) -> str:
    text = out.getvalue()
    out.seek(0)
    out.truncate()
    return text


def _cell(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value
