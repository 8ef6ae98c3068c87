"""PassageFilter: whole sentences, no repeated prompt, no user turn, the story's language."""

from __future__ import annotations

from bot.story.polish import PassageFilter, script_language


def stream(filt: PassageFilter, text: str, complete: bool = True) -> str:
    shown = "".join(filt.feed(piece) for piece in text.split(" ") for piece in (piece + " ",))
    return shown + filt.finish(complete)


def test_an_unfinished_last_sentence_is_cut() -> None:
    filt = PassageFilter()
    assert stream(filt, "The fox ran. It found a lantern. Then it").strip() == "The fox ran. It found a lantern."
    assert filt.text == "The fox ran. It found a lantern."


def test_a_single_unfinished_sentence_is_closed_with_an_ellipsis() -> None:
    filt = PassageFilter()
    stream(filt, "The fox ran into the forest and")
    assert filt.text == "The fox ran into the forest and…"


def test_an_interrupted_generation_keeps_its_tail() -> None:
    filt = PassageFilter()
    stream(filt, "The fox ran. Then it", complete=False)
    assert filt.text == "The fox ran. Then it"


def test_sentences_from_the_prompt_are_not_repeated() -> None:
    filt = PassageFilter(["Mira walked into the dark forest alone."])
    stream(filt, "Mira walked into the dark forest alone. An owl hooted above her.")
    assert filt.text == "An owl hooted above her."
    assert filt.dropped_repeats == 1


def test_the_user_side_of_the_dialogue_is_cut() -> None:
    filt = PassageFilter()
    stream(filt, "The owl spoke softly. \nUser: what did it say? \nAssistant: It said hello.")
    assert filt.text == "The owl spoke softly."
    assert filt.done


def test_a_role_label_at_the_start_is_dropped() -> None:
    filt = PassageFilter()
    stream(filt, "Assistant: The owl spoke softly.")
    assert filt.text == "The owl spoke softly."
    filt = PassageFilter()
    stream(filt, "Next passage: The owl spoke softly.")
    assert filt.text == "The owl spoke softly."


def test_a_passage_in_the_wrong_language_is_refused_before_it_is_shown() -> None:
    filt = PassageFilter(language="ru")
    assert stream(filt, "The owl spoke softly to the fox.") == ""
    assert filt.wrong_language and filt.text == ""
    filt = PassageFilter(language="ru")
    stream(filt, "Сова тихо заговорила с лисой.")
    assert filt.text == "Сова тихо заговорила с лисой." and not filt.wrong_language


def test_script_language() -> None:
    assert script_language("Привет, как дела у тебя?") == "ru"
    assert script_language("Hello, how are you today?") == "en"
    assert script_language("Ok.") is None
