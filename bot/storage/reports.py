"""FeedbackReport: what the dashboard and `tandem feedback report` show, and the feedback export.

Queries stay portable (SQLite and PostgreSQL): rows are grouped by day and de-duplicated in
Python rather than with dialect-specific date functions. A user who changes a thumb or a rating
counts once, with the latest value.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import case, func, select
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
    now = _utc(now or datetime.now(UTC))
    first_day = now.date() - timedelta(days=days - 1)
    since = datetime.combine(first_day, datetime.min.time(), UTC)
    report = FeedbackReport(days=days, generated_at=now.isoformat(timespec="seconds"))
    async with db.transaction() as session:
        report.conversations = await session.scalar(select(func.count()).select_from(Conversation)) or 0
        report.users = await session.scalar(select(func.count(func.distinct(Conversation.user_id)))) or 0
        report.turns = await session.scalar(
            select(func.count()).select_from(Message).where(Message.author == "user")) or 0

        started = (await session.scalars(select(Conversation.started_at).where(Conversation.started_at >= since))).all()
        turn_rows = (await session.execute(
            select(Message.created_at, Conversation.user_id)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .where(Message.author == "user", Message.created_at >= since)
        )).all()

        ratings = (await session.execute(
            select(Feedback.conversation_id, Feedback.user_id, Feedback.value)
            .where(Feedback.kind == "rating").order_by(Feedback.id)
        )).all()
        thumbs = (await session.execute(
            select(Feedback.message_id, Feedback.user_id, Feedback.value, Message.skill, Message.flow, Message.node)
            .join(Message, Message.id == Feedback.message_id)
            .where(Feedback.kind == "thumb").order_by(Feedback.id)
        )).all()
        report.offers = await session.scalar(
            select(func.count()).select_from(FeedbackOffer).where(FeedbackOffer.kind == "rating")) or 0
        report.offers_answered = await session.scalar(
            select(func.count()).select_from(FeedbackOffer)
            .where(FeedbackOffer.kind == "rating", FeedbackOffer.answered.is_(True))) or 0

        lengths = (await session.execute(
            select(func.count(), func.sum(case((Message.author == "user", 1), else_=0)),
                   func.min(Message.created_at), func.max(Message.created_at))
            .group_by(Message.conversation_id)
        )).all()
        latest = (await session.execute(
            select(Feedback.created_at, Feedback.kind, Feedback.value, Feedback.comment, Feedback.conversation_id)
            .where(Feedback.comment.is_not(None)).order_by(Feedback.id.desc()).limit(comments)
        )).all()
        report.stories = await _story_stats(session, since)

    report.by_day = _by_day(first_day, days, started, turn_rows)
    _add_ratings(report, ratings)
    report.thumbs_by_skill, report.thumbs_by_node = _thumb_stats(thumbs)
    if lengths:
        report.average_messages = sum(r[0] for r in lengths) / len(lengths)
        report.average_turns = sum(int(r[1] or 0) for r in lengths) / len(lengths)
        report.average_duration_s = sum((_utc(r[3]) - _utc(r[2])).total_seconds() for r in lengths) / len(lengths)
    report.latest_comments = [
        CommentRow(_utc(r.created_at).isoformat(timespec="seconds"), r.kind, r.value, r.comment, r.conversation_id)
        for r in latest
    ]
    return report


async def _story_stats(session, since: datetime) -> StoryStats:
    """Four grouped counts; CASE sums (not FILTER) so SQLite and PostgreSQL both run them."""

    def count_if(condition):
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    stories, started = (await session.execute(
        select(func.count(), count_if(Story.created_at >= since)).select_from(Story))).one()
    by_author = {row[0]: row[1:] for row in (await session.execute(
        select(Passage.author, func.count(), count_if(Passage.status == "incomplete"))
        .where(Passage.created_at >= since).group_by(Passage.author)
    )).all()}
    # Alternatives are candidates offered beside others: a lone candidate is taken by itself, so
    # counting it would make nearly every passage a "choice".
    offered_together = (
        select(Passage.story_id, Passage.candidate_group).where(Passage.candidate_group.is_not(None))
        .group_by(Passage.story_id, Passage.candidate_group).having(func.count() > 1).subquery())
    candidates, chosen = (await session.execute(
        select(func.count(), count_if(Passage.chosen_at.is_not(None))).select_from(Passage)
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


def _by_day(first_day: date, days: int, started, turn_rows) -> list[DayCount]:
    conversations: Counter[date] = Counter(_utc(t).date() for t in started)
    turns: Counter[date] = Counter()
    users: dict[date, set[int]] = defaultdict(set)
    for created_at, user_id in turn_rows:
        day = _utc(created_at).date()
        turns[day] += 1
        users[day].add(user_id)
    out = []
    for offset in range(days):
        day = first_day + timedelta(days=offset)
        out.append(DayCount(day.isoformat(), conversations[day], turns[day], len(users[day])))
    return out


def _add_ratings(report: FeedbackReport, rows) -> None:
    latest: dict[tuple[str, int], int] = {}
    for conversation_id, user_id, value in rows:  # id order: a later rating replaces an earlier one
        latest[(conversation_id, user_id)] = value
    values = list(latest.values())
    report.rating_count = len(values)
    report.rating_distribution = {k: values.count(k) for k in range(1, 6)}
    report.rating_average = sum(values) / len(values) if values else None


def _thumb_stats(rows) -> tuple[list[ThumbStat], list[ThumbStat]]:
    latest: dict[tuple[int, int], tuple[int, str, str | None]] = {}
    for message_id, user_id, value, skill, flow, node in rows:
        node_key = f"{flow}/{node}" if flow and node else None
        latest[(message_id, user_id)] = (value, skill or "(none)", node_key)
    by_skill: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    by_node: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for value, skill, node_key in latest.values():
        slot = 0 if value > 0 else 1
        by_skill[skill][slot] += 1
        if node_key:
            by_node[node_key][slot] += 1

    def stats(table: dict[str, list[int]]) -> list[ThumbStat]:
        return sorted((ThumbStat(k, up, down) for k, (up, down) in table.items()), key=lambda s: (-s.total, s.key))

    return stats(by_skill), stats(by_node)


# --- export -------------------------------------------------------------------------------------

async def feedback_rows(db: Database) -> list[dict[str, Any]]:
    """Every piece of feedback with the bot message it refers to and the user message before it."""
    bot = aliased(Message)
    asked = aliased(Message)
    async with db.transaction() as session:
        rows = (await session.execute(
            select(Feedback, bot.text, bot.skill, bot.flow, bot.node, bot.status, asked.text)
            .outerjoin(bot, bot.id == Feedback.message_id)
            .outerjoin(asked, asked.id == bot.parent_id)
            .order_by(Feedback.id)
        )).all()
    return [
        {
            "feedback_id": f.id, "kind": f.kind, "value": f.value, "comment": f.comment, "channel": f.channel,
            "created_at": _utc(f.created_at).isoformat(timespec="seconds"), "conversation_id": f.conversation_id,
            "user_id": f.user_id, "message_id": f.message_id, "message_text": text, "message_skill": skill,
            "message_flow": flow, "message_node": node, "message_status": status, "user_message_text": asked_text,
        }
        for f, text, skill, flow, node, status, asked_text in rows
    ]


def rows_to_csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=EXPORT_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        # A spreadsheet would run a cell starting with = + - @ as a formula: quote it as text.
        writer.writerow({k: _cell(row.get(k)) for k in EXPORT_FIELDS})
    return out.getvalue()


def rows_to_json(rows: list[dict[str, Any]]) -> str:
    return json.dumps({"feedback": rows}, ensure_ascii=False, indent=2)


def _cell(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value
