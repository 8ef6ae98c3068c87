"""The checks of one reply: script, sentences, ты, repetition, suggestions and status."""

from __future__ import annotations

from bot.core.messages import Reply
from bot.evaluation.checks import (
    Observed,
    count_sentences,
    formal_address,
    property_failures,
    reply_script,
    route_failures,
)
from bot.evaluation.conversation_set import ExpectedTurn


def seen(text: str, *, skill: str = "smalltalk", earlier=(), suggestions=(), status="complete", data=None,
         node=None) -> Observed:
    reply = Reply("c", text, skill, suggestions=tuple(suggestions), status=status, data=data or {})
    return Observed(reply, node, tuple(earlier))


def test_the_script_of_short_and_long_replies() -> None:
    assert reply_script("Сейчас 14:05.") == "ru"
    assert reply_script("It's 2:05 pm.") == "en"
    assert reply_script("Вот что я умею: /story, /help и ещё многое.") == "ru"
    assert reply_script("14:05 👍") is None


def test_sentences_are_counted_at_their_ends_and_line_breaks() -> None:
    assert count_sentences("Hi! How are you? I'm fine.") == 3
    assert count_sentences('Say "help". Then pick one…\nOr not 🙂') == 3
    assert count_sentences("Version 2.5 is out") == 1


def test_formal_address_is_found_and_ty_is_not() -> None:
    assert formal_address("Попробуйте ещё раз. Как вы оцените наш разговор?") == ["вы", "Попробуйте", "оцените"]
    assert formal_address("Возвращайтесь в любое время!") == ["Возвращайтесь"]
    assert formal_address("Попробуй ещё раз. Как ты оценишь наш разговор? Мы вышли из истории на сайте.") == []


def test_a_russian_reply_must_say_ty_unless_it_is_a_generated_passage() -> None:
    turn = ExpectedTurn(user="оставить отзыв")
    assert property_failures(turn, seen("Как вы оцените наш разговор?")) == [
        "informal: addresses the user as вы ('вы', 'оцените')"]
    assert property_failures(turn, seen("«Вы кто?» — спросил рыцарь.", skill="story", data={"story": {}})) == []
    assert property_failures(ExpectedTurn(user="x", informal=False), seen("Как вы оцените?")) == []


def test_contains_regex_language_and_sentences() -> None:
    turn = ExpectedTurn(user="x", contains=["olga", "Hello"], contains_any=["a", "zz"], not_contains=["Marcus"],
                        regex=r"\d", language="ru", max_sentences=1)
    assert property_failures(turn, seen("Hello, Olga. Marcus is here.")) == [
        "not_contains: has 'Marcus'",
        "regex: /\\d/ does not match",
        "language: expected ru, the reply is en",
        "max_sentences: 2 sentences, at most 1",
    ]


def test_repetition_is_caught_against_the_previous_reply_and_all_earlier_ones() -> None:
    previous = ExpectedTurn(user="x", not_same_as_previous=True)
    any_earlier = ExpectedTurn(user="x", not_repeated=True)
    earlier = ["A joke.", "Another joke."]
    assert property_failures(previous, seen("another joke", earlier=earlier)) == [
        "not_same_as_previous: the same reply as the turn before"]
    assert property_failures(previous, seen("A joke.", earlier=earlier)) == []
    assert property_failures(any_earlier, seen("A joke!", earlier=earlier)) == [
        "not_repeated: an earlier reply of this conversation, again"]


def test_suggestions_and_status() -> None:
    turn = ExpectedTurn(user="x", suggestions=["Add to the story", "Leave it"], suggestions_any=["1", "Leave it"],
                        status="complete")
    assert property_failures(turn, seen("Add that to the story?", suggestions=["add to the story", "Leave it"])) == []
    assert property_failures(turn, seen("?", suggestions=["Leave it"], status="fallback")) == [
        "suggestions: 'Add to the story' not in ['Leave it']", "status: expected complete, got fallback"]


def test_route_and_node() -> None:
    assert route_failures(ExpectedTurn(user="x", route_any=["fallback", "smalltalk"]), seen("?", skill="graph")) == [
        "route: expected fallback or smalltalk, got graph"]
    assert route_failures(ExpectedTurn(user="x", node="about.privacy"), seen("?", skill="graph", node="about.privacy")) == []
    assert route_failures(ExpectedTurn(user="x", node="about.privacy"), seen("?", skill="help")) == [
        "route: expected graph, got help", "node: expected about.privacy, got no graph node"]
