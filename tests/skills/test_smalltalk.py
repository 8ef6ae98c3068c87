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


def turn(text: str, language: str = "en", history=(), slots=None) -> Turn:
    return Turn("c1", 1, "test", text, language, Annotations(), history=list(history), slots=dict(slots or {}))


async def streamed(skill: SmallTalkSkill, t: Turn) -> list[str]:
    return [piece async for piece in skill.respond(t)]


async def answer(skill: SmallTalkSkill, t: Turn) -> str:
    """The reply as the dispatcher stores it: the streamed pieces, or the rewritten text."""
    pieces = await streamed(skill, t)
    return t.rewritten if t.rewritten is not None else "".join(pieces)


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
    assert await answer(skill, turn("hi there")) == "One. Two! Three?"


async def test_the_prompt_has_the_persona_history_and_language() -> None:
    model = FakeLanguageModel("Привет! У меня всё хорошо.")
    skill = SmallTalkSkill(model=model, safety=OutputSafety({}, use_classifier=False))
    history = [HistoryItem("user", "я люблю чай"), HistoryItem("bot", "Чай это здорово.", "smalltalk")]
    reply = await answer(skill, turn("как дела?", "ru", history))
    assert reply.startswith("Привет! У меня всё хорошо.")
    prompt = model.calls[-1].prompt
    assert "Tandem" in prompt[0].content and "Russian" in prompt[0].content and "«ты»" in prompt[0].content
    assert [(m.role, m.content) for m in prompt[1:]] == [
        ("user", "я люблю чай"), ("assistant", "Чай это здорово."), ("user", "как дела?")]


async def test_canned_lines_of_other_skills_are_not_shown_to_the_model_as_its_own() -> None:
    model = FakeLanguageModel("Oh no, I'm sorry to hear that.")
    skill = SmallTalkSkill(model=model, safety=OutputSafety({}, use_classifier=False))
    canned = "I'm not sure I understood that. I can write a story with you, chat, or take your feedback."
    history = [HistoryItem("user", "purple monkey"), HistoryItem("bot", canned, "fallback"),
               HistoryItem("user", "hi"), HistoryItem("bot", "Hi! Nice to see you.", "smalltalk")]
    await answer(skill, turn("I'm feeling sad today", "en", history))
    shown = [(m.role, m.content) for m in model.calls[-1].prompt[1:]]
    # The user's messages stay, joined where a left-out line stood between them (roles alternate).
    assert shown == [("user", "purple monkey\nhi"), ("assistant", "Hi! Nice to see you."),
                     ("user", "I'm feeling sad today")]


async def test_a_reply_in_the_wrong_language_becomes_a_persona_reply() -> None:
    skill = SmallTalkSkill(model=FakeLanguageModel("I am fine, thank you very much."), safety=OutputSafety({}))
    reply = await answer(skill, turn("как дела?", "ru"))
    assert reply in skill.persona.fallback_replies["ru"]


@pytest.mark.parametrize("unsafe", ["You are a fucking idiot.", "You should kill yourself."])
async def test_unsafe_output_is_replaced_by_a_safe_reply(unsafe: str) -> None:
    skill = SmallTalkSkill(model=FakeLanguageModel(unsafe))
    t = turn("what do you think of me?")
    reply = await answer(skill, t)
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
    reply = await answer(skill, t)
    assert reply.endswith("Want to write a story about that?") and t.suggestions == ["Write a story"]
    state: dict = {}
    nudged = []
    for _ in range(8):
        t = turn("nice weather today")
        t.state = state
        nudged.append((await answer(skill, t)).endswith("about that?"))
    assert nudged.count(True) == 2


async def test_a_failing_model_gets_a_persona_reply() -> None:
    from bot.models.fake import FakeScript

    skill = SmallTalkSkill(model=FakeLanguageModel(script=FakeScript(fail_after=0)), safety=OutputSafety({}))
    assert await answer(skill, turn("hi")) in skill.persona.fallback_replies["en"]


async def test_the_reply_streams_word_by_word_and_stands_as_shown() -> None:
    skill = SmallTalkSkill(model=FakeLanguageModel("I'm doing well today, thanks for asking! And you?"),
                           safety=OutputSafety({}, use_classifier=False))
    t = turn("how are you?")
    pieces = await streamed(skill, t)
    assert len(pieces) >= 4  # shown as it is written, not in one piece at the end
    assert "".join(pieces) == "I'm doing well today, thanks for asking! And you?" and t.rewritten is None


async def test_the_model_is_stopped_at_the_sentence_limit_and_at_a_turn_marker() -> None:
    model = FakeLanguageModel("One here. Two here! Three here? Four here. Five here.")
    skill = SmallTalkSkill(model=model, safety=OutputSafety({}, use_classifier=False))
    assert "".join(await streamed(skill, turn("hi there"))) == "One here. Two here! Three here?"
    assert model.calls[-1].cancelled  # the generation was stopped, not run to its end
    model = FakeLanguageModel("Glad to hear it, my friend.\nUser: now write my homework")
    skill = SmallTalkSkill(model=model, safety=OutputSafety({}, use_classifier=False))
    t = turn("I'm fine")
    assert await answer(skill, t) == "Glad to hear it, my friend."
    assert "homework" not in "".join(await streamed(skill, turn("I'm fine")))


