"""`tandem story eval` with fake models: both sides run on one seed, Tandem's side through the story
service (memory and lore in its prompt), the naive side raw; the table, the Markdown and the exit codes."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from bot.cli import main
from bot.evaluation.stories import (
    SeededModel,
    StoryEvalReport,
    format_markdown,
    format_table,
    opening_seed,
    run_openings,
)
from bot.evaluation.story_set import LoreEntry, StoryOpening
from bot.models.base import ChatMessage, GenerationParams
from bot.models.fake import FakeLanguageModel, FakeScript
from bot.story.service import StoryService
from bot.story.settings import StorySettings
from bot.storage.conversations import ConversationRepo
from bot.storage.stories import StoryRepo
from tests.story.support import migrated

LANTERN = StoryOpening(
    id="en-lantern", language="en", genre="mystery", memory="Mara is afraid of the sea.",
    lore=(LoreEntry(keys=("lighthouse",), text="The lighthouse has been dark for eleven years."),),
    opening="Mara saw a red lantern in the lighthouse. The ferryman looked away.",
    facts=("Mara", "lantern"), facts_exact=("red lantern",),
)
SHOP = StoryOpening(id="ru-shop", language="ru", opening="Бабушка Нина пекла пирожки. В дверь позвонил мальчик.",
                    facts=("Нина", "мальчик"))
TANDEM_TEXT = {"en": "Mara lifted the red lantern. The ferryman said nothing.",
               "ru": "Нина открыла дверь. Мальчик робко улыбнулся."}
NAIVE_TEXT = {"en": ("Sure! Here's a continuation:\n\nMara saw a blue lantern in the lighthouse. "
                     "The ferryman looked away and"),
              "ru": "Конечно! Вот продолжение: Нина открыла дверь"}


def is_naive(prompt) -> bool:
    return prompt[-1].content.startswith(("Continue this story:", "Продолжи эту историю:"))


def scripted_model(*, tandem_writes_nothing: bool = False) -> FakeLanguageModel:
    """Tandem's prompt gets a clean passage (or nothing at all), the naive one an assistant's answer
    cut mid-sentence, each in the language of the story."""

    def respond(prompt, params: GenerationParams) -> str:
        language = "ru" if "Нина" in prompt[-1].content else "en"
        if is_naive(prompt):
            return NAIVE_TEXT[language]
        return "" if tandem_writes_nothing else TANDEM_TEXT[language]

    return FakeLanguageModel(script=FakeScript(respond=respond))


async def evaluate(tmp_path: Path, model: FakeLanguageModel, openings) -> StoryEvalReport:
    db = await migrated(f"sqlite+aiosqlite:///{tmp_path / 'stories.sqlite3'}")
    try:
        seeded = SeededModel(model)
        service = StoryService(StoryRepo(db), seeded, defaults=StorySettings(max_new_tokens=60))
        user_id = await ConversationRepo(db).user_for("eval", "story-eval")
        return await run_openings(service, seeded, user_id, openings, model_name="scripted")
    finally:
        await db.close()


async def test_both_sides_continue_each_opening_on_its_own_seed(tmp_path: Path) -> None:
    model = scripted_model()
    report = await evaluate(tmp_path, model, [LANTERN, SHOP])
    tandem_calls = [c for c in model.calls if not is_naive(c.prompt)]
    naive_calls = [c for c in model.calls if is_naive(c.prompt)]
    assert len(tandem_calls) == len(naive_calls) == 2
    for tandem, naive, item in zip(tandem_calls, naive_calls, (LANTERN, SHOP), strict=True):
        assert tandem.params.seed == naive.params.seed == opening_seed(item)
        # The same length and sampling; only Tandem stops at its stop strings.
        assert (naive.params.max_new_tokens, naive.params.temperature) == (60, tandem.params.temperature)
        assert naive.params.stop == () and tandem.params.stop
    assert naive_calls[1].prompt == (ChatMessage("user", f"Продолжи эту историю:\n\n{SHOP.opening}"),)
    # Tandem's prompt is the story service's: memory, the triggered lore, the genre and the opening.
    system, user = (m.content for m in tandem_calls[0].prompt)
    assert "Mara is afraid of the sea." in system and "Genre: mystery" in system
    assert "dark for eleven years" in user and LANTERN.opening in user

    lantern = report.results[0]
    assert lantern.sides["tandem"].text == TANDEM_TEXT["en"] and not lantern.sides["tandem"].failed
    assert lantern.sides["naive"].text == NAIVE_TEXT["en"].strip()
    assert {c.name for c in lantern.sides["naive"].failed} == {"ending", "refusal", "echo", "contradiction"}
    assert report.tally("tandem", "refusal") == (2, 2) and report.tally("naive", "refusal") == (0, 2)
    assert report.tally("naive", "contradiction") == (0, 1)  # only the lantern states a colour
    assert report.all_passed("tandem", "ru") == (1, 1) and report.all_passed("naive") == (0, 2)


def test_seeded_model_counts_requests_from_each_reseed() -> None:
    seeded = SeededModel(FakeLanguageModel())
    seeded.reseed(100)
    params = GenerationParams()
    assert [seeded._seeded(params).seed for _ in range(2)] == [100, 101]
    seeded.reseed(100)
    assert seeded._seeded(params).seed == 100
    assert seeded._seeded(GenerationParams(seed=7)).seed == 7  # a caller's own seed stands


async def test_a_passage_tandem_could_not_write_fails_every_check(tmp_path: Path) -> None:
    report = await evaluate(tmp_path, scripted_model(tandem_writes_nothing=True), [LANTERN])
    tandem = report.results[0].sides["tandem"]
    assert tandem.text == "" and "nothing usable" in tandem.error
    assert report.tally("tandem", "ending") == (0, 1)
    assert "generation errors (1):" in format_table(report)


async def test_the_table_and_the_markdown_show_both_sides(tmp_path: Path) -> None:
    report = await evaluate(tmp_path, scripted_model(), [LANTERN, SHOP])
    table = format_table(report)
    assert "2 openings (1 en, 1 ru); model scripted" in table
    header, *rows = table.splitlines()[1:]
    assert header.split() == ["check", "tandem", "naive", "tandem", "en", "naive", "en", "tandem", "ru", "naive", "ru"]
    assert any(row.split()[:3] == ["refusal", "2/2", "0/2"] for row in rows)
    assert any(row.split()[:3] == ["contradiction", "1/1", "0/1"] for row in rows)
    markdown = format_markdown(report, "evals/stories")
    assert "## en-lantern (en, mystery, seed" in markdown and f"> {LANTERN.opening}" in markdown
    # The raw naive answer, its line breaks kept for the reader, beside Tandem's passage.
    assert f"| {TANDEM_TEXT['en']} | Sure! Here's a continuation:<br><br>Mara saw a blue lantern" in markdown
    assert "**refusal**: talks as an assistant" in markdown and "all checks pass" in markdown


SET = """
stories:
  - {id: en-fox, language: en, opening: "A fox found a lantern by the river. She carried it home.", facts: [fox]}
  - {id: ru-fox, language: ru, opening: "Лиса нашла фонарь у реки. Она унесла его домой.", facts: [Лиса]}
