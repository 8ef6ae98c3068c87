"""The small-talk skill: chosen for the chitchat intent, short replies in the persona with history and
language, a nudge toward stories, and unsafe output replaced."""

from __future__ import annotations

import pytest

from bot.app import build_app
from bot.core.annotations import Annotations
from bot.core.messages import Incoming
from bot.core.skill import HistoryItem, Turn
from bot.models.fake import FakeLanguageModel
from skills.safety import OutputSafety
from skills.smalltalk import SmallTalkSkill


def turn(text: str, language: str = "en", history=()) -> Turn:
    return Turn("c1", 1, "test", text, language, Annotations(), history=list(history))


async def test_the_dispatcher_sends_chitchat_here_and_out_of_scope_to_the_fallback(settings) -> None:
    model = FakeLanguageModel("I'm doing well, thank you! How about you?")
    tandem = await build_app(settings, language_model=model)
    try:
        reply = await tandem.handle_turn(Incoming("terminal", "ann", "how are you?")).reply()
        assert reply.skill == "smalltalk" and reply.intent == "chitchat"
        assert reply.text.startswith("I'm doing well, thank you!")
        reply = await tandem.handle_turn(Incoming("terminal", "ann", "zqx blorp")).reply()
        assert reply.skill == "fallback"
        reply = await tandem.handle_turn(Incoming("terminal", "ann", "как дела?")).reply()
        assert reply.skill == "smalltalk"
    finally:
        await tandem.close()


async def test_replies_are_at_most_three_whole_sentences() -> None:
    skill = SmallTalkSkill(model=FakeLanguageModel("One. Two! Three? Four. Five and"), safety=OutputSafety({}))
    assert await skill.respond(turn("hi there")) == "One. Two! Three?"


async def test_the_prompt_has_the_persona_history_and_language() -> None:
    model = FakeLanguageModel("Привет! У меня всё хорошо.")
    skill = SmallTalkSkill(model=model, safety=OutputSafety({}, use_classifier=False))
    history = [HistoryItem("user", "я люблю чай"), HistoryItem("bot", "Чай это здорово.", "smalltalk")]
    reply = await skill.respond(turn("как дела?", "ru", history))
    assert reply.startswith("Привет! У меня всё хорошо.")
    prompt = model.calls[-1].prompt
    assert "Tandem" in prompt[0].content and "Russian" in prompt[0].content
    assert [(m.role, m.content) for m in prompt[1:]] == [
        ("user", "я люблю чай"), ("assistant", "Чай это здорово."), ("user", "как дела?")]


async def test_canned_lines_of_other_skills_are_not_shown_to_the_model_as_its_own() -> None:
    model = FakeLanguageModel("Oh no, I'm sorry to hear that.")
    skill = SmallTalkSkill(model=model, safety=OutputSafety({}, use_classifier=False))
    canned = "I'm not sure I understood that. I can write a story with you, chat, or take your feedback."
    history = [HistoryItem("user", "purple monkey"), HistoryItem("bot", canned, "fallback"),
               HistoryItem("user", "hi"), HistoryItem("bot", "Hi! Nice to see you.", "smalltalk")]
    await skill.respond(turn("I'm feeling sad today", "en", history))
    shown = [(m.role, m.content) for m in model.calls[-1].prompt[1:]]
    # The user's messages stay, joined where a left-out line stood between them (roles alternate).
    assert shown == [("user", "purple monkey\nhi"), ("assistant", "Hi! Nice to see you."),
                     ("user", "I'm feeling sad today")]


async def test_a_reply_in_the_wrong_language_becomes_a_persona_reply() -> None:
    skill = SmallTalkSkill(model=FakeLanguageModel("I am fine, thank you very much."), safety=OutputSafety({}))
    reply = await skill.respond(turn("как дела?", "ru"))
    assert reply in skill.persona.fallback_replies["ru"]


@pytest.mark.parametrize("unsafe", ["You are a fucking idiot.", "You should kill yourself."])
async def test_unsafe_output_is_replaced_by_a_safe_reply(unsafe: str) -> None:
    skill = SmallTalkSkill(model=FakeLanguageModel(unsafe))
    t = turn("what do you think of me?")
    reply = await skill.respond(t)
    assert reply.startswith(skill.persona.safe_replies["en"][0]) and t.data["smalltalk_replaced"]


async def test_the_classifier_catches_what_the_word_list_misses() -> None:
    safety = OutputSafety({})
    if not safety.has_classifier:
        pytest.skip("alt-profanity-check is not installed")
    assert await safety.is_unsafe("you are a stupid ugly moron and everybody hates you")
    assert not await safety.is_unsafe("What a lovely day for a walk in the park.")


async def test_a_story_nudge_when_the_topic_fits_and_now_and_then() -> None:
    skill = SmallTalkSkill(model=FakeLanguageModel("Dragons are wonderful creatures."), safety=OutputSafety({}))
    t = turn("I dreamed about a dragon last night")
    reply = await skill.respond(t)
    assert reply.endswith("Want to write a story about that?") and t.suggestions == ["Write a story"]
    state: dict = {}
    nudged = []
    for _ in range(8):
        t = turn("nice weather today")
        t.state = state
        nudged.append((await skill.respond(t)).endswith("about that?"))
    assert nudged.count(True) == 2


async def test_a_failing_model_gets_a_persona_reply() -> None:
    from bot.models.fake import FakeScript

    skill = SmallTalkSkill(model=FakeLanguageModel(script=FakeScript(fail_after=0)), safety=OutputSafety({}))
    assert await skill.respond(turn("hi")) in skill.persona.fallback_replies["en"]
