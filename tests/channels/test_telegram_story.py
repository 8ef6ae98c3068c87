"""Telegram end to end with the real story skill (fake language model): candidates by button, retry, undo, export."""

from __future__ import annotations

from bot.models.fake import FakeLanguageModel
from bot.storage.schema import Passage, Story
from tests.channels.telegram_harness import api, running_bot  # noqa: F401 - fixtures

ANN = 501
OUTPUTS = [
    "The lantern glowed as if it remembered a summer.",
    "A small voice spoke from inside the glass.",
    "Snow began to melt in a circle around the fox.",
]


def story_buttons(api, message) -> list[str]:
    return [b for b in api.buttons(message) if b.startswith(("✍", "↻", "↶", "✓"))]


async def test_candidates_are_chosen_by_button_then_retried_and_undone(api, tmp_path) -> None:
    model = FakeLanguageModel(OUTPUTS * 3)
    async with running_bot(api, tmp_path / "data", language_model=model) as bot:
        await api.send_text(ANN, "/story")
        await api.wait_messages(ANN, 1)
        await api.send_text(ANN, "A fox found a lantern in the snow.")
        offer = (await api.wait_messages(ANN, 2))[1]
        assert story_buttons(api, offer) == ["✍ 1", "✍ 2", "✍ 3", "↻ Retry", "↶ Undo"]
        candidates = await bot.rows(Passage, Passage.author == "model")
        assert len(candidates) == 3

        await api.click_button(ANN, "✍ 2")
        chosen = (await api.wait_messages(ANN, 3))[2]
        story = (await bot.rows(Story))[0]
        assert story.head_id == candidates[1].id
        # The choice shows on the offer; retry/undo now sit under the newest passage only.
        offer = api.bot_messages(ANN)[1]
        assert story_buttons(api, offer) == ["✓ 2"]
        assert story_buttons(api, chosen) == ["↻ Retry", "↶ Undo"]

        await api.click_button(ANN, "↻ Retry")
        retried = (await api.wait_messages(ANN, 4))[3]
        assert story_buttons(api, retried)[:3] == ["✍ 1", "✍ 2", "✍ 3"]
        assert story_buttons(api, api.bot_messages(ANN)[2]) == []
        assert len(await bot.rows(Passage, Passage.author == "model")) == 6
        await api.click_button(ANN, "✍ 1")
        await api.wait_messages(ANN, 5)
        story = (await bot.rows(Story))[0]
        new_head = story.head_id
        assert new_head not in {c.id for c in candidates}

        # An old message's story buttons are refused, not run.
        old = api.bot_messages(ANN)[2]["message_id"]
        await api.click(ANN, old, "s:u")
        await api.wait_for(lambda: any("latest passage" in (c.params.get("text") or "")
                                       for c in api.calls_of("answerCallbackQuery")))
        assert (await bot.rows(Story))[0].head_id == new_head

        await api.click_button(ANN, "↶ Undo")
        await api.wait_messages(ANN, 6)
        story = await bot.eventually(lambda: bot.rows(Story), lambda s: s[0].head_id != new_head)
        head = next(p for p in await bot.rows(Passage) if p.id == story[0].head_id)
        assert head.author == "user"


async def test_export_arrives_as_a_document(api, tmp_path) -> None:
    async with running_bot(api, tmp_path / "data", language_model=FakeLanguageModel(OUTPUTS)):
        await api.send_text(ANN, "/story")
        await api.wait_messages(ANN, 1)
        await api.send_text(ANN, "A fox found a lantern in the snow.")
        await api.wait_messages(ANN, 2)
        await api.send_text(ANN, "/choose 1")
        await api.wait_messages(ANN, 3)
        await api.send_text(ANN, "/export md")
        call = (await api.wait_calls("sendDocument"))[0]
        name, content = call.files["document"]
        assert name.endswith(".md")
        assert b"A fox found a lantern" in content and OUTPUTS[0].encode() in content
