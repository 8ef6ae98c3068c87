"""Telegram polling with two bots on one database: one polls, every message is answered once, the other takes over."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.channels.telegram import POLL_JOB
from bot.storage.locks import advisory_key
from bot.storage.schema import Message
from tests.conftest import advisory_lock_holder, terminate_backend
from tests.channels.telegram_harness import api, running_bot  # noqa: F401 - fixtures

CHATS = (601, 602, 603)


async def _answered_once_each(api, sent: int) -> None:
    """Each chat got exactly `sent` answers: none lost, none doubled by a second poller."""
    for chat in CHATS:
        await api.wait_messages(chat, sent)
    await api.wait_calls("getUpdates", len(api.calls_of("getUpdates")) + 2)  # two more polls: nothing more came
    for chat in CHATS:
        assert len(api.bot_messages(chat)) == sent, api.texts(chat)


async def test_one_of_two_bots_polls_and_the_other_takes_over(api, database_url: str, tmp_path: Path) -> None:
    data = tmp_path / "data"  # shared, as by workers on one machine (the SQLite lock file lives here)
    async with running_bot(api, data, database_url=database_url) as first, \
            running_bot(api, data, database_url=database_url) as second:
        bots = [first, second]
        await api.wait_calls("getUpdates")
        assert [bot.channel.polling for bot in bots].count(True) == 1
        leader, follower = bots if first.channel.polling else bots[::-1]
        # Both bots are fully up (getMe, commands); only the leader polls.
        assert len(api.calls_of("getMe")) == 2

        for chat in CHATS:
            await api.send_text(chat, "help")
        await _answered_once_each(api, 1)
        assert not follower.channel.polling

        await leader.channel.stop()  # the leading process goes away
        await api.wait_for(lambda: follower.channel.polling, timeout=10)
        for chat in CHATS:
            await api.send_text(chat, "help")
        await _answered_once_each(api, 2)

        stored = await follower.rows(Message, Message.author == "user")
        assert sorted(m.text for m in stored) == ["help"] * (2 * len(CHATS))


@pytest.mark.postgres
async def test_a_killed_lock_connection_stops_the_leaders_polling_and_it_can_lead_again(
        api, postgres_url: str, tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with running_bot(api, data, database_url=postgres_url) as first, \
            running_bot(api, data, database_url=postgres_url) as second:
        await api.wait_calls("getUpdates")
        leader, follower = (first, second) if first.channel.polling else (second, first)

        await _terminate_lock_connection(postgres_url)
        await api.wait_for(lambda: follower.channel.polling and not leader.channel.polling, timeout=10)
        for chat in CHATS:
            await api.send_text(chat, "help")
        await _answered_once_each(api, 1)

        await follower.channel.stop()  # the old leader's turn again: its updater starts anew
        await api.wait_for(lambda: leader.channel.polling, timeout=10)
        for chat in CHATS:
            await api.send_text(chat, "help")
        await _answered_once_each(api, 2)


async def _terminate_lock_connection(url: str) -> None:
    holder = await advisory_lock_holder(advisory_key(POLL_JOB))
    assert holder is not None and await terminate_backend(holder)


