"""The routing policy on the shipped graphs, intents and skills (a fake generative model): a graph's
fallback node gives way to a skill that claims the message, and help, goodbye and feedback asked
for in so many words are honoured inside a skill that holds the conversation."""

from __future__ import annotations

import pytest

from bot.app import build_app
from bot.core.messages import Incoming
from bot.models.fake import FakeLanguageModel

ANSWER = "I'm doing well, thank you for asking."


@pytest.fixture
async def tandem(settings):
    app = await build_app(settings, language_model=FakeLanguageModel([ANSWER]))
    try:
        yield app
    finally:
        await app.close()


async def say(tandem, user: str, text: str, language: str = "en"):
    return await tandem.handle_turn(Incoming("test", user, text, language=language)).reply()


@pytest.mark.parametrize(("language", "hello", "chat"), [
    ("en", "hi", "how are you?"),
    ("ru", "привет", "как дела?"),
])
async def test_small_talk_after_the_greeting_is_answered_not_refused(tandem, language, hello, chat) -> None:
    greeted = await say(tandem, "ann", hello, language)
    assert greeted.skill == "graph"  # the onboarding flow welcomes
    reply = await say(tandem, "ann", chat, language)
    # Before: the onboarding flow's not_understood node ("Sorry, I didn't quite get that").
    assert reply.skill == "smalltalk"
    if language == "en":  # (a Russian turn refuses the fake model's English answer for a line of its own)
        assert reply.text == ANSWER


async def test_thanks_inside_the_onboarding_flow_gets_a_social_answer(tandem) -> None:
    await say(tandem, "bob", "hi")
    reply = await say(tandem, "bob", "thanks")
    assert reply.skill == "fallback" and reply.text == "You're welcome!"


async def test_what_nothing_claims_still_gets_the_flows_fallback(tandem) -> None:
    await say(tandem, "cid", "hi")
    reply = await say(tandem, "cid", "zxqv blorp")
    assert reply.skill == "graph" and "didn't quite get that" in reply.text


async def test_help_inside_a_story_answers_and_the_story_stays_open(tandem) -> None:
    await say(tandem, "dee", "let's write a story")
    helped = await say(tandem, "dee", "help")
    assert helped.skill == "help"
    after = await say(tandem, "dee", "The ferry left at dawn.")
    assert after.skill == "story"  # still writing: help was an aside


async def test_goodbye_inside_a_story_leaves_it(tandem) -> None:
    await say(tandem, "eve", "let's write a story")
    bye = await say(tandem, "eve", "bye")
    assert bye.skill != "story"  # not taken as a passage
    after = await say(tandem, "eve", "how are you?")
    assert after.skill == "smalltalk"


async def in_a_story(tandem, user: str, language: str = "en") -> None:
    start, passage = (("давай напишем историю", "Рыцарь вошёл в тёмную пещеру.") if language == "ru"
                      else ("let's write a story", "The knight drew his sword and stepped into the cave."))
    assert (await say(tandem, user, start, language)).skill == "story"
    assert (await say(tandem, user, passage, language)).skill == "story"


@pytest.mark.parametrize("aside", ["how are you?", "how are you doing today?"])
async def test_a_remark_meant_for_the_bot_inside_a_story_is_asked_about_not_written(tandem, aside) -> None:
    await in_a_story(tandem, "fay")
    checked = await say(tandem, "fay", aside)
    assert checked.skill == "story" and checked.text == "Add that to the story, or leave it?"
    assert checked.suggestions == ("Add to the story", "Leave it")
    left = await say(tandem, "fay", "Leave it")
    assert left.skill == "smalltalk" and left.text.startswith(ANSWER)
    assert "story is waiting" in left.text
    after = await say(tandem, "fay", "The cave smelled of smoke and old iron.")
    assert after.skill == "story" and after.data.get("aside_check") is None  # the story held on


async def test_add_to_the_story_makes_the_remark_a_passage(tandem) -> None:
    await in_a_story(tandem, "gus")
    await say(tandem, "gus", "how are you?")
    added = await say(tandem, "gus", "Add to the story")
    assert added.skill == "story"
    assert "aside_check" not in added.data
    user = await tandem.conversations.user_for("test", "gus")
    [(story, _)] = await tandem.stories.repo.list_stories(user)
    texts = [p.text for p in (await tandem.stories.repo.passages(user, story.id)).values() if p.author == "user"]
    assert texts[-1] == "how are you?"  # the remark, not "Add to the story"


