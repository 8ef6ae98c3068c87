"""The fallback skill: what nothing understood gets a line that says what Tandem can do, never the same
line twice in a row, and after two misunderstandings in a row a short line with choices to click."""

from __future__ import annotations

import itertools
import random

import pytest

from bot.core.annotations import Annotations, IntentGuess
from bot.core.messages import Incoming
from bot.core.skill import HistoryItem, Turn
from skills.fallback import (
    CHOICES,
    NOT_UNDERSTOOD,
    SOCIAL,
    STILL_LOST,
    SUGGESTIONS,
    FallbackSkill,
)

GIBBERISH = ["zqx blorp", "vlarg snib quux", "prrt fnord wizzle", "blix", "qqq zzz xxx", "mrph glorb"]


class Conversation:
    """One conversation's turns as the dispatcher gives them to the skill: its persisted state and history."""

    def __init__(self, skill: FallbackSkill, language: str = "en") -> None:
        self.skill, self.language = skill, language
        self.state: dict = {}
        self.history: list[HistoryItem] = []

    async def say(self, text: str, intent: str | None = None) -> Turn:
        guess = IntentGuess(intent, 0.99, "rules") if intent else None
        turn = Turn("c1", 1, "test", text, self.language, Annotations(intent=guess),
                    history=list(self.history), state=self.state)
        reply = await self.skill.respond(turn)
        turn.data["reply"] = reply
        self.history += [HistoryItem("user", text), HistoryItem("bot", reply, self.skill.name)]
        return turn

    def other_skill_answers(self, text: str = "how are you?") -> None:
        self.history += [HistoryItem("user", text), HistoryItem("bot", "Fine, thanks!", "smalltalk")]


@pytest.mark.parametrize("language", ["en", "ru"])
async def test_a_first_misunderstanding_says_what_tandem_can_do_and_never_repeats_itself(language) -> None:
    talk = Conversation(FallbackSkill(rng=random.Random(7)), language)
    said = []
    for round_ in range(40):
        talk.other_skill_answers()  # something understood in between: each miss is a first one
        turn = await talk.say(GIBBERISH[round_ % len(GIBBERISH)])
        said.append(turn.data["reply"])
        assert turn.data["reply"] in NOT_UNDERSTOOD[language]
        assert turn.suggestions == list(SUGGESTIONS[language])
    assert all(a != b for a, b in itertools.pairwise(said))
    assert set(said) == set(NOT_UNDERSTOOD[language])  # every phrasing gets its turn


def test_every_phrasing_names_the_way_to_see_everything() -> None:
    assert len(NOT_UNDERSTOOD["en"]) == len(NOT_UNDERSTOOD["ru"]) >= 3
    assert all("help" in line.lower() for line in NOT_UNDERSTOOD["en"])
    assert all("помощь" in line.lower() for line in NOT_UNDERSTOOD["ru"])
    # Between them they name everything Tandem does.
    everything_en = " ".join(NOT_UNDERSTOOD["en"]).lower()
    for ability in ("story", "chat", "joke", "fun fact", "time", "name", "rate"):
        assert ability in everything_en, ability


@pytest.mark.parametrize("language", ["en", "ru"])
async def test_two_misunderstandings_in_a_row_get_a_short_line_with_choices(language) -> None:
    talk = Conversation(FallbackSkill(rng=random.Random(3)), language)
    first = await talk.say("zqx blorp")
    second = await talk.say("vlarg snib quux")
    third = await talk.say("prrt fnord")
    assert first.data["reply"] in NOT_UNDERSTOOD[language]
    assert second.data["reply"] in STILL_LOST[language] and third.data["reply"] in STILL_LOST[language]
    assert second.data["reply"] != third.data["reply"]
    assert len(second.data["reply"]) < min(len(line) for line in NOT_UNDERSTOOD[language])
    assert second.suggestions == list(CHOICES[language]) == third.suggestions
    assert len(CHOICES[language]) >= 3


async def test_an_understood_message_or_a_social_answer_ends_the_streak() -> None:
    talk = Conversation(FallbackSkill(rng=random.Random(1)))
    await talk.say("zqx blorp")
    talk.other_skill_answers()
    assert (await talk.say("vlarg snib")).data["reply"] in NOT_UNDERSTOOD["en"]
    assert (await talk.say("thanks", intent="thanks")).data["reply"] == SOCIAL["thanks"]["en"]
    assert (await talk.say("prrt fnord")).data["reply"] in NOT_UNDERSTOOD["en"]
    assert (await talk.say("mrph glorb")).data["reply"] in STILL_LOST["en"]


async def test_a_language_other_than_english_or_russian_is_answered_in_english() -> None:
    talk = Conversation(FallbackSkill(), "de")
    assert (await talk.say("zqx blorp")).data["reply"] in NOT_UNDERSTOOD["en"]


@pytest.mark.parametrize("language, gibberish, lines, choices", [
    (None, ["zqx blorp", "vlarg snib quux", "prrt fnord wizzle"], NOT_UNDERSTOOD["en"], CHOICES["en"]),
    ("ru", ["кхм бррр", "флырк шмяк", "тыдыщ брумс"], NOT_UNDERSTOOD["ru"], CHOICES["ru"]),
])
async def test_through_the_dispatcher_the_streak_and_the_last_line_are_kept_per_conversation(
        tandem, language, gibberish, lines, choices) -> None:
    async def say(user: str, text: str):
        return await tandem.handle_turn(Incoming("terminal", user, text, language=language)).reply()

    first, other_user = await say("ann", gibberish[0]), await say("bob", gibberish[0])
    second, third = await say("ann", gibberish[1]), await say("ann", gibberish[2])
    assert {first.skill, second.skill, third.skill, other_user.skill} == {"fallback"}
    assert first.text in lines and other_user.text in lines  # bob's first miss is his own
    assert second.text not in lines and second.text != third.text
    assert tuple(second.suggestions) == choices == tuple(third.suggestions)
