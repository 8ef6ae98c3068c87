"""PassageFilter: whole sentences, no repeated prompt, no user turn, the story's language, one
script per word, closed quotes, the sentence limit, and words shown as they stream."""

from __future__ import annotations

from bot.story.polish import (
    PassageFilter, mend_scripts, mixed_script_words, open_quotes, quotes_balanced, script_language, sentence_count,
)


def stream(filt: PassageFilter, text: str, complete: bool = True) -> str:
    shown = "".join(filt.feed(piece) for piece in text.split(" ") for piece in (piece + " ",))
    return shown + filt.finish(complete)


def test_an_unfinished_last_sentence_is_cut() -> None:
    filt = PassageFilter()
    shown = stream(filt, "The fox ran. It found a lantern. Then it")
    assert filt.text == "The fox ran. It found a lantern."
    # Its words were shown while they streamed; the stored text settles it, and the filter says so.
    assert shown.strip() == "The fox ran. It found a lantern. Then it" and filt.diverged


def test_words_are_shown_while_a_sentence_is_still_arriving() -> None:
    filt = PassageFilter()
    pieces = [filt.feed(p) for p in ("The ", "fox ", "ran ", "into ", "the ", "woods ", "an")]
    assert "".join(pieces) == "The fox ran into the woods"  # "an" may still be growing: held
    assert filt.feed("d hid. ") == " and hid."
    assert filt.finish() == "" and not filt.diverged


def test_words_that_may_start_a_repetition_are_held_until_the_sentence_ends() -> None:
    filt = PassageFilter(["Mira walked into the dark forest alone."])
    shown = "".join(filt.feed(w + " ") for w in "Mira walked into the dark forest alone.".split())
    assert shown == "" and filt.text == ""
    shown = "".join(filt.feed(w + " ") for w in "Mira walked home.".split())
    assert shown.strip() == "Mira walked home."


def test_the_passage_stops_at_its_sentence_limit() -> None:
    filt = PassageFilter(max_sentences=2)
    stream(filt, "One fox ran. Two owls flew. Three bats slept. Four mice hid.")
    assert filt.text == "One fox ran. Two owls flew." and filt.done and filt.ended_by == "sentences"
    assert not filt.diverged


def test_the_passage_stops_at_the_first_sentence_end_past_its_token_budget() -> None:
    filt = PassageFilter(token_budget=5, count_tokens=lambda text: len(text.split()))
    stream(filt, "The fox ran far away. It found a lantern. Then it slept.")
    assert filt.text == "The fox ran far away." and filt.ended_by == "tokens"


def test_open_quotes_are_closed_at_the_end() -> None:
    filt = PassageFilter()
    shown = stream(filt, 'Mira turned. "Come here, little one.')
    assert filt.text == 'Mira turned. "Come here, little one."' and shown.strip() == filt.text
    filt = PassageFilter(language="ru")
    stream(filt, "Мира обернулась к лисе. «Иди сюда, малыш.")
    assert filt.text == "Мира обернулась к лисе. «Иди сюда, малыш.»"
    assert quotes_balanced(filt.text)


def test_quote_balance() -> None:
    assert open_quotes('He said "yes.') == '"'
    assert open_quotes("«Он сказал „да“.") == "»"
    assert open_quotes("“Hi,” she said.") == ""
    assert quotes_balanced("«Да», — сказала она.") and not quotes_balanced("«Да, — сказала она.")


def test_words_mixing_scripts_are_mended_or_their_sentence_is_left_out() -> None:
    assert mixed_script_words("Это был мysterный вечер. Вот.") == ["мysterный"]
    # Look-alike letters are written in the story's script again...
    assert mend_scripts("Онa пришлa домой.", "ru") == "Она пришла домой."
    assert mend_scripts("The cаt sat.", "en") == "The cat sat."
    # ...a word that is really two scripts cannot be mended: its sentence goes.
    assert mend_scripts("мysterный", "ru") is None
    filt = PassageFilter(language="ru")
    stream(filt, "Это был мysterный вечер у реки. Лиса спала в своей норе. Онa проснулась.")
    assert filt.text == "Лиса спала в своей норе. Она проснулась." and filt.dropped_garbled == 1


def test_sentence_count() -> None:
    assert sentence_count("") == 0
    assert sentence_count("One. Two! Three?") == 3
    assert sentence_count('He said "go." Then he left') == 2
    assert sentence_count("Он ушёл… Она осталась.") == 2


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
