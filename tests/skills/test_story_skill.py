"""The story skill through the real dispatcher: a whole story in the terminal chat, the onboarding
hand-over, commands, confirmation of deletes, and clear answers to bad input."""

from __future__ import annotations

import io
import re

import pytest

from bot.app import build_app
from bot.channels.terminal import chat_loop
from bot.core.messages import Incoming
from bot.models.fake import FakeLanguageModel, FakeScript
from bot.testing import check_happy_path


def numbered() -> FakeLanguageModel:
    counter = iter(range(1, 10_000))
    return FakeLanguageModel(script=FakeScript(respond=lambda p, q: f"The fox took step {next(counter)}."))


@pytest.fixture
async def app(settings):
    tandem = await build_app(settings, language_model=numbered())
    try:
        yield tandem
    finally:
        await tandem.close()


async def say(app, text: str, user: str = "ann"):
    return await app.handle_turn(Incoming("terminal", user, text)).reply()


async def chat(app, lines: list[str], user: str = "ann") -> list[str]:
    out = io.StringIO()
    await chat_loop(app.handle_turn, stdin=io.StringIO("\n".join(lines) + "\n"), stdout=out, user_id=user)
    return out.getvalue().split("tandem> ")[1:]


async def test_a_whole_story_through_the_terminal_chat(app) -> None:
    answers = await chat(app, [
        "/story", "/title The Lantern", "/genre fairy tale", "Mira found a lantern in the snow.",
        "2", "continue 1", "/retry", "1", "/undo", "/redo", "/edit 1 Mira found a lantern in the deep snow.",
        "/branch 1", "The lantern began to sing.", "3", "/memory Mira is a fox.", "/settings candidates=1",
        "continue", "/export md", "/end",
    ])
    assert "Let's write a story" in answers[0]
    assert "title “The Lantern”" in answers[1]
    assert "[1] The fox took step 1." in answers[3] and "[3] The fox took step 3." in answers[3]
    assert "Choose 1–3" in answers[3]
    assert "Taken: [2] (model) The fox took step 2." in answers[4]
    assert answers[5].startswith("The fox took step 4.") and "/retry for another take" in answers[5]
    assert "[1] The fox took step 5." in answers[6]
    assert "Undone" in answers[8] and "Redone" in answers[9]
    assert "[1] (you) Mira found a lantern in the deep snow." in answers[10]
    assert "Branched after passage 1" in answers[11]
    assert "Taken: [3] (model)" in answers[13]
    assert "Memory saved" in answers[14] and "candidates=1" in answers[15]
    markdown = answers[17]
    assert markdown.startswith("# The Lantern")
    assert "**[1] you**\n\nMira found a lantern in the deep snow." in markdown
    assert "**[2] you**\n\nThe lantern began to sing." in markdown and "**[4] model**" in markdown
    assert "We've left the story \"The Lantern\"" in answers[18]
    service = app.stories
    user = await app.conversations.user_for("terminal", "ann")
    (story,) = await service.list_stories(user)
    assert story["title"] == "The Lantern" and story["passages"] == 16  # nothing was ever deleted


async def test_onboarding_hands_over_to_the_story_skill(app) -> None:
    await say(app, "hi")
    reply = await say(app, "Write a story")
    assert reply.skill == "story" and "Let's write a story" in reply.text
    reply = await say(app, "Once upon a time there was a lantern.")
    assert reply.skill == "story" and reply.data["story"]["candidates"]
    assert [c["text"] for c in reply.data["story"]["candidates"]] == [
        "The fox took step 1.", "The fox took step 2.", "The fox took step 3."]
    assert reply.suggestions == ("1", "2", "3", "/retry")


async def test_delete_asks_for_confirmation(app) -> None:
    await say(app, "/story")
    await say(app, "A beginning.")
    reply = await say(app, "/delete")
    assert "cannot be undone" in reply.text
    reply = await say(app, "no")
    assert "I kept" in reply.text
    assert len(await app.stories.list_stories(await app.conversations.user_for("terminal", "ann"))) == 1
    await say(app, "/delete")
    reply = await say(app, "yes")
    assert "Deleted" in reply.text
    assert await app.stories.list_stories(await app.conversations.user_for("terminal", "ann")) == []


async def test_bad_input_gets_a_clear_answer(app) -> None:
    await say(app, "/story")
    assert "no story open" in (await say(app, "/undo")).text
    await say(app, "A beginning.")
    assert "There is no candidate 7" in (await say(app, "7")).text
    assert "Nothing to redo" in (await say(app, "/redo")).text
    assert "Unknown setting" in (await say(app, "/settings colour=3")).text
    assert "don't know the command /fly" in (await say(app, "/fly")).text
    assert "does not exist" in (await say(app, "/resume 999")).text
    assert "Export as md, txt or json" in (await say(app, "/export pdf")).text
    long = await say(app, "x" * 4050)
    assert "too long" in long.text


async def test_stories_are_listed_and_resumed_per_user(app) -> None:
    await say(app, "/story")
    await say(app, "/title First")
    await say(app, "Story one begins.")
    await say(app, "/new Second")
    await say(app, "Story two begins.")
    listing = (await say(app, "/stories")).text
    assert "\"First\"" in listing and "\"Second\", 4 passages (open)" in listing
    first_id = (await say(app, "/stories")).data["stories"][1]["id"]
    reply = await say(app, f"/resume {first_id}")
    assert "\"First\"" in reply.text and "Story one begins." in reply.text
    # Another user sees none of ann's stories, and cannot resume one by its id.
    await say(app, "/story", user="bob")
    bobs = await say(app, "/stories", user="bob")
    assert bobs.text.startswith("You have no stories yet") and bobs.data["stories"] == []
    assert "does not exist" in (await say(app, f"/resume {first_id}", user="bob")).text


async def test_a_character_answers_in_the_chat(app) -> None:
    await say(app, "/story")
    await say(app, "Mira found a lantern.")
    reply = await say(app, "/character Mira: what did you find?")
    assert reply.text.startswith("Mira: ") and reply.data["character"]["name"] == "Mira"
    user = await app.conversations.user_for("terminal", "ann")
    (story,) = await app.stories.list_stories(user)
    assert story["passages"] == 4  # the user's passage and three candidates; nothing from the character


async def test_without_a_model_the_skill_says_so(settings) -> None:
    from bot.models.lazy import LazyLanguageModel
    from bot.core.errors import ConfigError

    def missing():
        raise ConfigError("setting `lm.model`: package not installed")

    tandem = await build_app(settings, language_model=LazyLanguageModel(missing))
    try:
        await tandem.handle_turn(Incoming("terminal", "ann", "/story")).reply()
        reply = await tandem.handle_turn(Incoming("terminal", "ann", "Once upon a time.")).reply()
        assert "not available" in reply.text and reply.status == "complete"
    finally:
        await tandem.close()


ONBOARDING_STORY = [
    ("hi", "I'm Tandem"),
    ("Write a story", re.compile(r"let's write a story together!\s+Let's write a story!")),
    ("/genre fable", "Noted: genre"),
    ("A fox found a lantern in the snow.", re.compile(r"\[1\] The fox took step 1\..*Choose 1–3", re.DOTALL)),
    ("2", "Taken: [2] (model) The fox took step 2."),
    ("/end", "it is saved"),
    ("hi", "I'm Tandem"),
]


async def test_happy_path_from_onboarding_into_a_story_and_out(app) -> None:
    await check_happy_path(app.handle_turn, ONBOARDING_STORY)
