"""The story skill through the real dispatcher: a whole story in the terminal chat, the onboarding
hand-over, commands, confirmation of deletes, clear answers to bad input, story commands with no story
open (/stories lists, it starts nothing), and story buttons (they act once, on the moment they were for)."""

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
    assert answers[4].startswith("Taken: option 2.\nThe fox took step 2.\n\nWrite what happens next")
    assert answers[5].startswith("The fox took step 4.") and "/retry for another take" in answers[5]
    assert "[1] The fox took step 5." in answers[6]
    assert answers[6].startswith("Another take on the last passage:\n\n[1] The fox took step 5.")
    assert answers[8].startswith("Undone: passage 3 is taken back")
    assert answers[9].startswith("Redone: passage 3 is back")
    assert "[1] (you) Mira found a lantern in the deep snow." in answers[10]
    assert "Branched after passage 1" in answers[11]
    assert answers[13].startswith("Taken: option 3.")
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


async def user_of(app, name: str = "ann") -> int:
    return await app.conversations.user_for("terminal", name)


async def write(app, title: str, passage: str) -> None:
    """A story of its own, left with /end."""
    await say(app, "/story")
    await say(app, f"/title {title}")
    await say(app, passage)
    await say(app, "/end")


async def test_stories_with_no_stories_says_so_and_starts_nothing(app) -> None:
    for text in ("/stories", "my stories"):
        reply = await say(app, text)
        assert reply.skill == "story" and reply.text.startswith("You have no stories yet. Say /story")
        assert reply.suggestions == ("/story",) and reply.data["stories"] == []
        assert "Let's write" not in reply.text
    # Not held by the story skill: the next message is not taken for a first passage.
    assert (await say(app, "Just chatting about the weather today.")).skill != "story"
    assert await app.stories.list_stories(await user_of(app)) == []


async def test_stories_with_none_open_lists_them_and_starts_nothing(app) -> None:
    await write(app, "First", "Story one begins.")
    await write(app, "Second", "Story two begins.")
    stories = await app.stories.list_stories(await user_of(app))
    second, first = (item["id"] for item in stories)
    for text in ("/stories", "my stories", "show me my stories", "мои истории"):
        reply = await say(app, text)
        assert reply.skill == "story", text
        assert '"First"' in reply.text and '"Second"' in reply.text and "(open)" not in reply.text
        assert "Let's write" not in reply.text and "Давай напишем" not in reply.text
        assert [item["id"] for item in reply.data["stories"]] == [second, first]
        assert f"/resume {second}" in reply.suggestions and f"/resume {first}" in reply.suggestions
        assert "story" not in reply.data  # no story is open
    assert reply.text.startswith("Твои истории:") and "/resume ID открывает историю." in reply.text
    assert (await say(app, "Just chatting about the weather today.")).skill != "story"
    assert await app.stories.list_stories(await user_of(app)) == stories  # nothing new, nothing written


async def test_resume_export_and_delete_work_with_no_story_open(app) -> None:
    await write(app, "First", "Story one begins.")
    await write(app, "Second", "Story two begins.")
    second, first = (item["id"] for item in await app.stories.list_stories(await user_of(app)))

    which = await say(app, "/resume")
    assert "Which one? /resume ID" in which.text and '"First"' in which.text
    assert "does not exist" in (await say(app, "/resume 999")).text
    assert (await say(app, "Just chatting about the weather today.")).skill != "story"

    exported = await say(app, "/export txt")  # the newest story: nothing is open
    assert exported.text.startswith(f'"Second" (story {second}), as txt:') and "Story two begins." in exported.text
    assert exported.data["export"]["filename"].endswith(".txt")
    exported = await say(app, f"/export {first} md")
    assert exported.text.startswith(f'"First" (story {first}), as md:') and "# First" in exported.text
    assert "does not exist" in (await say(app, "/export 999")).text

    assert "Which one? /delete ID" in (await say(app, "/delete")).text
    assert "does not exist" in (await say(app, "/delete 999")).text
    assert "cannot be undone" in (await say(app, f"/delete {second}")).text
    assert 'I kept "Second"' in (await say(app, "no")).text
    assert (await say(app, "Just chatting about the weather today.")).skill != "story"  # the question is over
    await say(app, f"/delete {second}")
    assert 'Deleted "Second"' in (await say(app, "yes")).text
    assert [item["id"] for item in await app.stories.list_stories(await user_of(app))] == [first]

    reply = await say(app, f"/resume {first}")
    assert reply.text.startswith('"First"') and "Story one begins." in reply.text
    reply = await say(app, "The lantern sang.")  # the story is open again: a passage of it
    assert reply.data["story"]["story"]["id"] == first and reply.data["story"]["candidates"]


