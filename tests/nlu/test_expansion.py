"""Label expansion: the model's list becomes clean examples for intents that had none, cached on
disk, and `tandem nlu expand` writes them to a YAML file for review."""

from __future__ import annotations

from pathlib import Path

import yaml

from bot.models.fake import FakeLanguageModel, FakeScript
from bot.nlu.catalogue import IntentCatalogue
from bot.nlu.expansion import LabelExpander, parse_examples, prompt_for

ANSWER = '1. "Book me a flight to Rome"\n2) I need a plane ticket\n- book flight\n\nHere are the messages:\n1. I need a plane ticket'


def test_list_marks_quotes_duplicates_and_the_bare_label_are_dropped() -> None:
    assert parse_examples(ANSWER, 5, "book_flight") == ["Book me a flight to Rome", "I need a plane ticket"]
    assert parse_examples(ANSWER, 1, "book_flight") == ["Book me a flight to Rome"]
    assert parse_examples("", 3, "x") == []


def test_the_prompt_names_the_intent_its_description_and_the_language(catalogue) -> None:
    weather = catalogue.intents["weather"]
    text = prompt_for(weather, 4, "ru")[-1].content
    assert "4 different short messages, in Russian" in text
    assert "weather (the user asks about the weather forecast)" in text


async def test_only_intents_without_examples_are_expanded_and_the_result_is_cached(catalogue, tmp_path) -> None:
    model = FakeLanguageModel(script=FakeScript(respond=lambda prompt, params: "1. put on a song\n2. play jazz"))
    expander = LabelExpander(model, tmp_path, count=3)
    expanded = await expander.expand(catalogue)
    assert expanded.intents["music"].texts("examples", "en") == ["put on a song", "play jazz"]
    # Intents with examples keep exactly their own.
    assert expanded.intents["weather"].texts("examples") == catalogue.intents["weather"].texts("examples")
    assert len(model.calls) == 1 and model.calls[0].params.seed is not None
    again = await LabelExpander(model, tmp_path, count=3).expand(catalogue)
    assert len(model.calls) == 1  # read from the cache in the data folder
    assert again.intents["music"].texts("examples") == ["put on a song", "play jazz"]


async def test_a_failing_model_leaves_the_intent_as_it_was(catalogue, tmp_path) -> None:
    model = FakeLanguageModel(script=FakeScript(outputs=("1. play a song",), fail_after=0))
    expanded = await LabelExpander(model, tmp_path).expand(catalogue)
    assert expanded.intents["music"].texts("examples") == []


def test_expand_command_writes_reviewable_yaml(tmp_path: Path, monkeypatch) -> None:
    from click.testing import CliRunner

    import bot.nlu.cli as cli

    intents = tmp_path / "intents.yaml"
    intents.write_text("intents:\n  music:\n    descriptions: [play some music]\n"
                       "  weather:\n    examples: [will it rain]\n", encoding="utf-8")

    def fake_expanded(catalogue: IntentCatalogue, lm_model, count, language, data_dir, threads=None):
        import asyncio

        model = FakeLanguageModel("1. put on a song\n2. play jazz")
        return asyncio.run(LabelExpander(model, data_dir, count=count, language=language).expand(catalogue))

    monkeypatch.setattr(cli, "_expanded", fake_expanded)
    out = tmp_path / "generated.yaml"
    result = CliRunner().invoke(cli.nlu, ["expand", "--intents", str(intents), "--out", str(out),
                                          "--data-dir", str(tmp_path / "data")])
    assert result.exit_code == 0, result.output
    assert "1 of 1 intents without examples got some" in result.output
    written = yaml.safe_load(out.read_text(encoding="utf-8"))
    assert written == {"intents": {"music": {"examples": {"en": ["put on a song", "play jazz"]}}}}
