"""Export as Markdown, text and JSON with authorship, and import of a JSON export (a round trip)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.core.errors import InputError
from bot.models.fake import FakeLanguageModel, FakeScript
from tests.story.support import run, story_world


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'stories.sqlite3'}"


async def written_story(w) -> int:
    sid = (await w.service.start(w.user, title="The Lantern", genre="fantasy", text="Mira found a lantern.")).story.id
    await run(w.service.continue_(w.user, sid))
    await w.service.choose(w.user, sid, number=2)
    await w.service.edit(w.user, sid, "It glowed blue, then green.")
    await w.service.set_memory(w.user, sid, "Mira is a fox.")
    await w.service.set_lore(w.user, sid, ["lantern"], "The lantern is magic.")
    await w.service.update_settings(w.user, sid, {"temperature": 0.5})
    return sid


def model() -> FakeLanguageModel:
    texts = iter(["It glowed blue.", "It glowed red.", "It was dark."] * 5)
    return FakeLanguageModel(script=FakeScript(respond=lambda prompt, params: next(texts)))


async def test_markdown_and_text_show_every_passage_with_its_author(url: str) -> None:
    async with story_world(url, model(), candidates=2) as w:
        sid = await written_story(w)
        name, content_type, md = await w.service.export(w.user, sid, "md")
        assert name == "the-lantern.md" and content_type == "text/markdown"
        assert md.startswith("# The Lantern\n") and "*Genre:* fantasy" in md
        assert "**[1] you**\n\nMira found a lantern." in md
        assert "**[2] model, edited by you**\n\nIt glowed blue, then green." in md
        _, _, txt = await w.service.export(w.user, sid, "txt")
        assert "[1] (you)\nMira found a lantern." in txt and "[2] (model, edited by you)" in txt


async def test_a_russian_story_exports_with_russian_labels_and_refuses_in_russian(url: str) -> None:
    async with story_world(url, model(), candidates=1) as w:
        sid = (await w.service.start(w.user, title="Фонарь", genre="сказка", language="ru",
                                     text="Мира нашла фонарь.")).story.id
        await run(w.service.continue_(w.user, sid))
        _, _, md = await w.service.export(w.user, sid, "md")
        assert "*Жанр:* сказка" in md and "**[1] ты**\n\nМира нашла фонарь." in md and "**[2] модель**" in md
        _, _, txt = await w.service.export(w.user, sid, "txt")
        assert "[1] (ты)\nМира нашла фонарь." in txt
        with pytest.raises(InputError) as refused:
            await w.service.export(w.user, sid, "pdf")
        assert refused.value.in_language("ru") == "Экспорт бывает в md, txt или json, например /export md."
        assert str(refused.value) == "Export as md, txt or json, e.g. /export md."


async def test_json_round_trip_keeps_the_tree_authorship_and_settings(url: str) -> None:
    async with story_world(url, model(), candidates=2) as w:
        sid = await written_story(w)
        _, content_type, exported = await w.service.export(w.user, sid, "json")
        data = json.loads(exported)
        assert content_type == "application/json" and data["format"] == "tandem-story"
        assert len(data["passages"]) == 4  # the user's, two candidates, and the edited one

        view = await w.service.import_(w.other_user, exported)
        assert view.story.id != sid and view.story.user_id == w.other_user
        assert [(p.author, p.text) for p in view.path] == [("user", "Mira found a lantern."),
                                                            ("edited", "It glowed blue, then green.")]
        assert view.story.memory == "Mira is a fox." and view.settings["temperature"] == 0.5
        assert [e.text for e in await w.service.lore(w.other_user, view.story.id)] == ["The lantern is magic."]
        again = json.loads((await w.service.export(w.other_user, view.story.id, "json"))[2])
        strip = lambda d: [(p["author"], p["text"], p["number"], p["candidate"]) for p in d["passages"]]  # noqa: E731
        assert strip(again) == strip(data)


@pytest.mark.parametrize("bad, message", [
    ("not json", "not valid JSON"),
    ({"format": "other"}, "not a Tandem story export"),
    ({"format": "tandem-story", "version": 9, "story": {"title": "x"}}, "Unsupported export version"),
    ({"format": "tandem-story", "version": 1, "story": {}}, "no story title"),
    ({"format": "tandem-story", "version": 1, "story": {"title": "x"},
      "passages": [{"id": 1, "parent_id": 7, "author": "user", "text": "a"}]}, "parent 7 is not in the export"),
    ({"format": "tandem-story", "version": 1, "story": {"title": "x"},
      "passages": [{"id": 1, "parent_id": None, "author": "robot", "text": "a"}]}, "author must be"),
    ({"format": "tandem-story", "version": 1, "story": {"title": "x"},
      "passages": [{"id": 1, "parent_id": 2, "author": "user", "text": "a"},
                   {"id": 2, "parent_id": 1, "author": "user", "text": "b"}]}, "loop"),
    ({"format": "tandem-story", "version": 1, "story": {"title": "x"}, "passages": [], "head_id": 3}, "head_id"),
])
async def test_a_bad_import_is_refused_and_stores_nothing(url: str, bad, message: str) -> None:
    async with story_world(url) as w:
        with pytest.raises(InputError, match=message):
            await w.service.import_(w.user, json.dumps(bad) if isinstance(bad, dict) else bad)
        assert await w.service.list_stories(w.user) == []


async def test_json_round_trip_keeps_ratings_and_switched_off_lore(url: str) -> None:
    async with story_world(url, model(), candidates=2) as w:
        sid = await written_story(w)
        view = await w.service.view(w.user, sid)
        first, second = view.path
        await w.service.rate(w.user, sid, first.id, 1)
        await w.service.rate(w.user, sid, second.id, -1)
        (lore,) = await w.service.lore(w.user, sid)
        await w.service.update_lore(w.user, sid, lore.id, enabled=False)
        await w.service.set_lore(w.user, sid, ["Mira"], "Mira is a young fox.")
        data = json.loads((await w.service.export(w.user, sid, "json"))[2])
        rated = {p["text"]: p["rating"] for p in data["passages"]}
        assert rated["Mira found a lantern."] == 1 and rated["It glowed blue, then green."] == -1
        assert sorted(rated.values(), key=str) == sorted([1, -1, None, None], key=str)
        assert data["lore"] == [{"keys": ["lantern"], "text": "The lantern is magic.", "enabled": False},
                                {"keys": ["Mira"], "text": "Mira is a young fox.", "enabled": True}]

        imported = await w.service.import_(w.other_user, json.dumps(data))
        assert [(p.text, p.rating) for p in imported.path] == [("Mira found a lantern.", 1),
                                                               ("It glowed blue, then green.", -1)]
        tree = await w.repo.passages(w.other_user, imported.story.id)
        assert sorted((p.rating for p in tree.values()), key=str) == sorted([1, -1, None, None], key=str)
        assert [(e.keys, e.enabled) for e in await w.service.lore(w.other_user, imported.story.id)] == [
            (("lantern",), False), (("Mira",), True)]
        again = json.loads((await w.service.export(w.other_user, imported.story.id, "json"))[2])
        assert again["lore"] == data["lore"]
        assert [p["rating"] for p in again["passages"]] == [p["rating"] for p in data["passages"]]


async def test_an_import_with_odd_ratings_or_no_enabled_flag_is_read_safely(url: str) -> None:
    export = {"format": "tandem-story", "version": 1, "story": {"title": "Odd"}, "head_id": 4,
              "passages": [{"id": 1, "parent_id": None, "author": "user", "text": "One.", "rating": 5},
                           {"id": 2, "parent_id": 1, "author": "model", "text": "Two.", "rating": True},
                           {"id": 3, "parent_id": 2, "author": "user", "text": "Three.", "rating": "1"},
                           {"id": 4, "parent_id": 3, "author": "model", "text": "Four.", "rating": -1}],
              "lore": [{"keys": ["fox"], "text": "A fox."},  # an export from before the switch: on
                       {"keys": ["owl"], "text": "An owl.", "enabled": False},
                       {"keys": ["bat"], "text": "A bat.", "enabled": 0}]}  # only false switches it off
    async with story_world(url) as w:
        view = await w.service.import_(w.user, json.dumps(export))
        assert [p.rating for p in view.path] == [None, None, None, -1]
        assert [(e.text, e.enabled) for e in await w.service.lore(w.user, view.story.id)] == [
            ("A fox.", True), ("An owl.", False), ("A bat.", True)]
