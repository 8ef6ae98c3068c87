"""Telegram end to end with the real story skill (fake language model): story buttons act once (a double
tap, two taps at once, two workers, a restart), say what they did, in English and Russian; old keyboards
do nothing; /stories offers to open one; export arrives as a document."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.channels import telegram_keyboards as kb
from bot.core.messages import Reply
from bot.models.fake import FakeLanguageModel
from bot.storage.schema import Message, Passage, Story
from tests.channels.telegram_harness import api, running_bot  # noqa: F401 - fixtures

ANN, OLGA = 501, 502
WEBHOOK = "https://tandem.example/telegram/webhook"
OUTPUTS = [
    "The lantern glowed as if it remembered a summer.",
    "A small voice spoke from inside the glass.",
    "Snow began to melt in a circle around the fox.",
]
OUTPUTS_RU = [
    "Фонарь светился так, будто помнил лето.",
    "Из-под стекла заговорил тоненький голос.",
    "Снег вокруг лисы начал таять кругом.",
]
STORY_MARKS = ("✍", "➡", "↻", "↶", "↷", "✓", "▶")


def story_buttons(api, message) -> list[str]:
    return [b for b in api.buttons(message) if b.startswith(STORY_MARKS)]


def data_of(message: dict, label: str) -> str:
    for row in (message.get("reply_markup") or {}).get("inline_keyboard", []):
        for button in row:
            if button["text"] == label:
                return button["callback_data"]
    raise AssertionError(f"no button {label!r} in {message}")


async def offer(api, chat: int, passage: str = "A fox found a lantern in the snow.") -> dict:
    """Start a story and write its first passage; the bot's message with the candidates."""
    await api.send_text(chat, "/story")
    await api.wait_messages(chat, 1)
    await api.send_text(chat, passage)
    return (await api.wait_messages(chat, 2))[1]


async def settled(api, chat: int, count: int) -> None:
    """The chat has `count` bot messages and nothing more comes (a second action would send one)."""
    await api.wait_messages(chat, count)
    await asyncio.sleep(0.5)
    assert len(api.bot_messages(chat)) == count, api.texts(chat)


async def test_candidates_are_chosen_by_button_then_retried_and_undone(api, tmp_path) -> None:
    model = FakeLanguageModel(OUTPUTS * 3)
    async with running_bot(api, tmp_path / "data", language_model=model) as bot:
        first = await offer(api, ANN)
        assert story_buttons(api, first) == ["✍ 1", "✍ 2", "✍ 3", "↻ Retry", "↶ Undo"]
        candidates = await bot.rows(Passage, Passage.author == "model")
        assert len(candidates) == 3

        query = await api.click_button(ANN, "✍ 2")
        chosen = (await api.wait_messages(ANN, 3))[2]
        assert await api.wait_answer(query) is None
        story = (await bot.rows(Story))[0]
        assert story.head_id == candidates[1].id
        # Named as the button named it, then what comes next; not "[2]", the passage's place.
        assert chosen["text"].startswith(f"Taken: option 2.\n{OUTPUTS[1]}")
        assert "Write what happens next" in chosen["text"]
        # The choice shows on the offer; the next steps sit under the newest passage only.
        assert story_buttons(api, api.bot_messages(ANN)[1]) == ["✓ ✍ 2"]
        assert story_buttons(api, chosen) == ["➡ Continue", "↻ Retry", "↶ Undo"]

        await api.click_button(ANN, "↻ Retry")
        retried = (await api.wait_messages(ANN, 4))[3]
        assert retried["text"].startswith("Another take on the last passage:")
        assert story_buttons(api, retried)[:3] == ["✍ 1", "✍ 2", "✍ 3"]
        assert story_buttons(api, api.bot_messages(ANN)[2]) == ["✓ ↻ Retry"]
        assert len(await bot.rows(Passage, Passage.author == "model")) == 6
        await api.click_button(ANN, "✍ 1")
        taken = (await api.wait_messages(ANN, 5))[4]
        assert taken["text"].startswith("Taken: option 1.")
        new_head = (await bot.rows(Story))[0].head_id
        assert new_head not in {c.id for c in candidates}

        await api.click_button(ANN, "↶ Undo")
        undone = (await api.wait_messages(ANN, 6))[5]
        assert undone["text"].startswith("Undone: passage 2 is taken back")
        assert story_buttons(api, undone) == ["➡ Continue", "↶ Undo", "↷ Redo"]
        story = await bot.eventually(lambda: bot.rows(Story), lambda s: s[0].head_id != new_head)
        head = next(p for p in await bot.rows(Passage) if p.id == story[0].head_id)
        assert head.author == "user"
        await api.click_button(ANN, "↷ Redo")
        redone = (await api.wait_messages(ANN, 7))[6]
        assert redone["text"].startswith("Redone: passage 2 is back.")
        assert (await bot.rows(Story))[0].head_id == new_head

        await api.click_button(ANN, "➡ Continue")
        continued = (await api.wait_messages(ANN, 8))[7]
        assert "[1] " in continued["text"] and "Choose 1–3" in continued["text"]
        assert story_buttons(api, continued)[:3] == ["✍ 1", "✍ 2", "✍ 3"]


