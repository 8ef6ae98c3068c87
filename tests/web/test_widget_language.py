"""The widget in the browser's language: a Russian browser gets the Russian UI, demo page and first reply,
and its time zone goes to the server in hello; a page's data-lang wins over the browser."""

from __future__ import annotations

import contextlib

import pytest

from tests.web.test_widget_browser import BOT_DONE, INPUT, open_widget, send

pytestmark = pytest.mark.asyncio(loop_scope="module")


def hello_frames(page) -> list[dict]:
    """Every hello frame the page's widget sends, parsed, as it sends them."""
    import json

    frames: list[dict] = []

    def on_socket(ws) -> None:
        ws.on("framesent", lambda payload: frames.append(json.loads(payload)) if '"hello"' in str(payload) else None)

    page.on("websocket", on_socket)
    return frames


async def test_a_russian_browser_gets_the_russian_widget_and_answers(browser, live_server) -> None:
    context = await browser.new_context(locale="ru-RU", timezone_id="Asia/Vladivostok")
    page = await context.new_page()
    frames = hello_frames(page)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(live_server.url + "/")
    await page.wait_for_selector(".panel:not([hidden])")
    await page.wait_for_function("() => !!localStorage.getItem('tandem:' + location.host + ':token')")
    assert await page.get_attribute(INPUT, "placeholder") == "Напиши сообщение…"
    assert await page.locator(".composer .send").text_content() == "Отправить"
    assert await page.locator("#tandem-tab-chat").text_content() == "Чат"
    assert await page.locator(".star[data-value='2']").get_attribute("aria-label") == "2 звезды"
    assert await page.evaluate("() => document.documentElement.lang") == "ru"
    assert await page.locator("main [data-lang='ru']").is_visible()
    assert await page.locator("main [data-lang='en']").is_hidden()
    assert frames and frames[0]["language"] == "ru" and frames[0]["timezone"] == "Asia/Vladivostok"

    await send(page, "help")  # one Latin word: the browser's language decides
    reply = page.locator(BOT_DONE).first
    await reply.wait_for()
    text = await reply.locator(".text").text_content()
    assert "умею" in text, text
    await page.locator("#tandem-tab-story").wait_for()
    assert await page.locator("#tandem-tab-story").text_content() == "История"
    assert errors == []
    await context.close()


async def test_an_english_browser_gets_english(browser, live_server) -> None:
    context, page, errors = await open_widget(browser, live_server, locale="en-GB", timezone_id="Europe/London")
    assert await page.get_attribute(INPUT, "placeholder") == "Type a message…"
    assert await page.locator("main [data-lang='en']").is_visible()
    await send(page, "help")
    await page.wait_for_selector(f"{BOT_DONE} >> text=what I can do")
    assert errors == []
    await context.close()


async def test_the_pages_data_lang_wins_over_the_browser(browser, live_server) -> None:
    context = await browser.new_context(locale="ru-RU")
    # A routed page has no address; Chromium's Local Network Access checks then ask before it
    # connects to 127.0.0.1. Chromium versions without those checks do not know the permission.
    with contextlib.suppress(Exception):
        await context.grant_permissions(["local-network-access"])
    page = await context.new_page()
    frames = hello_frames(page)
    page_html = ('<!doctype html><html><body><script src="/widget.js" data-lang="en" data-open="true">'
                 "</script></body></html>")
    await page.route(live_server.url + "/embedded", lambda route: route.fulfill(
        status=200, content_type="text/html", body=page_html))
    await page.goto(live_server.url + "/embedded")
    await page.wait_for_selector(".panel:not([hidden])")
    await page.wait_for_function("() => !!localStorage.getItem('tandem:' + location.host + ':token')")
    assert await page.get_attribute(INPUT, "placeholder") == "Type a message…"
    assert frames and frames[0]["language"] == "en"
    await context.close()
