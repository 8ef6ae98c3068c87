"""The response selector: which skills become candidates, how replies are scored, and through the
dispatcher: candidates answer side by side, the best reply is said, every candidate and its score
are stored with the turn, and a candidate that is not chosen leaves no state behind."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bot.core.annotations import Annotations, IntentGuess
from bot.core.messages import Incoming
from bot.core.skill import HistoryItem, Skill, Turn
from bot.dispatch.dispatcher import Dispatcher
from bot.dispatch.registry import SkillRegistry
from bot.dispatch.selector import (
    FALLBACK_PRIOR,
    Candidate,
    SelectorConfig,
    candidate_skills,
    pick,
)
from bot.settings import DispatcherConfig
from bot.storage.conversations import ConversationRepo
from bot.storage.database import Database
from bot.storage.schema import Message
from skills.fallback import FallbackSkill


class ChatSkill(Skill):
    name = "chat"
    intents = ("chitchat",)
    selectable = True

    async def respond(self, turn: Turn) -> str:
        turn.state["chats"] = turn.state.get("chats", 0) + 1
        turn.suggest("Tell me more")
        if "stock" in turn.text:
            turn.data["declined"] = True
            return "I'm a little lost for words."
        return f"Chatting about {turn.text}."


class JokeSkill(Skill):
    name = "jokes"
    intents = ("joke",)
    selectable = True

    async def respond(self, turn: Turn) -> str:
        turn.state["told"] = turn.state.get("told", 0) + 1
        turn.slots["laughed"] = True
        if "broken" in turn.text:
            raise RuntimeError("joke bug")
        return "Why did the chicken cross the road?"


class RankingAnnotator:
    """'c=0.4 j=0.3 rest of text' -> a ranking of chitchat 0.4, joke 0.3; a sure intent when >= 0.5."""

    name = "ranking"

    async def annotate(self, text: str, annotations: Annotations) -> None:
        names = {"c": "chitchat", "j": "joke"}
        for word in text.split():
            if "=" in word and word[0] in names:
                annotations.ranking.append(IntentGuess(names[word[0]], float(word[2:]), "embedding"))
        annotations.ranking.sort(key=lambda g: -g.confidence)
        if annotations.ranking and annotations.ranking[0].confidence >= 0.5:
            annotations.intent = annotations.ranking[0]


class StartStorySkill(Skill):
    """Acts outside the turn (in the real one: creates a story), so it never answers beside others."""

    name = "story"
    intents = ("story",)

    async def respond(self, turn: Turn) -> str:
        return "Let's write!"


def registry() -> SkillRegistry:
    skills = SkillRegistry()
    for skill in (ChatSkill(), JokeSkill(), StartStorySkill(), FallbackSkill()):
        skills.register(skill)
    return skills


def names(options) -> list[tuple[str, str | None]]:
    return [(skill.name, guess.name if guess else None) for skill, guess in options]


@pytest.mark.parametrize(("ranking", "expected"), [
    # One sure intent far ahead of the rest: it answers alone (and streams).
    ([("chitchat", 0.9), ("joke", 0.3)], [("chat", "chitchat")]),
    # Two close ones: both answer.
    ([("chitchat", 0.7), ("joke", 0.6)], [("chat", "chitchat"), ("jokes", "joke")]),
    # Nothing sure: the ranked skills and the fallback.
    ([("chitchat", 0.4), ("joke", 0.3)], [("chat", "chitchat"), ("jokes", "joke"), ("fallback", None)]),
    # Below the floor nothing is a candidate: the fallback alone.
    ([("chitchat", 0.1)], [("fallback", None)]),
    # A skill that acts outside the turn is never a candidate beside others: first it answers alone...
    ([("story", 0.7), ("chitchat", 0.65)], [("story", "story")]),
    # ... and otherwise it is left out.
    ([("chitchat", 0.4), ("story", 0.35)], [("chat", "chitchat"), ("fallback", None)]),
    # An intent no skill serves is skipped; one skill counts once.
    ([("about_bot", 0.45), ("chitchat", 0.4), ("chitchat", 0.3)], [("chat", "chitchat"), ("fallback", None)]),
])
def test_candidates_come_from_the_ranking(ranking, expected) -> None:
    skills = registry()
    guesses = [IntentGuess(n, c, "embedding") for n, c in ranking]
    sure = guesses[0] if guesses[0].confidence >= 0.5 else None
    options = candidate_skills(sure, guesses, skills.by_intent, skills["fallback"], 0.5, SelectorConfig())
    assert names(options) == expected


def test_a_rule_or_an_intent_without_ranking_is_a_candidate_and_max_candidates_holds() -> None:
    skills = registry()
    rule = IntentGuess("joke", 1.0, "rules")
    assert names(candidate_skills(rule, [], skills.by_intent, skills["fallback"], 0.5, SelectorConfig())) == [
        ("jokes", "joke")]
    guesses = [IntentGuess("chitchat", 0.4, "embedding"), IntentGuess("joke", 0.3, "embedding")]
    options = candidate_skills(None, guesses, skills.by_intent, skills["fallback"], 0.5,
                               SelectorConfig(max_candidates=1))
    assert names(options) == [("chat", "chitchat")]


def candidate(text: str, confidence: float | None, **data) -> Candidate:
    turn = Turn("c", 1, "test", "x", "en", Annotations(), data=dict(data))
    guess = IntentGuess("chitchat", confidence, "embedding") if confidence is not None else None
    return Candidate(ChatSkill(), guess, turn, pieces=[text])


def test_scores_prefer_sure_real_answers_over_stock_lines_and_repeats() -> None:
    history = [HistoryItem("user", "hi"), HistoryItem("bot", "Hello there!", "chat")]
    real, fallback = candidate("Oh, I love rain too.", 0.4), candidate("I'm not sure I understood.", None)
    assert pick([real, fallback], history) is real and fallback.score == FALLBACK_PRIOR
    declined = candidate("I'm a little lost for words.", 0.4, declined=True)
    assert pick([declined, candidate("I'm not sure I understood.", None)], history).guess is None
    repeat = candidate("Hello there!", 0.45)
    assert pick([repeat, candidate("Something new.", None)], history).text == "Something new."
    empty, failed = candidate("", 0.9), candidate("text", 0.9)
    failed.failed = True
    assert pick([empty, failed], history) is None


@pytest.fixture
async def dispatcher(tmp_path):
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 's.sqlite3'}")
    await db.migrate()
    yield Dispatcher(ConversationRepo(db), registry(), [RankingAnnotator()], None, DispatcherConfig())
    await db.close()


async def stored_bot_messages(dispatcher: Dispatcher) -> list[Message]:
    async with dispatcher.repo.db.transaction() as session:
        return list((await session.scalars(select(Message).where(Message.author == "bot").order_by(Message.id))).all())


async def test_through_the_dispatcher_the_best_candidate_answers_and_all_are_stored(dispatcher) -> None:
    reply = await dispatcher.handle_turn(Incoming("test", "ann", "c=0.4 j=0.3 rainy days")).reply()
    assert reply.skill == "chat" and reply.text == "Chatting about c=0.4 j=0.3 rainy days."
    assert reply.suggestions == ("Tell me more",)
    [message] = await stored_bot_messages(dispatcher)
    stored = message.annotations["candidates"]
    assert [(c["skill"], c["chosen"]) for c in stored] == [("chat", True), ("jokes", False), ("fallback", False)]
    assert stored[0]["score"] == 0.4 and stored[2]["score"] == FALLBACK_PRIOR
    assert stored[1]["text"] == "Why did the chicken cross the road?"
    state = await dispatcher.repo.load_state(reply.conversation_id)
    # Only the winner's state and slots are kept: the joke that was not told is not counted as told.
    assert state.skill_state["chat"] == {"chats": 1} and "jokes" not in state.skill_state
    assert "laughed" not in state.slots


async def test_a_declined_or_failing_candidate_loses_to_the_next(dispatcher) -> None:
    reply = await dispatcher.handle_turn(Incoming("test", "bob", "c=0.45 j=0.4 stock")).reply()
    assert reply.skill == "jokes"  # the stock line's 0.45 - 0.3 < the fallback's 0.35 < the joke's 0.4
    state = await dispatcher.repo.load_state(reply.conversation_id)
    assert state.skill_state["jokes"] == {"told": 1} and state.slots["laughed"] is True
    reply = await dispatcher.handle_turn(Incoming("test", "bob", "c=0.4 j=0.45 broken")).reply()
    assert reply.skill == "chat" and reply.status == "complete"


async def test_a_sure_intent_answers_alone_without_candidates(dispatcher) -> None:
    reply = await dispatcher.handle_turn(Incoming("test", "cy", "c=0.9 j=0.2 music")).reply()
    assert reply.skill == "chat"
    [message] = await stored_bot_messages(dispatcher)
    assert "candidates" not in message.annotations
