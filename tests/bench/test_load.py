"""The load generator's own logic (bench/load*.py) at a tiny level against an in-process server:
scripts, reply classification, the figures it reports and the stored-records check."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from pydantic import SecretStr

from bench.load import percentiles, summarize
from bench.load_clients import ConversationLedger, LevelPlan, classify, run_level
from bench.load_scripts import STORY_API, build_script
from bench.load_server import check_records
from bot.settings import Settings

TINY = LevelPlan(ws=2, http=1, turns=2, duration_s=60, ramp_s=0, think_s=(0.0, 0.0), turn_timeout_s=60,
                 grace_s=60, seed=3, mix={"help": 1.0, "smalltalk": 1.0}, thumb_probability=1.0,
                 rating_probability=1.0)


@pytest.fixture
async def served(database_url: str, tmp_path) -> AsyncIterator[tuple[str, str]]:
    """A real Tandem (fake language model) on 127.0.0.1: (base URL, database URL)."""
    from bot.app import build_app
    from bot.models.fake import FakeLanguageModel
    from bot.server import init_app

    settings = Settings(data_dir=tmp_path / "data", database_url=SecretStr(database_url))
    tandem = await build_app(settings, language_model=FakeLanguageModel("Mira smiled. The lantern glowed."))
    runner = web.AppRunner(init_app(tandem), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", database_url
    finally:
        await runner.cleanup()
        await tandem.close()


async def test_a_tiny_level_answers_every_turn_and_loses_no_record(served) -> None:
    base_url, database_url = served
    rec = await run_level(base_url, TINY)
    figures = summarize(rec)

    assert figures["conversations"] == 3
    assert figures["turns_attempted"] == figures["turns_answered"] == 6
    assert figures["errors"] == {} and figures["error_rate"] == 0.0
    assert figures["non_generative_ms"]["n"] >= 1 and figures["generative_ms"]["n"] >= 1
    assert figures["non_generative_ms"]["n"] + figures["generative_ms"]["n"] == 6
    assert set(figures["skills"]) == {"help", "smalltalk"}
    assert {t.channel for t in rec.turns} == {"ws", "http"}
    # A thumb on every reply and a rating per conversation, all confirmed by the server.
    assert figures["feedback_actions"] == 6 + 3

    records = await check_records(database_url, rec.ledgers)
    assert (records.messages_sent, records.ratings_sent, records.thumbs_sent) == (6, 3, 6)
    assert records.lost == 0


async def test_the_records_check_counts_what_the_database_lacks(served) -> None:
    base_url, database_url = served
    rec = await run_level(base_url, LevelPlan(**{**TINY.__dict__, "ws": 1, "http": 0, "turns": 1}))
    claimed = ConversationLedger(rec.ledgers[0].conversation_id, "ws", acked_messages=3, ratings=2, thumbs=1)
    missing = ConversationLedger("no-such-conversation", "http", acked_messages=1)

    records = await check_records(database_url, [claimed, missing])

    # Stored: 1 user message, 1 rating, 1 thumb; claimed 3 + 1 messages and 2 ratings.
    assert (records.messages_lost, records.ratings_lost, records.thumbs_lost) == (3, 1, 0)


def test_a_script_has_exactly_the_turns_asked_for_and_is_seeded() -> None:
    first = build_script(random.Random(5), 0, 7, http=True)
    again = build_script(random.Random(5), 0, 7, http=True)
    assert len(first.steps) == len(first.think) == len(first.thumbs) == 7
    assert first == again
    widget = [build_script(random.Random(i), i, 4, http=False) for i in range(40)]
    assert not any(step.kind == STORY_API for script in widget for step in script.steps)


def test_every_episode_opens_some_conversation_of_a_low_level() -> None:
    from bench.load_scripts import EPISODES

    firsts = {build_script(random.Random(i), i, 1, http=False).steps[0] for i in range(len(EPISODES))}
    assert len(firsts) == len(EPISODES)


@pytest.mark.parametrize("reply, expected", [
    ({"skill": "help", "status": "complete", "text": "Here"}, (False, "ok", None)),
    ({"skill": "dispatcher", "status": "fallback", "text": "Sorry"}, (False, "error", "turn_fallback")),
    ({"skill": "smalltalk", "status": "incomplete", "text": "Sorry, that took me too long."},
     (True, "incomplete", None)),
    ({"skill": "smalltalk", "status": "complete",
      "text": "I'm a little lost for words right now. Shall we write a story together instead?"},
     (True, "model_fallback", None)),
    ({"skill": "story", "status": "complete", "data": {"story": {"candidates": [], "errors": ["timeout"]}}},
     (True, "model_fallback", None)),
    ({"skill": "story", "status": "complete", "data": {"story": {"candidates": [{"status": "complete"}]}}},
     (True, "ok", None)),
    ({"skill": "story", "status": "complete", "text": "Let's write a story!", "data": {}}, (False, "ok", None)),
], ids=["graph-or-skill", "apology", "over-budget", "canned-smalltalk", "story-failed", "story-ok", "story-intro"])
def test_replies_are_classed_by_skill_status_and_data(reply, expected) -> None:
    assert classify(reply) == expected


def test_percentiles_interpolate_in_milliseconds() -> None:
    assert percentiles([]) == {"n": 0, "p50": None, "p95": None, "p99": None}
    figures = percentiles([i / 1000 for i in range(1, 102)])
    assert (figures["n"], figures["p50"], figures["p95"]) == (101, 51.0, 96.0)