async def test_a_second_tap_on_a_keyboard_does_nothing_and_says_so(api, tmp_path) -> None:
    async with running_bot(api, tmp_path / "data", language_model=FakeLanguageModel(OUTPUTS * 3)) as bot:
        first = await offer(api, ANN)
        keyboard = [data_of(first, label) for label in ("✍ 1", "✍ 3", "↻ Retry")]
        await api.click(ANN, first["message_id"], keyboard[0])
        chosen = (await api.wait_messages(ANN, 3))[2]
        head = (await bot.rows(Story))[0].head_id

        # The same button again, and other buttons of the same keyboard: all are spent.
        for data in keyboard:
            query = await api.click(ANN, first["message_id"], data)
            assert await api.wait_answer(query) == "Already done."
        continue_data = data_of(chosen, "➡ Continue")
        await api.click(ANN, chosen["message_id"], continue_data)
        await api.wait_messages(ANN, 4)
        query = await api.click(ANN, chosen["message_id"], continue_data)
        assert await api.wait_answer(query) == "Already done."

        await settled(api, ANN, 4)
        assert (await bot.rows(Story))[0].head_id == head
        assert len(await bot.rows(Passage, Passage.author == "model")) == 6  # one continuation, not two
        taps = await bot.rows(Message, Message.author == "user", Message.client_id.like("tg:%:story"))
        assert [m.text for m in taps] == ["/choose 1", "/continue"]


@pytest.mark.parametrize("check_first", [True, False], ids=["as-sent", "both-past-the-channel-check"])
async def test_two_taps_at_once_act_once(api, tmp_path, monkeypatch, check_first: bool) -> None:
    async with running_bot(api, tmp_path / "data", language_model=FakeLanguageModel(OUTPUTS * 3)) as bot:
        first = await offer(api, ANN)
        await api.click(ANN, first["message_id"], data_of(first, "✍ 1"))
        chosen = (await api.wait_messages(ANN, 3))[2]
        if not check_first:
            # Both taps get past the channel's look-up (they came in the same instant): the turn's
            # SQL idempotency key alone must keep the second from acting.
            async def never_taken(user_id: int, client_id: str) -> bool:
                return False
            monkeypatch.setattr(bot.channel.state, "has_user_message", never_taken)
        updates = [api.click_update(ANN, chosen["message_id"], data_of(chosen, "➡ Continue")) for _ in range(2)]
        await asyncio.gather(*(api.send_update(update) for update in updates))  # one getUpdates batch
        answers = [await api.wait_answer(u["callback_query"]["id"]) for u in updates]
        assert sorted(answers, key=str) == ["Already done.", None]
        await settled(api, ANN, 4)
        assert len(await bot.rows(Passage, Passage.author == "model")) == 6
        assert len(await bot.rows(Message, Message.text == "/continue")) == 1


async def test_two_workers_tapped_at_once_act_once(api, database_url: str, tmp_path: Path) -> None:
    data = tmp_path / "data"
    hooked = {"mode": "webhook", "webhook_url": WEBHOOK, "database_url": database_url}
    model = FakeLanguageModel(OUTPUTS * 3)
    async with running_bot(api, data, language_model=model, **hooked) as one, \
            running_bot(api, data, language_model=model, **hooked) as two:
        await one.post_update(api.text_update(ANN, "/story"))
        await api.wait_messages(ANN, 1)
        await two.post_update(api.text_update(ANN, "A fox found a lantern in the snow."))
        first = (await api.wait_messages(ANN, 2))[1]
        # A double tap that a balancer spreads over two workers.
        updates = [api.click_update(ANN, first["message_id"], data_of(first, label)) for label in ("✍ 1", "✍ 2")]
        statuses = await asyncio.gather(one.post_update(updates[0]), two.post_update(updates[1]))
        assert statuses == [200, 200]
        answers = [await api.wait_answer(u["callback_query"]["id"]) for u in updates]
        assert sorted(answers, key=str) == ["Already done.", None]
        await settled(api, ANN, 3)
        candidates = await one.rows(Passage, Passage.author == "model")
        chosen = [c.id for c in candidates[:2]].index((await one.rows(Story))[0].head_id) + 1
        assert api.texts(ANN)[2].startswith(f"Taken: option {chosen}.")
        assert answers[chosen - 1] is None  # the tap that acted is the one whose choice was taken


