"""aside_intent and answer_to_check (bot/dispatch/asides.py): which messages inside a held story are
meant for the bot, judged by the intent guess and the message's shape, and the answer to the check."""

from __future__ import annotations

import pytest

from bot.core.annotations import IntentGuess
from bot.dispatch.asides import answer_to_check, aside_intent

SURE = IntentGuess("chitchat", 0.71, "classifier")


@pytest.mark.parametrize("text", [
    "Лиса нашла фонарь в снегу.",
    "The fox found a lantern in the snow.",
    "Ветер совсем стих…",
    "The door was open.",
])
def test_a_finished_sentence_about_neither_user_nor_bot_is_narration_however_sure_the_guess(text) -> None:
    assert aside_intent(text, SURE, 0.5) is None


@pytest.mark.parametrize("text", [
    "I'm so bored.", "мне скучно.", "we should stop.", "lol", "nice one", "ok cool!", "что за чушь",
])
def test_a_short_remark_with_a_sure_guess_is_an_aside(text) -> None:
    assert aside_intent(text, SURE, 0.5) == "chitchat"


@pytest.mark.parametrize("text", ["do you like foxes?", "ты любишь лис.", "The fox slept. Do you?"])
def test_a_message_that_talks_to_the_bot_is_an_aside_when_the_guess_is_sure(text) -> None:
    assert aside_intent(text, SURE, 0.5) == "chitchat"


def test_an_unsure_guess_is_never_an_aside_and_a_rule_always_is() -> None:
    assert aside_intent("do you like foxes?", IntentGuess("chitchat", 0.4, "classifier"), 0.5) is None
    assert aside_intent("The fox howled.", IntentGuess("joke", 1.0, "rules"), 0.5) == "joke"


def test_dialogue_and_long_passages_are_never_asides() -> None:
    rule = IntentGuess("greeting", 1.0, "rules")
    assert aside_intent('"Hello," said the fox.', rule, 0.5) is None
    assert aside_intent(" ".join(["word"] * 21), rule, 0.5) is None


@pytest.mark.parametrize(("text", "answer"), [
    ("Add to the story", "add"), ("Да, добавь", "add"), ("Leave it", "leave"), ("не надо", "leave"),
    ("The fox ran.", None),
])
def test_the_answer_to_the_check(text, answer) -> None:
    assert answer_to_check(text) == answer
