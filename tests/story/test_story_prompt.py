"""StoryContextBuilder: order of the sections, lore triggers, and a prompt that always fits the window."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.storage.stories import LoreRecord, PassageRecord, StoryRecord
from bot.story.prompt import StoryContextBuilder, triggered_lore

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def words(text: str) -> int:
    return len(text.split())


def story(**changes) -> StoryRecord:
    fields = dict(id=1, user_id=1, title="The Lantern", genre="fantasy", premise=None, style=None, language="en",
                  memory="Mira is a young fox who fears the dark.", author_note="Keep it gentle.",
                  settings={}, head_id=None, cursor={}, created_at=NOW, updated_at=NOW)
    fields.update(changes)
    return StoryRecord(**fields)


def passages(count: int, length: int = 30) -> list[PassageRecord]:
    out = []
    for i in range(1, count + 1):
        text = f"Passage{i} " + " ".join(f"w{i}x{j}" for j in range(length - 1))
        out.append(PassageRecord(i, 1, i - 1 or None, "user" if i % 2 else "model", text, "complete",
                                 None, None, None, NOW))
    return out


def test_a_story_longer_than_the_window_fits_and_keeps_the_order() -> None:
    builder = StoryContextBuilder(words, context_window=512)
    path = passages(60)  # 1800 words of story in a 512-token window
    lore = [LoreRecord(1, ("lantern",), "The lantern is magic and never goes out.")]
    path[-1] = PassageRecord(60, 1, 59, "user", "Mira lifts the lantern high.", "complete", None, None, None, NOW)
    prompt = builder.build(story(), path, lore, max_new_tokens=100, summary="Mira left home at dawn.",
                           summary_covers=20)
    assert prompt.tokens <= 512 - 100
    assert sum(words(m.content) for m in prompt.messages) < 512 - 100
    assert prompt.order == ["instruction", "memory", "summary", "lore", "passages", "author_note", "task"]
    text = "\n".join(m.content for m in prompt.messages)
    assert text.index("fears the dark") < text.index("left home") < text.index("never goes out") \
        < text.index("lifts the lantern") < text.index("Keep it gentle")
    # The newest passages are the ones kept, and the rest is reported as dropped.
    assert prompt.kept[-1].id == 60 and len(prompt.kept) < 40
    assert [p.id for p in prompt.dropped] == list(range(1, 61 - len(prompt.kept)))


@pytest.mark.parametrize("window", [256, 300, 1024, 4096])
def test_every_part_is_cut_to_fit_however_long(window: int) -> None:
    huge = " ".join(["memory"] * 5000)
    builder = StoryContextBuilder(words, context_window=window)
    prompt = builder.build(story(memory=huge, author_note=huge), passages(200, 80),
                           [LoreRecord(1, ("Passage200",), huge)], max_new_tokens=64, summary=huge,
                           summary_covers=100)
    assert prompt.tokens <= window - 64
    assert prompt.kept, "the newest passage is always shown"


def test_a_single_passage_longer_than_the_window_is_shortened_from_its_start() -> None:
    builder = StoryContextBuilder(words, context_window=300)
    long = passages(1, 2000)
    prompt = builder.build(story(memory="", author_note=""), long, [], max_new_tokens=50)
    assert prompt.tokens <= 250
    assert prompt.kept[0].text.endswith("w1x1998") and prompt.kept[0].text.startswith("…")


def test_lore_is_triggered_only_by_recent_passages() -> None:
    lore = [LoreRecord(1, ("dragon", "Smaug"), "Smaug is red."), LoreRecord(2, ("castle",), "The castle is old.")]
    assert [e.id for e in triggered_lore(lore, ["Two dragons flew over the hills."])] == [1]
    assert triggered_lore(lore, ["Nothing here."]) == []
    path = passages(10)
    path[0] = PassageRecord(1, 1, None, "user", "The castle stood on the hill.", "complete", None, None, None, NOW)
    prompt = StoryContextBuilder(words, 4096).build(story(), path, lore, max_new_tokens=50)
    assert "lore" not in prompt.order  # the castle was mentioned long ago, not recently


def test_the_opening_prompt_asks_for_an_opening() -> None:
    prompt = StoryContextBuilder(words, 1024).build(story(), [], [], max_new_tokens=50)
    assert "opening passage" in prompt.messages[-1].content
    assert "English" in prompt.messages[0].content and "fantasy" in prompt.messages[0].content