async def test_a_tap_after_a_restart_is_already_done(api, tmp_path) -> None:
    data = tmp_path / "data"
    async with running_bot(api, data, language_model=FakeLanguageModel(OUTPUTS * 3)) as bot:
        first = await offer(api, ANN)
        stale = api.click_update(ANN, first["message_id"], data_of(first, "✍ 2"))  # made before the first tap
        await api.click(ANN, first["message_id"], data_of(first, "✍ 2"))
        await api.wait_messages(ANN, 3)
        head = (await bot.rows(Story))[0].head_id
    async with running_bot(api, data, language_model=FakeLanguageModel(OUTPUTS * 3)) as bot:
        await api.send_update(stale)  # a tap the old process never saw, on the keyboard as it was
        assert await api.wait_answer(stale["callback_query"]["id"]) == "Already done."
        await settled(api, ANN, 3)
        assert (await bot.rows(Story))[0].head_id == head


async def test_an_old_keyboard_of_a_story_that_moved_on_does_nothing(api, tmp_path) -> None:
    data = tmp_path / "data"
    async with running_bot(api, data, language_model=FakeLanguageModel(OUTPUTS * 3)):
        first = await offer(api, ANN)
    # A new process does not know which keyboard was the latest: the story's state in SQL does.
    async with running_bot(api, data, language_model=FakeLanguageModel(OUTPUTS * 3)) as bot:
        await api.send_text(ANN, "3")  # typed instead of tapped
        await api.wait_messages(ANN, 3)
        head = (await bot.rows(Story))[0].head_id
        assert story_buttons(api, api.bot_messages(ANN)[1])[:3] == ["✍ 1", "✍ 2", "✍ 3"]  # still shown
        query = await api.click(ANN, first["message_id"], data_of(first, "✍ 1"))
        assert await api.wait_answer(query) == "The story has moved on since: use the buttons under the newest passage."
        await api.wait_for(lambda: story_buttons(api, api.bot_messages(ANN)[1]) == [])  # taken away
        await settled(api, ANN, 3)
        assert (await bot.rows(Story))[0].head_id == head
        # A button of this process's previous keyboard is taken away once a newer one is shown.
        latest = api.bot_messages(ANN)[2]
        retry, undo = data_of(latest, "↻ Retry"), data_of(latest, "↶ Undo")
        await api.click(ANN, latest["message_id"], retry)
        await api.wait_messages(ANN, 4)
        assert story_buttons(api, api.bot_messages(ANN)[2]) == ["✓ ↻ Retry"]
        query = await api.click(ANN, latest["message_id"], undo)  # from a client that had not redrawn it
        assert await api.wait_answer(query) == "Already done."
        await settled(api, ANN, 4)


async def test_russian_buttons_and_replies(api, tmp_path) -> None:
    api.user_languages[OLGA] = "ru"
    async with running_bot(api, tmp_path / "data", language_model=FakeLanguageModel(OUTPUTS_RU * 3)) as bot:
        first = await offer(api, OLGA, "Лиса нашла фонарь в снегу и долго смотрела на него.")
        assert story_buttons(api, first) == ["✍ 1", "✍ 2", "✍ 3", "↻ Заново", "↶ Отменить"]
        choose_2 = data_of(first, "✍ 2")
        query = await api.click(OLGA, first["message_id"], choose_2)
        chosen = (await api.wait_messages(OLGA, 3))[2]
        assert await api.wait_answer(query) is None
        assert chosen["text"].startswith(f"Взят вариант 2.\n{OUTPUTS_RU[1]}")
        assert "Напиши, что будет дальше" in chosen["text"]
        assert story_buttons(api, chosen) == ["➡ Дальше", "↻ Заново", "↶ Отменить"]
        again = await api.click(OLGA, first["message_id"], choose_2)
        assert await api.wait_answer(again) == "Уже сделано."
        await api.click_button(OLGA, "↶ Отменить")
        undone = (await api.wait_messages(OLGA, 4))[3]
        assert undone["text"].startswith("Отменено: отрывок 2 убран")
        assert story_buttons(api, undone) == ["➡ Дальше", "↶ Отменить", "↷ Вернуть"]
        await api.click_button(OLGA, "↷ Вернуть")
        redone = (await api.wait_messages(OLGA, 5))[4]
        assert redone["text"].startswith("Возвращено: отрывок 2 снова в истории.")
        await settled(api, OLGA, 5)
        assert len(await bot.rows(Passage)) == 4