async def test_a_missing_story_named_inside_a_story_keeps_the_open_one(app) -> None:
    await say(app, "/story")
    await say(app, "A beginning.")
    assert "does not exist" in (await say(app, "/delete 999")).text
    assert "does not exist" in (await say(app, "/export 999 md")).text
    assert "There is no candidate 7" in (await say(app, "7")).text  # still in the story, candidates waiting


async def press(app, button: dict, action: str, number: int | None = None, user: str = "ann"):
    """A story button's turn, as the Telegram channel sends it."""
    text = f"/choose {number}" if action == "choose" else f"/{action}"
    metadata = {"story_button": {**button, "action": action, "number": number}}
    return await app.handle_turn(Incoming("terminal", user, text, skill="story", metadata=metadata)).reply()


def moment(reply) -> dict:
    """What a keyboard under `reply` remembers of its story."""
    view = reply.data["story"]["story"]
    candidates = view["candidates"]
    return {"story_id": view["id"], "head_id": view["head_id"],
            "last_candidate_id": candidates[-1]["id"] if candidates else None}


async def test_a_story_button_acts_only_at_the_moment_it_was_shown_for(app) -> None:
    await say(app, "/story")
    offer = await say(app, "A beginning.")
    shown = moment(offer)
    chosen = await press(app, shown, "choose", 2)
    assert chosen.text.startswith("Taken: option 2.\nThe fox took step 2.")
    user = await user_of(app)
    story_id = shown["story_id"]
    head = (await app.stories.view(user, story_id)).story.head_id
    for action, number in (("choose", 1), ("retry", None), ("undo", None)):
        stale = await press(app, shown, action, number)  # a second keyboard of the same moment
        assert stale.text.startswith("Those buttons were for an earlier point in the story"), action
        assert (await app.stories.view(user, story_id)).story.head_id == head

    # Left with /end, the newest passage's buttons still act: the story opens again.
    latest = moment(chosen)
    await say(app, "/end")
    continued = await press(app, latest, "continue")
    assert continued.skill == "story" and "Choose 1–3" in continued.text
    assert "Taken: option 1." in (await say(app, "1")).text  # held again: a bare number chooses

    # Inside another story, a button of this one does nothing.
    await say(app, "/new Other")
    await say(app, "Another beginning.")
    resumed = await say(app, f"/resume {story_id}")
    reply = await press(app, moment(resumed), "undo")
    assert reply.text.startswith("Undone: passage 3")
    other = await say(app, "/stories")
    other_id = next(item["id"] for item in other.data["stories"] if item["title"] == "Other")
    await say(app, f"/resume {other_id}")
    elsewhere = await press(app, moment(reply), "redo")
    assert elsewhere.text.startswith("That button belongs to another story")
    assert f"/resume {story_id}" in elsewhere.text
    assert "Redo" not in elsewhere.text and (await app.stories.view(user, story_id)).story.cursor.get("redo")

    # Someone else's story, or one that is gone, does nothing either.
    assert (await press(app, latest, "continue", user="bob")).text.startswith("That story no longer exists")
    await app.stories.delete(user, story_id)
    assert (await press(app, latest, "open")).text.startswith("That story no longer exists")


async def test_story_replies_in_russian_use_ty(settings) -> None:
    counter = iter(range(1, 10_000))
    model = FakeLanguageModel(script=FakeScript(respond=lambda p, q: f"Лиса сделала шаг номер {next(counter)}."))
    tandem = await build_app(settings, language_model=model)

    async def ru(text: str):
        return await tandem.handle_turn(Incoming("terminal", "olga", text, language="ru")).reply()

    try:
        assert (await ru("/stories")).text == "У тебя пока нет историй. Скажи /story, чтобы начать."
        await ru("/story")
        await ru("Лиса нашла фонарь в снегу.")
        chosen = await ru("2")
        assert chosen.text.startswith("Взят вариант 2.\nЛиса сделала шаг номер 2.")
        assert "Напиши, что будет дальше, или скажи «продолжай»." in chosen.text
        assert (await ru("/undo")).text.startswith("Отменено: отрывок 2 убран (/redo вернёт его).")
        assert (await ru("/redo")).text.startswith("Возвращено: отрывок 2 снова в истории.")
        assert (await ru("/retry")).text.startswith("Другой вариант последнего отрывка:")
        listing = await ru("/stories")
        assert listing.text.startswith("Твои истории:") and "(открыта)" in listing.text
        await ru("/end")
        assert (await ru("/delete")).text.endswith("Какую? /delete ID, например /delete 1.")
    finally:
        await tandem.close()