async def test_something_else_after_the_check_drops_it_and_counts_as_it_comes(tandem) -> None:
    await in_a_story(tandem, "hal")
    await say(tandem, "hal", "how are you?")
    passage = await say(tandem, "hal", "Far below, water dripped onto the stones.")
    assert passage.skill == "story" and passage.data.get("aside_check") is None
    again = await say(tandem, "hal", "yes")  # no question is pending any more: a passage, not "add"
    assert again.skill == "story"


@pytest.mark.parametrize("passage", [
    "\"How are you?\" the old man asked the knight.",
    "— Как ты? — спросил старик.",
    "The knight wondered how the dragon was doing after all these years alone in the mountains, "
    "and whether it still remembered him at all.",
    "She smiled and said nothing for a long while.",
    "Лиса нашла фонарь в снегу.",  # e5 reads it as sure chit-chat: narration all the same
    "The fox found a lantern in the snow.",
])
async def test_dialogue_and_narration_are_passages_without_a_question(tandem, passage) -> None:
    language = "ru" if any("а" <= c <= "я" for c in passage.casefold()) else "en"
    await in_a_story(tandem, "ian", language)
    reply = await say(tandem, "ian", passage, language)
    assert reply.skill == "story" and "aside_check" not in reply.data


async def test_the_check_in_russian(tandem) -> None:
    await in_a_story(tandem, "яна", "ru")
    checked = await say(tandem, "яна", "как дела?", "ru")
    assert checked.text == "Добавить это в историю или не надо?"
    assert checked.suggestions == ("Добавить в историю", "Не добавлять")
    left = await say(tandem, "яна", "не добавлять", "ru")
    assert left.skill == "smalltalk" and "история ждёт" in left.text


@pytest.mark.parametrize(("text", "language"), [
    ("I just made pancakes for dinner", "en"), ("we went to the lake on Sunday", "en"),
    ("have you ever seen snow?", "en"), ("у меня был очень длинный день", "ru"),
])
async def test_ordinary_conversation_far_from_every_example_is_small_talk(tandem, text, language) -> None:
    await say(tandem, "joy", "привет" if language == "ru" else "hi", language)
    reply = await say(tandem, "joy", text, language)
    assert reply.skill == "smalltalk"


@pytest.mark.parametrize("text", ["what's the capital of Peru?", "book me a flight to Rome", "asdkjh qwe"])
async def test_what_really_is_out_of_scope_still_gets_the_fallback(tandem, text) -> None:
    reply = await say(tandem, "kit", text)
    assert reply.skill == "fallback"


async def test_a_first_person_passage_in_a_story_is_written_without_a_question(tandem) -> None:
    await in_a_story(tandem, "lou")
    reply = await say(tandem, "lou", "I opened the door.")
    assert reply.skill == "story" and "aside_check" not in reply.data


async def test_a_name_in_a_story_is_a_characters_unless_the_user_leaves_it_out(tandem) -> None:
    await in_a_story(tandem, "max")
    await say(tandem, "max", "My name is Bob and I guard this bridge, the troll growled at the knight.")
    state = await tandem.conversations.load_state((await say(tandem, "max", "The knight bowed.")).conversation_id)
    assert "user_name" not in state.slots
    checked = await say(tandem, "max", "my name is Olga")
    assert checked.data.get("aside_check") == "introduce"
    left = await say(tandem, "max", "Leave it")
    assert left.skill == "profile" and "Olga" in left.text
    asked = await say(tandem, "max", "/end")
    assert (await say(tandem, "max", "what's my name?")).text.count("Olga") == 1 and asked.skill == "story"


@pytest.mark.parametrize(("answer", "skill"), [
    ("nothing really happened, it's just a grey mood", "smalltalk"),
    ("yes", "smalltalk"), ("no, not really", "smalltalk"),
    ("book me a flight to Rome", "fallback"), ("what's the capital of Peru?", "fallback"),
    ("asdkjh qwe", "fallback"),
])
async def test_an_answer_to_small_talk_goes_back_to_it_but_tasks_and_noise_do_not(tandem, answer, skill) -> None:
    assert (await say(tandem, "ned", "how are you?")).skill == "smalltalk"
    assert (await say(tandem, "ned", answer)).skill == skill


async def test_after_another_skills_reply_an_unclaimed_remark_is_not_a_follow_up(tandem) -> None:
    assert (await say(tandem, "oli", "help")).skill == "help"
    assert (await say(tandem, "oli", "zqx blorp")).skill == "fallback"
