"""FeedbackReport and the feedback export on SQLite and PostgreSQL, from known conversations."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, time, timedelta

from sqlalchemy import update

from bot.core.state import DialogState
from bot.storage.conversations import ConversationRepo, NewMessage
from bot.storage.database import Database
from bot.storage.feedback import FeedbackRepo
from bot.storage import reports
from bot.storage.reports import StoryStats, build_report, export_chunks, feedback_rows
from bot.storage.schema import Message, Passage, Story
from bot.storage.stories import NewPassage, StoryRepo


async def turn(repo: ConversationRepo, conversation: str, text: str, answer: str, **bot_fields) -> int:
    await repo.add_user_message(conversation, NewMessage("user", text))
    return await repo.finish_turn(conversation, NewMessage("bot", answer, **bot_fields), DialogState())


async def seed(db: Database) -> dict:
    repo, feedback = ConversationRepo(db), FeedbackRepo(db)
    ann = await repo.user_for("web", "ann")
    bob = await repo.user_for("web", "bob")
    first = await repo.open_conversation(ann, "web")
    helped = await turn(repo, first, "help", "I can help.", skill="help")
    greeted = await turn(repo, first, "hi", "Hello!", skill="graph", flow="onboarding", node="greet")
    second = await repo.open_conversation(bob, "web")
    told = await turn(repo, second, "a story", "Once upon a time", skill="story")
    await feedback.add_thumb(helped, ann, True)
    await feedback.add_thumb(greeted, ann, True)
    await feedback.add_thumb(greeted, ann, False)  # changed their mind: the latest counts
    await feedback.add_thumb(told, bob, False)
    await feedback.add_offer(first, "rating")
    await feedback.add_offer(second, "rating")
    await feedback.add_rating(first, ann, 2)
    await feedback.add_rating(first, ann, 4, "=HYPERLINK(\"x\") nice")
    await feedback.add_comment(second, bob, "too short", message_id=told)
    # Make the first conversation last two minutes, a day ago, and the second last no time at all
    # (not however long the machine took between its two messages).
    now = datetime.now(UTC)
    day_ago = now - timedelta(days=1)
    async with db.transaction() as session:
        await session.execute(update(Message).where(Message.conversation_id == second).values(created_at=now))
        await session.execute(update(Message).where(Message.conversation_id == first).values(created_at=day_ago))
        await session.execute(update(Message).where(Message.id == greeted)
                              .values(created_at=day_ago + timedelta(minutes=2)))
    return {"first": first, "second": second, "helped": helped, "told": told}


def window_start(now: datetime, days: int) -> datetime:
    """The first instant build_report counts for `days` (midnight UTC, days - 1 days back)."""
    return datetime.combine(now.date() - timedelta(days=days - 1), time.min, UTC)


async def seed_stories(db: Database, since: datetime) -> None:
    """Three stories: `fresh` now, `edge` exactly at the window start (inside), `old` a second before it
    (outside: it and its passages count in the all-time totals only)."""
    stories = StoryRepo(db)
    ann = await ConversationRepo(db).user_for("web", "ann")
    fresh = (await stories.create_story(ann, "Fresh")).id
    _, (opening, told) = await stories.add_passages(ann, fresh, [
        NewPassage("user", "Once"), NewPassage("model", "upon a time", parent_index=0)])
    _, (kept, _cut) = await stories.add_passages(ann, fresh, [
        NewPassage("model", "there was", parent_id=told.id, candidate=True),
        NewPassage("model", "there w", parent_id=told.id, candidate=True, status="incomplete")])
    await stories.move_cursor(ann, fresh, kept.id, {}, chosen_id=kept.id)
    _, (edited,) = await stories.add_passages(ann, fresh, [
        NewPassage("edited", "upon a night", parent_id=opening.id, source_id=told.id)])
    edge = (await stories.create_story(ann, "Edge")).id
    # A lone candidate, taken by itself: no alternative was offered, so it is no choice.
    _, (on_edge,) = await stories.add_passages(ann, edge, [NewPassage("model", "It began", candidate=True)])
    await stories.move_cursor(ann, edge, on_edge.id, {}, chosen_id=on_edge.id)
    old = (await stories.create_story(ann, "Old")).id
    _, old_passages = await stories.add_passages(ann, old, [
        NewPassage("user", "Long ago"), NewPassage("model", "a", parent_index=0, candidate=True, status="incomplete")])
    await stories.move_cursor(ann, old, old_passages[1].id, {}, chosen_id=old_passages[1].id)
    for story, passage, value in ((fresh, told, 1), (fresh, kept, 1), (fresh, edited, -1), (old, old_passages[1], 1),
                                  (edge, on_edge, -1), (edge, on_edge, None)):  # a thumb taken back counts not
        await stories.rate_passage(ann, story, passage.id, value)
    async with db.transaction() as session:
        for story_id, at in ((edge, since), (old, since - timedelta(seconds=1))):
            await session.execute(update(Story).where(Story.id == story_id).values(created_at=at))
            await session.execute(update(Passage).where(Passage.story_id == story_id).values(created_at=at))


async def test_the_report_counts_what_was_stored(database_url: str) -> None:
    db = Database(database_url)
    await db.migrate()
    try:
        await seed(db)
        report = await build_report(db, days=7)
    finally:
        await db.close()
    assert (report.conversations, report.users, report.turns) == (2, 2, 3)
    assert [d.turns for d in report.by_day[-2:]] == [2, 1] and len(report.by_day) == 7
    assert report.by_day[-2].users == 1
    assert report.rating_count == 1 and report.rating_average == 4 and report.rating_distribution[4] == 1
    assert {s.key: (s.up, s.down) for s in report.thumbs_by_skill} == {"help": (1, 0), "graph": (0, 1),
                                                                       "story": (0, 1)}
    assert [(s.key, s.up, s.down) for s in report.thumbs_by_node] == [("onboarding/greet", 0, 1)]
    assert report.thumbs_up_ratio == 1 / 3
    assert (report.offers, report.offers_answered, report.offer_response_rate) == (2, 1, 0.5)
    assert report.average_messages == 3 and report.average_turns == 1.5
    assert report.average_duration_s == 60  # (120 s + 0 s) / 2
    assert [c.comment for c in report.latest_comments] == ["too short", '=HYPERLINK("x") nice']
    text = report.to_text()
    assert "onboarding/greet" in text and "1/2 answered (50%)" in text
    assert json.loads(json.dumps(report.to_json()))["offer_response_rate"] == 0.5


async def test_the_report_counts_stories_and_passages_within_the_window(database_url: str) -> None:
    db = Database(database_url)
    await db.migrate()
    now = datetime.now(UTC)
    try:
        await seed_stories(db, window_start(now, 7))
        report = await build_report(db, days=7, now=now)
    finally:
        await db.close()
    assert report.stories == StoryStats(
        stories=3, stories_started=2,  # the old story counts in the total only
        passages_user=1, passages_model=4, passages_edited=1,  # the old story's two passages are outside
        model_incomplete=1, candidates=2, candidates_chosen=1,
        thumbs_up=3, thumbs_down=1,  # all time: the old story's thumb counts, the one taken back does not
    )
    assert report.stories.passages == 6 and report.stories.candidate_choice_rate == 0.5
    assert report.stories.thumbs_up_ratio == 0.75
    assert report.conversations == 0  # stories are no conversations
    data = json.loads(json.dumps(report.to_json()))["stories"]
    assert data["stories_started"] == 2 and data["passages"] == 6 and data["thumbs_up_ratio"] == 0.75
    assert data["candidate_choice_rate"] == 0.5
    text = report.to_text()
    assert "stories 3 (2 started in the last 7 days)" in text
    assert "passages in the last 7 days: 6 (1 user, 4 model, 1 edited); 1 model passage(s) incomplete" in text
    assert "alternatives: 1/2 chosen (50%)" in text and "passage thumbs: 3 up, 1 down (75% up)" in text


async def test_a_one_day_window_leaves_yesterdays_stories_out(database_url: str) -> None:
    db = Database(database_url)
    await db.migrate()
    now = datetime.now(UTC)
    try:
        await seed_stories(db, window_start(now, 7))  # `edge` six days ago: outside one day
        report = await build_report(db, days=1, now=now)
    finally:
        await db.close()
    st = report.stories
    assert (st.stories, st.stories_started) == (3, 1)
    assert (st.passages_user, st.passages_model, st.passages_edited, st.model_incomplete) == (1, 3, 1, 1)
    assert (st.candidates, st.candidates_chosen, st.thumbs_up, st.thumbs_down) == (2, 1, 3, 1)


async def test_an_empty_database_gives_an_empty_report(database_url: str) -> None:
    db = Database(database_url)
    await db.migrate()
    try:
        report = await build_report(db, days=3)
        assert await feedback_rows(db) == []
    finally:
        await db.close()
    assert report.conversations == 0 and report.rating_average is None and report.offer_response_rate is None
    assert [d.turns for d in report.by_day] == [0, 0, 0]
    assert "(none)" in report.to_text()
    assert report.stories == StoryStats() and report.stories.passages == 0
    assert report.stories.thumbs_up_ratio is None and report.stories.candidate_choice_rate is None
    assert report.to_json()["stories"]["thumbs_up_ratio"] is None
    assert "stories 0 (0 started in the last 3 days)" in report.to_text()
    assert "passage thumbs: 0 up, 0 down (— up)" in report.to_text()


async def exported(db: Database, fmt: str, **kwargs) -> str:
    return "".join([chunk async for chunk in export_chunks(db, fmt, **kwargs)])


async def test_the_export_joins_the_messages_and_defuses_formulas(database_url: str) -> None:
    db = Database(database_url)
    await db.migrate()
    try:
        ids = await seed(db)
        rows = await feedback_rows(db)
        as_csv, as_json = await exported(db, "csv"), await exported(db, "json", report={"days": 7})
    finally:
        await db.close()
    thumb = next(r for r in rows if r["message_id"] == ids["told"] and r["kind"] == "thumb")
    assert thumb["message_text"] == "Once upon a time" and thumb["user_message_text"] == "a story"
    assert thumb["message_skill"] == "story" and thumb["value"] == -1
    parsed = list(csv.DictReader(io.StringIO(as_csv)))
    assert len(parsed) == len(rows) == 7  # 4 thumbs, 2 ratings, 1 comment
    rating = next(r for r in parsed if r["comment"].endswith("nice"))
    assert rating["comment"].startswith("'=")  # a spreadsheet shows it as text, never runs it
    document = json.loads(as_json)
    assert document["report"] == {"days": 7} and document["feedback"] == rows


async def test_the_export_reads_in_pages_and_misses_no_row(database_url: str, monkeypatch) -> None:
    """Pages of 2 over 7 rows (and an empty database): every row once, in id order, whole documents."""
    monkeypatch.setattr(reports, "EXPORT_BATCH", 2)
    db = Database(database_url)
    await db.migrate()
    try:
        assert list(csv.reader(io.StringIO(await exported(db, "csv")))) == [list(reports.EXPORT_FIELDS)]
        assert json.loads(await exported(db, "json")) == {"feedback": []}
        await seed(db)
        pages = [row async for row in reports.iter_feedback_rows(db, batch=2)]
        csv_rows = list(csv.DictReader(io.StringIO(await exported(db, "csv"))))
        json_rows = json.loads(await exported(db, "json"))["feedback"]
    finally:
        await db.close()
    ids = [row["feedback_id"] for row in pages]
    assert len(ids) == 7 and ids == sorted(set(ids))
    assert [int(r["feedback_id"]) for r in csv_rows] == ids and [r["feedback_id"] for r in json_rows] == ids