async def test_a_listed_word_late_in_the_stream_rewrites_the_whole_reply() -> None:
    skill = SmallTalkSkill(model=FakeLanguageModel("That sounds like a plan, you absolute bastard."),
                           safety=OutputSafety({"en": ["bastard"]}, use_classifier=False))
    t = turn("let's go")
    pieces = await streamed(skill, t)
    assert "bastard" not in "".join(pieces)
    assert t.rewritten in skill.persona.safe_replies["en"] and t.data["smalltalk_replaced"]


async def test_an_unfinished_last_sentence_is_cut_from_the_stored_reply() -> None:
    skill = SmallTalkSkill(model=FakeLanguageModel("Sounds lovely. I would love to hear more about"),
                           safety=OutputSafety({}, use_classifier=False))
    t = turn("I went for a walk")
    await streamed(skill, t)
    assert t.rewritten == "Sounds lovely."


@pytest.mark.parametrize(("text", "language", "mood"), [
    ("I'm feeling really sad today", "en", "sad"),
    ("I had such a rough day at work", "en", "sad"),
    ("мне сегодня так грустно", "ru", "sad"),
    ("this is so annoying, I hate it", "en", "angry"),
    ("меня всё бесит", "ru", "angry"),
    ("I got the job, I'm so happy!", "en", "happy"),
])
async def test_the_mood_of_a_message_shapes_the_prompt_and_stops_the_story_pitch(text, language, mood) -> None:
    model = FakeLanguageModel("Ну что ты. Расскажи мне." if language == "ru" else "Oh, I hear you. Tell me more.")
    skill = SmallTalkSkill(model=model, safety=OutputSafety({}, use_classifier=False))
    t = turn(text, language)
    t.state["since_nudge"] = 99  # a story pitch is due
    reply = await answer(skill, t)
    assert t.data["mood"] == mood
    assert skill.persona.moods[mood].guidance in model.calls[-1].prompt[0].content
    assert ("story" in reply or "историю" in reply) == skill.persona.moods[mood].nudge


async def test_the_sentiment_annotator_counts_when_no_mood_word_is_there() -> None:
    model = FakeLanguageModel("I'm sorry. That sounds hard.")
    skill = SmallTalkSkill(model=model, safety=OutputSafety({}, use_classifier=False))
    t = turn("everything went wrong and nothing works")
    t.annotations.values["sentiment"] = {"label": "negative", "compound": -0.7}
    await answer(skill, t)
    assert t.data["mood"] == "sad"
    neutral = turn("the bus was on time")
    await answer(skill, neutral)
    assert "mood" not in neutral.data


async def test_what_the_user_told_about_themselves_is_in_the_prompt() -> None:
    model = FakeLanguageModel("Nice to see you again, Olga.")
    skill = SmallTalkSkill(model=model, safety=OutputSafety({}, use_classifier=False))
    await answer(skill, turn("hello again", slots={"user_name": "Olga", "user_likes": ["cats", "rainy days"]}))
    system = model.calls[-1].prompt[0].content
    assert "Olga" in system and "cats, rainy days" in system


async def test_small_talk_streams_through_the_dispatcher_and_stores_the_final_text(settings) -> None:
    model = FakeLanguageModel("I'm doing great, thanks for asking. How about you?")
    tandem = await build_app(settings, language_model=model)
    try:
        stream = tandem.handle_turn(Incoming("terminal", "bo", "how are you?"))
        pieces = [piece async for piece in stream]
        reply = await stream.reply()
        assert reply.skill == "smalltalk" and len(pieces) >= 3
        assert reply.text == "".join(pieces).strip()
        model.script.outputs = ["Oh no, I'm sorry. That must hurt a lot, and I"]
        stream = tandem.handle_turn(Incoming("terminal", "bo", "I'm so sad, my cat is ill"))
        pieces = [piece async for piece in stream]
        reply = await stream.reply()
        assert reply.text == "Oh no, I'm sorry. That must hurt a lot." or reply.text.startswith("Oh no, I'm sorry.")
        assert "and I" not in reply.text
        stored = await tandem.conversations.history(reply.conversation_id, 10)
        assert stored[-1].text == reply.text
    finally:
        await tandem.close()


async def test_a_russian_reply_that_says_vy_is_written_again_and_the_informal_one_kept() -> None:
    model = FakeLanguageModel(["Я понимаю вас. Расскажите подробнее.", "Понимаю тебя. Расскажи подробнее."])
    skill = SmallTalkSkill(model=model, safety=OutputSafety({}, use_classifier=False))
    t = turn("я так устал", "ru")
    assert await answer(skill, t) == "Понимаю тебя. Расскажи подробнее." and t.data["register_retry"]
    assert "«ты»" in model.calls[-1].prompt[0].content and len(model.calls) == 2
    still = FakeLanguageModel(["Я понимаю вас. Расскажите подробнее.", "Вы правы, расскажите, как вы."])
    skill = SmallTalkSkill(model=still, safety=OutputSafety({}, use_classifier=False))
    assert await answer(skill, turn("я так устал", "ru")) == "Я понимаю вас. Расскажите подробнее."


async def test_a_generation_cut_off_by_a_model_error_is_replaced_not_kept() -> None:
    from bot.models.fake import FakeScript

    model = FakeLanguageModel(script=FakeScript(outputs=("Well, I think that is a lovely idea. And",), fail_after=3))
    skill = SmallTalkSkill(model=model, safety=OutputSafety({}, use_classifier=False))
    t = turn("shall we go?")
    await streamed(skill, t)
    assert t.rewritten in skill.persona.fallback_replies["en"] and t.data["declined"]