async def test_stories_with_none_open_lists_them_and_a_button_opens_one(api, tmp_path) -> None:
    async with running_bot(api, tmp_path / "data", language_model=FakeLanguageModel(OUTPUTS * 3)) as bot:
        await offer(api, ANN)
        await api.send_text(ANN, "/end")
        await api.wait_messages(ANN, 3)
        await api.send_text(ANN, "/stories")
        listing = (await api.wait_messages(ANN, 4))[3]
        assert listing["text"].startswith("Your stories:") and "Let's write" not in listing["text"]
        assert story_buttons(api, listing) == ["▶ Untitled story"]
        assert await bot.count(Story) == 1  # nothing new was started

        open_it = data_of(listing, "▶ Untitled story")
        query = await api.click(ANN, listing["message_id"], open_it)
        opened = (await api.wait_messages(ANN, 5))[4]
        assert await api.wait_answer(query) is None
        assert opened["text"].startswith('"Untitled story"') and "Candidates waiting" in opened["text"]
        assert story_buttons(api, opened)[:3] == ["✍ 1", "✍ 2", "✍ 3"]
        again = await api.click(ANN, listing["message_id"], open_it)
        assert await api.wait_answer(again) == "Already done."
        await api.click_button(ANN, "✍ 3")  # the story is open again: its buttons act
        assert (await api.wait_messages(ANN, 6))[5]["text"].startswith("Taken: option 3.")


async def test_a_button_of_a_deleted_story_does_nothing(api, tmp_path) -> None:
    async with running_bot(api, tmp_path / "data", language_model=FakeLanguageModel(OUTPUTS * 3)) as bot:
        first = await offer(api, ANN)
        await api.send_text(ANN, "/delete")
        await api.wait_messages(ANN, 3)
        await api.send_text(ANN, "yes")
        assert "Deleted" in (await api.wait_messages(ANN, 4))[3]["text"]
        query = await api.click(ANN, first["message_id"], data_of(first, "✍ 1"))
        assert await api.wait_answer(query) == "That button no longer works."
        await settled(api, ANN, 4)
        assert await bot.count(Story) == 0


async def test_export_arrives_as_a_document(api, tmp_path) -> None:
    async with running_bot(api, tmp_path / "data", language_model=FakeLanguageModel(OUTPUTS)):
        await offer(api, ANN)
        await api.send_text(ANN, "/choose 1")
        await api.wait_messages(ANN, 3)
        await api.send_text(ANN, "/export md")
        call = (await api.wait_calls("sendDocument"))[0]
        name, content = call.files["document"]
        assert name.endswith(".md")
        assert b"A fox found a lantern" in content and OUTPUTS[0].encode() in content


# --- the keyboards themselves ------------------------------------------------------------------

def test_story_buttons_fit_64_bytes_at_the_largest_ids_and_read_back() -> None:
    largest = 2**63 - 1
    view = {"id": largest, "language": "en", "head_id": largest, "can_undo": True, "can_redo": True,
            "passages": [{"id": largest, "author": "model"}], "candidates": [{"id": largest}] * 5}
    stories = [{"id": largest, "title": "я" * 300}] * 10
    for data in ({"story": view}, {"story": {**view, "candidates": []}}, {"stories": stories}):
        markup = kb.reply_markup(Reply("c", "x", "story", message_id=largest, data=data), offer_rating=False)
        story = [b for row in markup.inline_keyboard for b in row if kb.kind_of(b) == kb.STORY]
        assert story
        for button in story:
            assert len(button.callback_data.encode()) <= kb.MAX_CALLBACK_BYTES
            read = kb.story_button(kb.decode(button.callback_data))
            assert read.story_id == largest and read.head_id in (None, largest)
    assert len([r for r in kb.open_rows(stories)]) == kb.MAX_OPEN_BUTTONS


@pytest.mark.parametrize("data", ["s:u", "s:c:2", "s:c:1:-:-", "s:c:1:-:-:0", "s:c:1:-:-:x", "s:r:1:2", "s:o",
                                  "s:o:1:2", "s:u:ZZ:-:-", "s:u:-1:-:-", "s:u:" + "z" * 14 + ":-:-", "s:q:1:-:-"])
def test_story_buttons_tandem_did_not_make_are_refused(data) -> None:
    with pytest.raises(kb.CallbackDataError):
        kb.story_button(kb.decode(data))


def test_no_story_buttons_without_a_stored_story() -> None:
    reply = Reply("c", "x", "story", data={"story": {"story": {"candidates": [{}], "passages": []}}})
    assert kb.reply_markup(reply, offer_rating=False) is None
