"""The widget and the dashboard in real headless Chromium: chat with streaming, stop, quick replies,
thumbs and rating, resume after reload, story mode, safe rendering, phone size; then the database."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bot.storage.schema import Feedback, Message, Passage, Story
from tests.web.conftest import ADMIN_TOKEN, save_screenshot

pytestmark = pytest.mark.asyncio(loop_scope="module")

LOG = ".log"
INPUT = ".composer textarea"
BOT_DONE = ".msg.bot:not(.streaming)"


async def open_widget(browser, live_server, **context_options):
    context = await browser.new_context(**context_options)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(live_server.url + "/")
    await page.wait_for_selector(".panel:not([hidden])")
    # The socket said welcome once the composer can send.
    await page.wait_for_function("() => !!localStorage.getItem('tandem:' + location.host + ':token')")
    return context, page, errors


async def send(page, text: str) -> None:
    await page.fill(INPUT, text)
    await page.press(INPUT, "Enter")


async def rows(live_server, statement):
    async with live_server.tandem.db.transaction() as session:
        return list((await session.execute(statement)).scalars())


async def conversation_of(page) -> str:
    return await page.evaluate("() => JSON.parse(localStorage.getItem('tandem:' + location.host + ':conversation'))")


async def test_chat_streams_takes_feedback_and_resumes_after_reload(browser, live_server) -> None:
    context, page, errors = await open_widget(browser, live_server, viewport={"width": 1200, "height": 800})
    await send(page, "let's write a story")
    await page.wait_for_selector(f"{BOT_DONE} >> text=first passage")
    # Quick replies from the reply's suggestions.
    assert await page.locator(".suggestions .chip", has_text="continue").count() == 1

    await send(page, "Mira found a lantern in the attic.")
    streaming = page.locator(".msg.bot.streaming .text")
    await streaming.wait_for()
    assert await page.get_attribute(LOG, "aria-busy") == "true"  # no announcement per token
    partial = await streaming.text_content()
    last = page.locator(BOT_DONE).nth(1)
    await last.locator(".thumbs").wait_for()
    final = await last.locator(".text").text_content()
    assert partial and "lantern number 1" in final and len(partial) < len(final)
    assert await page.get_attribute(LOG, "aria-busy") == "false"

    await last.locator(".thumb-up").click()
    await page.wait_for_selector(f"{BOT_DONE} >> nth=-1 >> .thumb-up[aria-pressed='true']")
    await page.click(".rate-open")
    await page.click(".star[data-value='4']")
    await page.fill(".rating textarea", "lovely <b>fox</b>")
    await page.click(".rating button[type=submit]")
    await page.wait_for_selector(".rating-box .given >> text=4/5")
    save_screenshot(await page.screenshot(), "widget.png")

    conversation = await conversation_of(page)
    feedback = await rows(live_server, select(Feedback).where(Feedback.conversation_id == conversation)
                          .order_by(Feedback.id))
    assert [(f.kind, f.value, f.comment) for f in feedback] == [("thumb", 1, None), ("rating", 4, "lovely <b>fox</b>")]
    stored_before = len(await rows(live_server, select(Message).where(Message.conversation_id == conversation)))
    assert stored_before == 4

    await page.reload()
    await page.wait_for_selector(f"{BOT_DONE} >> nth=1")
    texts = await page.locator(".msg .text").all_text_contents()
    assert any("Mira found a lantern" in t for t in texts) and any("lantern number 1" in t for t in texts)
    assert await page.locator(f"{BOT_DONE} >> nth=-1 >> .thumb-up").get_attribute("aria-pressed") == "true"
    assert "4/5" in await page.locator(".rating-box .given").text_content()
    assert await conversation_of(page) == conversation
    assert len(await rows(live_server, select(Message).where(Message.conversation_id == conversation))) == stored_before
    assert errors == []
    await context.close()


async def test_stop_button_keeps_the_partial_reply(browser, live_server) -> None:
    context, page, _ = await open_widget(browser, live_server)
    await send(page, "let's write a story")
    await page.wait_for_selector(BOT_DONE)
    await send(page, "A storm broke over the harbour.")
    await page.locator(".msg.bot.streaming .text").wait_for()
    await page.click(".composer .stop")
    last = page.locator(BOT_DONE).nth(1)
    await last.locator(".badge").wait_for()
    assert await page.locator(".composer .stop").is_hidden()
    message_id = int(await last.get_attribute("data-message-id"))
    (stored,) = await rows(live_server, select(Message).where(Message.id == message_id))
    assert stored.status == "incomplete"
    await context.close()


async def test_quick_reply_button_sends_its_text(browser, live_server) -> None:
    context, page, _ = await open_widget(browser, live_server)
    await send(page, "help")
    chip = page.locator(".suggestions .chip", has_text="Leave feedback")
    await chip.click()
    await page.wait_for_selector(".msg.user >> text=Leave feedback")
    await page.wait_for_selector(f"{BOT_DONE} >> nth=1")
    conversation = await conversation_of(page)
    users = await rows(live_server, select(Message.text).where(Message.conversation_id == conversation,
                                                              Message.author == "user"))
    assert users == ["help", "Leave feedback"]
    await context.close()


async def test_user_and_model_text_cannot_inject_html(browser, live_server) -> None:
    context, page, errors = await open_widget(browser, live_server)
    attack = '<img src=x onerror="window.__pwned=1"> **bold** [x](javascript:alert(1))'
    await send(page, attack)
    await page.wait_for_selector(BOT_DONE)
    user_text = await page.locator(".msg.user .text").first.text_content()
    assert user_text == attack
    assert await page.locator(".log img").count() == 0
    assert await page.locator(".log a[href^='javascript']").count() == 0
    assert await page.evaluate("() => window.__pwned") is None
    assert errors == []
    await context.close()


async def test_story_mode_write_pick_undo_edit_and_export(browser, live_server) -> None:
    context, page, errors = await open_widget(browser, live_server, viewport={"width": 1200, "height": 900},
                                              accept_downloads=True)
    await page.click("#tandem-tab-story")
    await page.fill(".story-bar input", "The Lantern")
    await page.click(".story-bar button[type=submit]")
    await page.wait_for_selector(".story-view .empty")
    await page.fill(".story-actions textarea", "Mira found a lantern in the attic.")
    await page.click(".story-add")
    await page.wait_for_selector(".passage.user >> text=Mira found a lantern")

    await page.click(".story-continue")
    await page.wait_for_selector(".candidate[data-candidate='3'] .pick:not([disabled])")
    await page.wait_for_selector(".story-status >> text=candidates ready")
    cards = page.locator(".candidate")
    assert await cards.count() == 3
    boxes = [await cards.nth(i).bounding_box() for i in range(3)]
    assert boxes[0]["y"] == boxes[1]["y"] and boxes[0]["x"] < boxes[1]["x"]  # side by side
    save_screenshot(await page.screenshot(), "widget-story.png")
    second = await cards.nth(1).locator(".body").text_content()
    await cards.nth(1).locator(".pick").click()
    await page.wait_for_selector(".passage.model")
    assert await page.locator(".passage.model .body").text_content() == second
    assert await page.locator(".legend .edited").count() == 1

    await page.click(".story-undo")
    await page.wait_for_selector(".passage.model", state="detached")
    await page.click(".story-redo")
    await page.wait_for_selector(".passage.model")
    await page.locator(".passage.model .edit").click()
    await page.fill(".edit-form textarea", "The fox blew the lantern out.")
    await page.click(".edit-form button[type=submit]")
    await page.wait_for_selector(".passage.edited >> text=The fox blew the lantern out.")

    await page.click(".side summary")
    await page.fill("#tandem-memory", "Mira is nine.")
    await page.fill("#tandem-set-candidates", "2")
    await page.click(".story-save")
    await page.wait_for_selector(".story-status >> text=Saved")

    async with page.expect_download() as download_info:
        await page.click(".story-export-md")
    download = await download_info.value
    exported = open(await download.path(), encoding="utf-8").read()
    assert exported.startswith("# The Lantern") and "The fox blew the lantern out." in exported

    (story,) = await rows(live_server, select(Story).where(Story.title == "The Lantern"))
    passages = await rows(live_server, select(Passage).where(Passage.story_id == story.id).order_by(Passage.id))
    authors = [p.author for p in passages]
    assert authors[:4] == ["user", "model", "model", "model"] and authors[-1] == "edited"
    assert [p.chosen_at is not None for p in passages[1:4]] == [False, True, False]
    assert story.memory == "Mira is nine." and story.settings["candidates"] == 2
    assert errors == []
    await context.close()


async def test_phone_sized_screen_and_keyboard_only(browser, live_server) -> None:
    context, page, _ = await open_widget(browser, live_server, viewport={"width": 375, "height": 667},
                                         is_mobile=True, has_touch=True)
    box = await page.locator(".panel").bounding_box()
    assert box["width"] == 375 and box["height"] == 667
    # Keyboard only: the panel focuses the composer; Enter sends; Tab reaches the thumbs.
    assert await page.evaluate("() => document.querySelector('#tandem-widget').shadowRoot.activeElement.tagName") \
        == "TEXTAREA"
    await page.keyboard.type("help")
    await page.keyboard.press("Enter")
    await page.wait_for_selector(f"{BOT_DONE} .thumb-down")
    await page.locator(f"{BOT_DONE} .thumb-down").focus()
    await page.keyboard.press("Enter")
    await page.wait_for_selector(f"{BOT_DONE} .thumb-down[aria-pressed='true']")
    await page.keyboard.press("Escape")
    assert await page.locator(".panel").is_hidden()
    await context.close()


async def seed_two_weeks(tandem) -> None:
    """Varied, back-dated conversations, so the dashboard's charts have something to show."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import update

    from bot.core.state import DialogState
    from bot.storage.conversations import NewMessage
    from bot.storage.schema import Conversation

    repo, feedback = tandem.conversations, tandem.feedback
    now = datetime.now(UTC)
    skills = [("help", None, None), ("story", None, None), ("smalltalk", None, None),
              ("graph", "onboarding", "greet"), ("graph", "about", "start")]
    for n in range(24):
        user_id, _ = await repo.create_token_user("web")
        conversation = await repo.open_conversation(user_id, "web")
        ids = []
        for t in range(1 + n % 4):
            skill, flow, node = skills[(n + t) % len(skills)]
            await repo.add_user_message(conversation, NewMessage("user", f"message {t}"))
            ids.append(await repo.finish_turn(conversation, NewMessage("bot", "answer", skill=skill, flow=flow,
                                                                       node=node), DialogState()))
        for t, message_id in enumerate(ids):
            await feedback.add_thumb(message_id, user_id, (n * 7 + t) % 5 != 0, "web")
        await feedback.add_offer(conversation, "rating", "web")
        if n % 3:
            await feedback.add_rating(conversation, user_id, [5, 4, 4, 3, 5, 2, 4][n % 7],
                                      ["Loved the fox story!", None, "A bit slow to answer", None][n % 4], "web")
        when = now - timedelta(days=13 - n * 13 // 23, hours=n % 5)
        async with tandem.db.transaction() as session:
            await session.execute(update(Conversation).where(Conversation.id == conversation).values(started_at=when))
            await session.execute(update(Message).where(Message.conversation_id == conversation)
                                  .values(created_at=when + timedelta(minutes=n % 6)))


async def test_dashboard_behind_the_token_shows_the_feedback(browser, live_server) -> None:
    tandem = live_server.tandem
    await seed_two_weeks(tandem)
    user_id, _ = await tandem.conversations.create_token_user("web")
    conversation = await tandem.conversations.open_conversation(user_id, "web")
    await tandem.feedback.add_rating(conversation, user_id, 5, "lovely <b>fox</b>", "web")
    context = await browser.new_context(viewport={"width": 1100, "height": 1400})
    page = await context.new_page()
    await page.goto(live_server.url + "/admin")
    assert page.url.endswith("/admin/login")
    await page.fill("#token", "wrong")
    await page.click("button[type=submit]")
    await page.wait_for_selector("text=That token is not right.")
    await page.fill("#token", ADMIN_TOKEN)
    await page.click("button[type=submit]")
    await page.wait_for_selector("h1 >> text=Tandem feedback")
    cookie = next(c for c in await context.cookies() if c["name"] == "tandem_admin")
    assert cookie["httpOnly"] and cookie["value"] != ADMIN_TOKEN
    assert await page.locator("svg[role=img]").count() >= 5
    body = await page.locator("main").text_content()
    assert "lovely <b>fox</b>" in body  # the comment shown as text, not markup
    assert await page.locator("main b").count() == 0
    save_screenshot(await page.screenshot(full_page=True), "dashboard.png")
    await context.close()


async def test_delete_my_data_asks_then_deletes_everything_and_starts_afresh(browser, live_server) -> None:
    from bot.storage.schema import Conversation

    context, page, errors = await open_widget(browser, live_server)
    await send(page, "help")
    await page.wait_for_selector(BOT_DONE)
    token = await page.evaluate("() => JSON.parse(localStorage.getItem('tandem:' + location.host + ':token'))")
    user_id = await live_server.tandem.conversations.user_by_token(token)
    conversation = await conversation_of(page)
    await page.click(".delete-data")
    bar = page.locator(".delete-bar")
    await bar.wait_for()
    await bar.locator(".delete-no").click()  # cancel: nothing happens
    assert await bar.is_hidden()
    assert await live_server.tandem.conversations.user_by_token(token) == user_id

    await page.click(".delete-data")
    await bar.locator(".delete-yes").click()
    # The widget forgets the old session and the reconnect opens a new, empty one.
    await page.wait_for_function(
        "(old) => { const t = JSON.parse(localStorage.getItem('tandem:' + location.host + ':token')); "
        "return t && t !== old; }", arg=token)
    assert await page.locator(".msg").count() == 0
    assert await live_server.tandem.conversations.user_by_token(token) is None
    # (SQLite may give the new session the freed user id, so look the old rows up by their own ids.)
    assert await rows(live_server, select(Conversation).where(Conversation.id == conversation)) == []
    assert await rows(live_server, select(Message).where(Message.conversation_id == conversation)) == []
    assert errors == []
    await context.close()