async def test_refusals_and_story_commands_in_russian_are_russian(settings) -> None:
    counter = iter(range(1, 10_000))
    model = FakeLanguageModel(script=FakeScript(respond=lambda p, q: f"Лиса сделала шаг номер {next(counter)}."))
    tandem = await build_app(settings, language_model=model)

    async def ru(text: str) -> str:
        return (await tandem.handle_turn(Incoming("terminal", "olga", text, language="ru")).reply()).text

    try:
        await ru("/story")
        assert (await ru("/undo")) == "Сейчас нет открытой истории. Напиши первый отрывок или выбери из /stories."
        await ru("Лиса нашла фонарь в снегу.")
        shown = (await ru("/show")).splitlines()
        assert re.fullmatch(r"«История без названия» \(история \d+, отрывков: 1\)", shown[0])
        assert shown[1:] == ["[1] (ты) Лиса нашла фонарь в снегу.", "Варианты на выбор:",
                             "  [1] (модель) Лиса сделала шаг номер 1.", "  [2] (модель) Лиса сделала шаг номер 2.",
                             "  [3] (модель) Лиса сделала шаг номер 3.", "Выбери 1–3."]
        assert (await ru("7")) == "Варианта 7 нет; выбери от 1 до 3."
        assert (await ru("/undo")).startswith("Отменено: отрывок 1 убран, а варианты на выбор отложены")
        assert (await ru("/undo")) == "Отменять нечего: история в самом начале."
        assert (await ru("/settings colour=3")).startswith("Нет такой настройки: 'colour'.")
        assert (await ru("/genre сказка")) == "Теперь жанр: «сказка»."
        assert (await ru("/genre")) == "Напиши после команды, что задать, например /genre ..."
        assert (await ru("/memory")) == "Память: (пусто)"
        assert (await ru("/export pdf")) == "Экспорт бывает в md, txt или json, например /export md."
        assert (await ru("/resume 999")) == "Истории 999 нет (или она не твоя). /stories покажет твои истории."
    finally:
        await tandem.close()


def test_the_story_commands_help_names_the_same_commands_in_russian() -> None:
    from skills.story_commands import HELP

    assert HELP["ru"].startswith("Команды историй:")
    assert re.findall(r"/\w+", HELP["ru"]) == re.findall(r"/\w+", HELP["en"])


def test_a_russian_story_reads_in_russian() -> None:
    from datetime import UTC, datetime

    from bot.storage.stories import PassageRecord, StoryRecord
    from bot.story.tree import StoryView
    from skills.story_text import render_view

    now = datetime.now(UTC)

    def passage(pid: int, author: str, text: str, status: str = "complete") -> PassageRecord:
        return PassageRecord(pid, 7, pid - 1 or None, author, text, status, None, None, None, now)

    story = StoryRecord(7, 1, "Фонарь", None, None, None, "ru", "", "", {}, 3, {}, now, now)
    path = [passage(1, "user", "Лиса нашла фонарь."), passage(2, "edited", "Фонарь светил."),
            passage(3, "model", "Лиса пошла", "incomplete")]
    view = StoryView(story, path, [passage(4, "model", "Дальше.")])
    assert render_view(view, last=2).splitlines() == [
        "«Фонарь» (история 7, отрывков: 3)", "… раньше отрывков: 1 (вся история — /export md)",
        "[2] (модель, с твоей правкой) Фонарь светил.", "[3] (модель, не закончен) Лиса пошла",
        "Варианты на выбор:", "  [1] (модель) Дальше.", "Выбери 1.",
    ]
    # The user's language, when given, is the one shown; a story with no passages says how to begin.
    empty = StoryView(story, [])
    assert render_view(empty, language="en").splitlines() == [
        '"Фонарь" (story 7, 0 passages)', '(no passages yet: write the first one, or say "continue")']
    assert render_view(empty).splitlines()[1] == "(отрывков пока нет: напиши первый или скажи «продолжай»)"


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
    ("2", "Taken: option 2.\nThe fox took step 2."),
    ("/end", "it is saved"),
    ("hi", "I'm Tandem"),
]


async def test_happy_path_from_onboarding_into_a_story_and_out(app) -> None:
    await check_happy_path(app.handle_turn, ONBOARDING_STORY)


ONBOARDING_STORIES = [
    ("hi", "I'm Tandem"),
    ("/stories", re.compile(r"^You have no stories yet\. Say /story to start one\.$")),  # no "let's write"
    ("Write a story", "Let's write a story!"),
    ("A fox found a lantern in the snow.", "Choose 1–3"),
    ("1", "Taken: option 1."),
    ("/end", "it is saved"),
    ("hi", "I'm Tandem"),
    ("my stories", re.compile(r"^Your stories:\n  1: \"Untitled story\", 4 passages\n/resume ID opens one\.$")),
    ("/resume 1", re.compile(r"^\"Untitled story\" \(story 1, 2 passages\)")),
    ("continue", "Choose 1–3"),
]


async def test_happy_path_listing_stories_from_onboarding_starts_nothing(app) -> None:
    await check_happy_path(app.handle_turn, ONBOARDING_STORIES)
