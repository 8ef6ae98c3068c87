"""Per-process token buckets: refilled at the limit's rate, and bounded in number (least recently seen forgotten)."""

from __future__ import annotations

from bot.channels.ratelimit import RateLimit, RateLimiter

ONE_A_SECOND = RateLimit(per_minute=60, burst=1)


def test_a_bucket_refills_at_its_rate() -> None:
    now = [0.0]
    limiter = RateLimiter(ONE_A_SECOND, clock=lambda: now[0])
    assert limiter.take("10.0.0.1") == 0.0
    assert limiter.take("10.0.0.1") == 1.0  # empty: a second until the next token
    now[0] = 1.0
    assert limiter.take("10.0.0.1") == 0.0


def test_the_least_recently_seen_bucket_is_forgotten_beyond_max_keys() -> None:
    limiter = RateLimiter(ONE_A_SECOND, clock=lambda: 0.0, max_keys=2)
    for key in ("a", "b", "a"):
        limiter.take(key)                # "a" is empty and seen after "b"
    assert limiter.take("c") == 0.0      # a third key: "b" is forgotten, not "a"
    assert limiter.take("a") > 0         # still remembered, still empty
    assert limiter.take("b") == 0.0      # forgotten: a full bucket again (forgetting only forgives)