"""


def run_cli(tmp_path: Path, *args: str, text: str = SET):
    (tmp_path / "set.yaml").write_text(text, encoding="utf-8")
    return CliRunner().invoke(main, ["story", "eval", "--set", str(tmp_path / "set.yaml"), "--model", "fake",
                                     "--out", str(tmp_path / "out" / "story.md"), *args])


def test_the_command_prints_the_figures_and_writes_the_markdown(tmp_path: Path, settings) -> None:
    result = run_cli(tmp_path)
    assert result.exit_code == 0, result.output
    assert "2 openings (1 en, 1 ru); model fake" in result.output
    assert any(line.split()[:3] == ["ending", "2/2", "2/2"] for line in result.output.splitlines())
    markdown = (tmp_path / "out" / "story.md").read_text(encoding="utf-8")
    assert "## en-fox" in markdown and "## ru-fox" in markdown and "| Tandem | naive |" in markdown


def test_language_and_limit_choose_the_openings(tmp_path: Path, settings) -> None:
    result = run_cli(tmp_path, "--language", "ru")
    assert result.exit_code == 0 and "1 openings (1 ru)" in result.output
    result = run_cli(tmp_path, "--limit", "1")
    assert result.exit_code == 0 and "1 openings (1 en)" in result.output


def test_a_broken_set_or_no_opening_exits_2(tmp_path: Path, settings) -> None:
    broken = run_cli(tmp_path, text="stories:\n  - {id: x, language: fr, opening: A fox ran. It hid.}\n")
    assert broken.exit_code == 2
    assert "set.yaml: story 'x': `language`" in broken.output
    only_en = "stories:\n  - {id: x, language: en, opening: A fox ran. It hid.}\n"
    assert run_cli(tmp_path, "--language", "ru", text=only_en).exit_code == 2
