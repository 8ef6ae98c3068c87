"""StoryContextBuilder: order of the sections, lore triggers, and a prompt that always fits the window."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.storage.stories import LoreRecord, PassageRecord, StoryRecord
from bot.story.prompt import StoryContextBuilder, matched_key, triggered_lore

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


# --- lore decisions: what the context viewer shows ----------------------------------------------

def recent(*texts: str) -> list[PassageRecord]:
    return [PassageRecord(i, 1, i - 1 or None, "user", text, "complete", None, None, None, NOW)
            for i, text in enumerate(texts, 1)]


def test_matched_key_is_the_first_key_that_starts_a_word() -> None:
    entry = LoreRecord(1, ("dragon", "Smaug"), "Smaug is red.")
    assert matched_key(entry, "Two dragons flew.") == "dragon"  # a prefix of the word
    assert matched_key(entry, "SMAUG slept.") == "Smaug"  # any case; the key as written
    assert matched_key(entry, "A smaug and a dragon.") == "dragon"  # keys in their order, not the text's
    assert matched_key(entry, "A snapdragon grew.") is None  # inside a word is no match
    assert matched_key(entry, "") is None
    assert matched_key(LoreRecord(2, ("дракон",), "Дракон стар."), "Два дракона летели.") == "дракон"


def test_each_lore_entry_is_in_or_out_with_its_reason() -> None:
    lore = [
        LoreRecord(1, ("dragon", "Smaug"), "Smaug is an old red dragon."),
        LoreRecord(2, ("castle",), "The castle is old.", enabled=False),
        LoreRecord(3, ("river",), "The river is cold."),
        LoreRecord(4, ("lantern",), "The lantern never goes out."),
    ]
    path = recent("The river froze.", "Mira crossed the hills.", "Snow fell.", "Smaug circled the castle.",
                  "Mira lifted her lantern.")
    prompt = StoryContextBuilder(words, 4096).build(story(), path, lore, max_new_tokens=50)
    decisions = {d.entry.id: d for d in prompt.lore}
    assert [d.entry.id for d in prompt.lore] == [1, 2, 3, 4]  # every entry, in its order
    assert (decisions[1].included, decisions[1].reason, decisions[1].key) == (
        True, '"Smaug" is in the last 3 passages', "Smaug")
    assert (decisions[2].included, decisions[2].reason, decisions[2].key) == (False, "switched off", None)
    # "river" is in the story, but 4 passages ago.
    assert (decisions[3].included, decisions[3].reason, decisions[3].key) == (
        False, "none of its keys is in the last 3 passages", None)
    assert decisions[4].included and decisions[4].key == "lantern"
    text = "\n".join(m.content for m in prompt.messages)
    assert "- Smaug is an old red dragon." in text and "- The lantern never goes out." in text
    assert "The castle is old." not in text and "The river is cold." not in text
    lore_section = dict(prompt.sections)["lore"]
    assert lore_section == "World notes:\n- Smaug is an old red dragon.\n- The lantern never goes out."


def test_a_switched_off_entry_is_never_triggered() -> None:
    lore = [LoreRecord(1, ("castle",), "The castle is old.", enabled=False),
            LoreRecord(2, ("moat",), "The moat is deep.")]
    assert [e.id for e in triggered_lore(lore, ["The castle had a moat."])] == [2]
    prompt = StoryContextBuilder(words, 4096).build(story(memory=""), recent("The castle stood."), lore[:1],
                                                    max_new_tokens=50)
    assert "lore" not in prompt.order
    assert prompt.lore[0].reason == "switched off"
    # Nor does the task ask for world notes when the only ones are switched off (and there is no memory).
    assert "world notes" not in prompt.messages[-1].content
    prompt = StoryContextBuilder(words, 4096).build(story(memory=""), recent("The castle stood."), lore,
                                                    max_new_tokens=50)
    assert "Use the memory and world notes" in prompt.messages[-1].content


def test_entries_past_the_world_notes_share_are_left_out_with_the_reason() -> None:
    builder = StoryContextBuilder(words, context_window=400)
    big = LoreRecord(1, ("dragon",), "The dragon " + " ".join(["roars"] * 200))
    small = LoreRecord(2, ("lantern",), "The lantern is magic.")
    prompt = builder.build(story(memory="", author_note=""), recent("The dragon saw the lantern."), [big, small],
                           max_new_tokens=50)
    first, second = prompt.lore
    assert not first.included and first.key == "dragon"
    assert first.reason.startswith('"dragon" is in the story, but the world notes\' share of the prompt (')
    assert first.reason.endswith(" tokens) is full")
    share = int(first.reason.split("(", 1)[1].split(" ", 1)[0])
    assert 0 < share < words(big.text)
    # A smaller entry after it still fits in the share.
    assert second.included and dict(prompt.sections)["lore"] == "World notes:\n- The lantern is magic."
    assert prompt.tokens <= 400 - 50
