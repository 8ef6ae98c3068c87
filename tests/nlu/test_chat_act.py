"""The shape of ordinary conversation: remarks in the first person and questions to the bot about itself
are chit-chat; tasks, lookups, noise and lone words are not; an earlier intent is never overridden."""

from __future__ import annotations

import pytest

from bot.core.annotations import Annotations, IntentGuess
from bot.nlu.chat_act import ChatActAnnotator, kind_of_message


@pytest.mark.parametrize("text", [
    "I just made pancakes for dinner", "I'm so angry at my boss", "my cat is sleeping on the sofa again",
    "we went to the lake on Sunday", "do you like rain?", "what's the best part of your day?",
    "have you ever seen snow?", "у меня был очень длинный день", "мне скучно", "ты любишь дождь?",
    "мы с друзьями ходили в кино", "I love the weather today", "вчера ходил в кино на новый фильм",
    "очень волнуюсь перед экзаменом", "обожаю шахматы и походы", "за окном весь день идёт снег",
    "it's been raining all day here",
])
def test_conversation_is_chat(text) -> None:
    assert kind_of_message(text) == "chat"


@pytest.mark.parametrize("text", [
    "what's the capital of Peru?", "book me a flight", "can you book me a flight to Rome", "I need to book a hotel",
    "convert 5 miles to km", "please translate this into French", "how many miles is a marathon",
    "what's the weather like?", "найди мне рецепт борща", "какая погода в Москве?", "закажи пиццу",
    "write me a python script that sorts a list", "I'm lost, can you help me?", "помоги мне, пожалуйста",
    "asdkjh qwe", "zxqv blorp", "ok", "lol", "The knight drew his sword.", "what time is it",
])
def test_tasks_lookups_and_noise_are_not(text) -> None:
    assert kind_of_message(text) != "chat"


async def test_it_names_the_chat_intent_only_when_nothing_else_did() -> None:
    annotator = ChatActAnnotator("chitchat", 0.55)
    annotations = Annotations()
    await annotator.annotate("I just got back from the sea", annotations)
    assert annotations.intent == IntentGuess("chitchat", 0.55, "chat_act") and annotations.ranking[0].source == "chat_act"
    held = Annotations(intent=IntentGuess("story", 0.9, "embedding"))
    await annotator.annotate("I just got back from the sea", held)
    assert held.intent.name == "story"


async def test_tasks_and_lookups_are_unsupported_and_a_remark_outweighs_a_classifiers_unsupported() -> None:
    annotator = ChatActAnnotator("chitchat", 0.55, unsupported="unsupported")
    task = Annotations()
    await annotator.annotate("book me a flight to Rome", task)
    assert task.intent.name == "unsupported" and task.values["chat_act"] == "task"
    remark = Annotations(intent=IntentGuess("unsupported", 0.6, "embedding"))
    await annotator.annotate("it's been snowing all week here", remark)
    assert remark.intent.name == "chitchat" and remark.values["chat_act"] == "chat"
    lookup = Annotations(intent=IntentGuess("unsupported", 0.9, "embedding"))
    await annotator.annotate("will it snow in Oslo tomorrow?", lookup)
    assert lookup.intent == IntentGuess("unsupported", 0.9, "embedding")
