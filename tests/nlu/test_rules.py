"""The rule annotator on the shipped catalogue: a rule written for a bare request also matches it with
the openers and tags people wrap around it ("by the way, …", "…, помнишь?"), and nothing more."""

from __future__ import annotations

import pytest

from bot.nlu.catalogue import IntentCatalogue
from bot.nlu.rules import RuleAnnotator, without_discourse_markers
from bot.settings import PROJECT_ROOT


@pytest.fixture(scope="module")
def rules() -> RuleAnnotator:
    return RuleAnnotator(IntentCatalogue.load(PROJECT_ROOT / "intents"))


@pytest.mark.parametrize(("text", "bare"), [
    ("by the way, what time is it?", "what time is it?"),
    ("кстати, сколько времени?", "сколько времени?"),
    ("как меня зовут, помнишь?", "как меня зовут?"),
    ("ok so, what can you do", "what can you do"),
    ("actually, just call me Pri", "just call me Pri"),
    ("Andrew is here", "Andrew is here"),
    ("автобус опоздал", "автобус опоздал"),
])
def test_openers_and_tags_are_taken_off(text, bare) -> None:
    assert without_discourse_markers(text) == bare


@pytest.mark.parametrize(("text", "intent"), [
    ("and what can you do in English?", "help"), ("а что ты вообще можешь?", "help"),
    ("я запутался, помоги разобраться", "help"), ("хочу поставить тебе оценку", "feedback"),
    ("I want to rate you", "feedback"), ("how's your evening?", "chitchat"),
    ("what am I called?", "user_profile"), ("как меня зовут, помнишь?", "user_profile"),
    ("кстати, сколько времени?", "datetime"), ("привет! как дела?", "chitchat"), ("hi! how are you?", "chitchat"),
    ("hi there", "greeting"), ("привет", "greeting"),
])
def test_requests_in_their_everyday_wrapping_find_their_rule(rules, text, intent) -> None:
    assert rules.match(text) == intent


@pytest.mark.parametrize("text", ["what can you tell me about dragons", "so tired of waiting for the bus",
                                  "The knight asked what time it was."])
def test_other_messages_are_left_to_the_classifier(rules, text) -> None:
    assert rules.match(text) is None


@pytest.mark.parametrize(("text", "intent"), [
    ("funny!", "chitchat"), ("haha, that's hilarious", "chitchat"), ("ахах, так смешно", "chitchat"),
    ("очень забавно)", "chitchat"), ("прикольно!", "chitchat"),
    ("tell me something funny", None), ("скажи что-нибудь смешное", "joke"), ("смешно, ещё", "another"),
])
def test_a_reaction_is_small_talk_and_a_request_for_more_is_not(rules, text, intent) -> None:
    """"Funny!" answers the bot; "something funny" and "funny, another" ask for a joke."""
    assert rules.match(text) == intent
