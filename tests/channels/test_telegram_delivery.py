"""Delivery's parts alone: ApiCaller's one retry policy, ChatLocks and ChatPacer's bounded memory per chat."""

from __future__ import annotations

import asyncio
import gc
import logging
from datetime import timedelta

import pytest
from telegram.error import BadRequest, NetworkError, RetryAfter, TimedOut

from bot.channels.telegram_config import TelegramConfig
from bot.channels.telegram_delivery import ApiCaller, ChatLocks, ChatPacer

QUICK = TelegramConfig(retry_backoff_s=0.001, retry_backoff_max_s=0.002)  # max_retries: the default, 5
LOGGER = "bot.channels.telegram_delivery"


class FailingCall:
    """A Bot API call that raises `errors` one after another, then answers "ok"; `forever`: the
    first error every time."""

    def __init__(self, *errors: Exception, forever: bool = False) -> None:
        self.errors, self.forever, self.calls = list(errors), forever, 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.forever:
            raise self.errors[0]
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


@pytest.fixture(autouse=True)
def timedelta_durations(monkeypatch: pytest.MonkeyPatch) -> None:
    """As TelegramChannel.start() opts in: RetryAfter.retry_after is a timedelta, without a warning."""
    monkeypatch.setenv("PTB_TIMEDELTA", "1")


def delivery_lines(caplog: pytest.LogCaptureFixture, level: int = logging.WARNING) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno >= level]


@pytest.mark.parametrize("error_type", [RetryAfter, TimedOut, NetworkError])
async def test_a_persistent_failure_is_tried_max_retries_plus_one_times_with_two_log_lines(caplog, error_type) -> None:
    error = {RetryAfter: lambda: RetryAfter(timedelta(0)), TimedOut: TimedOut,
             NetworkError: lambda: NetworkError("Bad Gateway (502)")}[error_type]()
    call = FailingCall(error, forever=True)
    with caplog.at_level(logging.DEBUG, logger=LOGGER), pytest.raises(type(error)):
        await ApiCaller(QUICK)("sendMessage", call)
    assert call.calls == QUICK.max_retries + 1 == 6
    lines = delivery_lines(caplog)
    assert len(lines) == 2, lines  # not one per attempt
    assert "retrying method=sendMessage attempt=1 of 6" in lines[0] and type(error).__name__ in lines[0]
    assert "gave up method=sendMessage attempts=6" in lines[1]
    assert len(delivery_lines(caplog, logging.DEBUG)) == 6  # the attempts in between, for debugging


async def test_a_429_then_a_network_error_share_one_budget_and_the_call_goes_through(caplog) -> None:
    call = FailingCall(RetryAfter(timedelta(0)), NetworkError("Bad Gateway (502)"), TimedOut())
    with caplog.at_level(logging.INFO, logger=LOGGER):
        assert await ApiCaller(QUICK)("editMessageText", call) == "ok"
    assert call.calls == 4
    assert len(delivery_lines(caplog)) == 1 and "RetryAfter" in delivery_lines(caplog)[0]


async def test_no_retries_means_one_attempt_and_no_retry_lines(caplog) -> None:
    call = FailingCall(RetryAfter(timedelta(0)), forever=True)
    with caplog.at_level(logging.DEBUG, logger=LOGGER), pytest.raises(RetryAfter):
        await ApiCaller(QUICK.model_copy(update={"max_retries": 0}))("sendMessage", call)
    assert call.calls == 1 and delivery_lines(caplog, logging.DEBUG) == []


async def test_not_modified_is_success_and_other_bad_requests_are_not_retried() -> None:
    not_modified = FailingCall(BadRequest("Message is not modified: specified new message content ..."))
    assert await ApiCaller(QUICK)("editMessageText", not_modified) is None and not_modified.calls == 1
    refused = FailingCall(BadRequest("Message text is empty"))
    with pytest.raises(BadRequest):
        await ApiCaller(QUICK)("sendMessage", refused)
    assert refused.calls == 1


# --- per-chat locks -----------------------------------------------------------------------------

async def test_a_chat_lock_in_use_is_never_replaced_and_idle_ones_are_forgotten() -> None:
    locks = ChatLocks()
    inside: set[int] = set()
    overlaps = []

    async def turn(chat_id: int, index: int) -> None:
        async with locks(chat_id):
            if chat_id == 1:
                overlaps.append(len(inside))
                inside.add(index)
            await asyncio.sleep(0)  # others run meanwhile: new chats come and idle ones go
            await asyncio.sleep(0)
            inside.discard(index)

    held = locks(1)
    await held.acquire()
    # Many more chats than any bound would keep, while chat 1's lock is held and waited for.
    tasks = [asyncio.create_task(turn(1, i)) for i in range(20)]
    tasks += [asyncio.create_task(turn(chat_id, 0)) for chat_id in range(2, 20_002)]
    await asyncio.sleep(0.01)
    gc.collect()
    assert locks(1) is held  # the holder's and the waiters' lock, still the chat's
    held.release()
    # At each hand-over the lock is free until the next waiter wakes: a turn arriving then must
    # queue on the same lock, not take a fresh one.
    late = []
    for _ in range(20):
        await asyncio.sleep(0)
        late.append(asyncio.create_task(turn(1, 100 + len(late))))
    await asyncio.gather(*tasks, *late)
    assert overlaps == [0] * 40  # never two turns of chat 1 at once
    del held
    gc.collect()
    assert len(locks) == 0  # nothing in flight, nothing remembered


# --- edit pacing --------------------------------------------------------------------------------

def test_the_pacer_forgets_a_chat_after_its_interval_and_beyond_its_size() -> None:
    now = [100.0]
    pacer = ChatPacer(1.0, max_chats=3, clock=lambda: now[0])
    pacer.mark(1)
    assert pacer.ready_at(1) == 101.0
    now[0] = 100.5
    for chat_id in (2, 3, 4):
        pacer.mark(chat_id)
    assert len(pacer) == 3 and pacer.ready_at(1) == float("-inf")  # the least recently marked went first
    assert pacer.ready_at(4) == 101.5
    now[0] = 101.5
    assert len(pacer) == 0 and pacer.ready_at(4) == float("-inf")  # an interval on, every chat is ready
