"""The writing studio at /write in real headless Chromium against the real server (fake model):
streaming, swipes, retry in place, stop, edit, undo/redo, thumbs, branches, the side tabs, import
and export, a phone screen, keyboard-only use and safe rendering; each checked in the database too."""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import select

from bot.settings import PROJECT_ROOT
from bot.storage.schema import LoreEntry, Passage, Story
from bot.storage.stories import NewPassage
from tests.test_shipped_texts import LANGUAGES, _object_keys
from tests.web.conftest import save_screenshot

# The browser tests share the module's server and its event loop.
IN_MODULE_LOOP = pytest.mark.asyncio(loop_scope="module")

COMPOSER = "#composer-text"
ATTACK = '<img src=x onerror="window.__pwned=1"> **bold**'


def passage(number: int) -> str:
    return f"#passages .passage[data-number='{number}']"


async def open_studio(browser, live_server, path: str = "/write", **context_options):
    context = await browser.new_context(**context_options)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # What the Content-Security-Policy blocks is reported on the console, not as a page error.
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" and "Refused to" in m.text else None)
    await page.goto(live_server.url + path)
    await page.wait_for_function("() => !!localStorage.getItem('tandem:' + location.host + ':token')")
    return context, page, errors


async def rows(live_server, statement):
    async with live_server.tandem.db.transaction() as session:
        return list((await session.execute(statement)).scalars())


async def story_row(live_server, story_id: int) -> Story:
    (story,) = await rows(live_server, select(Story).where(Story.id == story_id))
    return story


async def passage_row(live_server, passage_id: int) -> Passage:
    (row,) = await rows(live_server, select(Passage).where(Passage.id == passage_id))
    return row


async def open_story_id(page) -> int:
    return await page.evaluate("() => JSON.parse(localStorage.getItem('tandem:' + location.host + ':story'))")


async def user_of(page, live_server) -> int:
    token = await page.evaluate("() => JSON.parse(localStorage.getItem('tandem:' + location.host + ':token'))")
    return await live_server.tandem.conversations.user_by_token(token)


async def seed_story(live_server, user_id: int, title: str) -> int:
    """Five passages by the three authors, the fourth with a second version, and two lore entries."""
    service = live_server.tandem.stories
    view = await service.start(user_id, title=title, language="en", text="Mira found a brass lantern under the snow.")
    story_id = view.story.id
    repo = service.repo
    first = view.path[-1].id
    _, (second,) = await repo.add_passages(user_id, story_id, [NewPassage(
        "model", "It was cold to the touch, yet a small flame woke inside it when she breathed on the glass.", first)])
    _, (third,) = await repo.add_passages(user_id, story_id, [NewPassage(
        "user", "She carried it home through the silent woods, the flame leaning always north.", second.id)])
    await repo.add_passages(user_id, story_id, [
        NewPassage("model", "At the old bridge the flame flared, and the ice below began to glow.", third.id),
        NewPassage("model", "At the bridge an owl called her name, which no owl should know.", third.id),
    ], head_index=0)
    story = await repo.get_story(user_id, story_id)
    await repo.add_passages(user_id, story_id, [NewPassage(
        "edited", "Mira knelt and whispered to the lantern, and the lantern whispered back.", story.head_id)])
    await service.set_lore(user_id, story_id, ["lantern"], "The lantern holds the last spark of the winter sun.", True)
    await service.set_lore(user_id, story_id, ["dragon"], "Dragons sleep under the northern lake.", True)
    await service.set_memory(user_id, story_id, "Mira is a young fox of nine winters.")
    return story_id


async def texts(page, selector: str) -> list[str]:
    return await page.locator(selector).all_text_contents()


async def lore_entry(page, text: str):
    """The lore editor's entry whose text field holds `text` (a value, so not findable by has_text)."""
    script = ("(text) => { const area = [...document.querySelectorAll('.lore-entry textarea')]"
              ".find(a => a.value.includes(text)); return area && area.closest('.lore-entry').dataset.loreId; }")
    handle = await page.wait_for_function(script, arg=text)
    return page.locator(f".lore-entry[data-lore-id='{await handle.json_value()}']")


async def watch_live_text(page) -> None:
    """Record every text the live passage shows, to see the stream arrive in pieces."""
    await page.evaluate("""() => {
        window.__seen = [];
        new MutationObserver(() => {
            const live = document.querySelector('.passage.live .body');
            if (live && live.textContent && window.__seen[window.__seen.length - 1] !== live.textContent)
                window.__seen.push(live.textContent);
        }).observe(document.getElementById('passages'), {childList: true, subtree: true, characterData: true});
    }""")


async def wait_idle(page) -> None:
    await page.wait_for_selector(".passage.live", state="detached")
    await page.wait_for_selector("#passages[aria-busy='false']")


def test_every_studio_text_is_in_english_and_russian() -> None:
    texts = (PROJECT_ROOT / "bot/web/static/studio-texts.js").read_text(encoding="utf-8")
    start = texts.index("window.TandemStudioTexts = {") + len("window.TandemStudioTexts = ")
    tables, _ = _object_keys(texts, start)
    assert set(tables) == LANGUAGES
    keys = {lang: _object_keys(texts, texts.index("{", begin))[0] for lang, (begin, _) in tables.items()}
    source = (PROJECT_ROOT / "bot/web/static/studio.js").read_text(encoding="utf-8")
    assert set(keys["en"]) == set(keys["ru"]) and len(keys["en"]) > 50
    html = (PROJECT_ROOT / "bot/web/static/studio.html").read_text(encoding="utf-8")
    used = set(re.findall(r'data-t(?:-\w+)?="(\w+)"', html)) | set(re.findall(r"\bT\.(\w+)", source))
    assert used <= set(keys["en"]), used - set(keys["en"])


@IN_MODULE_LOOP
async def test_write_stream_swipe_retry_stop_edit_undo_and_thumbs(browser, live_server) -> None:
    context, page, errors = await open_studio(browser, live_server, viewport={"width": 1280, "height": 800})
    assert "script-src 'self';" in (await page.request.get(live_server.url + "/write")).headers["content-security-policy"]
    await page.fill("#new-title", "The Lantern")
    await page.click("#new-story button[type=submit]")
    await page.wait_for_selector("#passages .empty")
    assert await page.text_content("#story-title") == "The Lantern"
    story_id = await open_story_id(page)
    assert await page.evaluate("() => document.activeElement.id") == "composer-text"

    # Ctrl+Enter: the composer's text is the writer's passage, then the model's streams in pieces.
    await page.fill(COMPOSER, "Mira found a lantern in the attic.")
    await watch_live_text(page)
    await page.press(COMPOSER, "Control+Enter")
    await page.wait_for_selector(passage(2))
    await wait_idle(page)
    seen = await page.evaluate("() => window.__seen")
    final = await page.text_content(passage(2) + " .body")
    assert len(seen) >= 3 and all(final.startswith(s) for s in seen) and len(seen[0]) < len(final)
    assert await page.input_value(COMPOSER) == ""
    assert await page.get_attribute(passage(1), "data-author") == "user"
    assert await page.text_content(passage(2) + " .swipe-count") == "1/3"
    story = await story_row(live_server, story_id)
    head = await passage_row(live_server, story.head_id)
    assert head.text == final and head.author == "model" and head.chosen_at is not None

    # Swipes: the button and Alt+→ / Alt+← show the other candidates, and the head follows.
    await page.click(passage(2) + " .swipe-next")
    await page.wait_for_selector(passage(2) + " .swipe-count >> text=2/3")
    second = await page.text_content(passage(2) + " .body")
    assert second != final
    assert await page.evaluate("() => document.activeElement.className") == "swipe-next"  # keeps swiping
    assert (await passage_row(live_server, (await story_row(live_server, story_id)).head_id)).text == second
    await page.focus(COMPOSER)
    await page.keyboard.press("Alt+ArrowRight")
    await page.wait_for_selector(passage(2) + " .swipe-count >> text=3/3")
    third = await page.text_content(passage(2) + " .body")
    assert third not in (final, second)
    assert (await passage_row(live_server, (await story_row(live_server, story_id)).head_id)).text == third
    await page.keyboard.press("Alt+ArrowLeft")
    await page.wait_for_selector(passage(2) + " .swipe-count >> text=2/3")
    assert (await passage_row(live_server, (await story_row(live_server, story_id)).head_id)).text == second

    # Retry: the new version streams in the same place and becomes the passage, with new siblings.
    await page.click("#retry")
    await page.wait_for_selector(".passage.live")
    assert await page.locator("#passages > .passage").count() == 2
    assert await page.locator("#passages > .passage").nth(1).get_attribute("class") == "passage model live"
    await wait_idle(page)
    assert await page.locator("#passages > .passage").count() == 2
    assert await page.text_content(passage(2) + " .swipe-count") == "4/6"
    retried = await page.text_content(passage(2) + " .body")
    assert retried not in (final, second, third)
    new_head = await passage_row(live_server, (await story_row(live_server, story_id)).head_id)
    assert new_head.text == retried and new_head.parent_id == head.parent_id

    # Stop: what was written stays, as an incomplete passage, in the page and in the database.
    await page.press(COMPOSER, "Control+Enter")
    await page.wait_for_function("() => { const b = document.querySelector('.passage.live .body');"
                                 " return b && b.textContent.split(' ').length > 3; }")
    await page.click("#stop")
    await page.wait_for_selector(passage(3) + ".incomplete .flag >> text=incomplete")
    assert await page.is_hidden("#stop")
    stopped = await passage_row(live_server, (await story_row(live_server, story_id)).head_id)
    assert stopped.status == "incomplete" and stopped.text == await page.text_content(passage(3) + " .body")
    assert "lantern number" in stopped.text and not stopped.text.endswith("woods.")

    # Ctrl+Z undoes (the composer is empty), Ctrl+Shift+Z redoes.
    await page.focus(COMPOSER)
    await page.keyboard.press("Control+z")
    await page.wait_for_selector(passage(3), state="detached")
    assert (await story_row(live_server, story_id)).head_id == new_head.id
    await page.keyboard.press("Control+Shift+z")
    await page.wait_for_selector(passage(3))
    assert (await story_row(live_server, story_id)).head_id == stopped.id

    # Inline edit: Esc cancels, Save stores a new version by "edited".
    await page.dblclick(passage(2) + " .body")
    await page.fill(passage(2) + " .edit-area", "Something I will not keep.")
    await page.press(passage(2) + " .edit-area", "Escape")
    assert await page.text_content(passage(2) + " .body") == retried
    assert await page.evaluate("() => document.activeElement.id") == "composer-text"
    await page.click(passage(2) + " .edit")
    await page.fill(passage(2) + " .edit-area", "The fox blew the lantern out and listened.")
    await page.click(passage(2) + " .edit-save")
    await page.wait_for_selector(passage(2) + ".edited >> text=The fox blew the lantern out and listened.")
    assert await page.evaluate("() => document.activeElement.id") == "composer-text"
    edited = (await rows(live_server, select(Passage).where(Passage.story_id == story_id, Passage.author == "edited")))
    assert [p.source_id for p in edited] == [new_head.id]

    # Thumbs on a model passage are stored; the same thumb again takes it back.
    await page.click(passage(3) + " .thumb-up")
    await page.wait_for_selector(passage(3) + " .thumb-up[aria-pressed='true']")
    third_id = int(await page.get_attribute(passage(3), "data-passage-id"))
    assert (await passage_row(live_server, third_id)).rating == 1
    await page.click(passage(3) + " .thumb-down")
    await page.wait_for_selector(passage(3) + " .thumb-down[aria-pressed='true']")
    assert (await passage_row(live_server, third_id)).rating == -1

    # Branch from passage 1, write on; the outline shows the fork, and a click goes to the other branch.
    await page.click(passage(1) + " .branch")
    await page.wait_for_selector(passage(2), state="detached")
    await page.fill(COMPOSER, "But the attic door slammed shut behind her.")
    await page.click("#add")
    await page.wait_for_selector(passage(2) + " >> text=attic door slammed")
    # Three branches after passage 1: the retried version (with the stopped passage), the edited copy
    # of it, and the new one; the versions never continued are swipes ("+N"), not branches.
    await page.wait_for_selector("#outline .fork .branch")
    assert await page.locator("#outline .fork > ul > li").count() == 3
    assert await page.locator("#outline .fork > ul > li.current").count() == 1
    assert await page.text_content("#outline .fork > .alternatives") == "+5"
    other = page.locator("#outline .fork .branch:not(.current) .outline-item").last
    other_id = int(await other.get_attribute("data-passage-id"))
    await other.click()
    await page.wait_for_function(f"() => document.querySelector(\"#passages .passage[data-passage-id='{other_id}']\")")
    assert (await story_row(live_server, story_id)).head_id == other_id
    assert errors == []
    await context.close()


@IN_MODULE_LOOP
async def test_side_tabs_store_details_lore_settings_and_show_the_context(browser, live_server) -> None:
    context, page, errors = await open_studio(browser, live_server, viewport={"width": 1280, "height": 800})
    story_id = await seed_story(live_server, await user_of(page, live_server), "Winter Lantern")
    await page.goto(f"{live_server.url}/write?story={story_id}")
    await page.wait_for_selector(passage(5))
    assert await texts(page, "#passages .passage .who") == ["you", "model", "you", "model", "model, edited by you"]
    assert await page.text_content(passage(4) + " .swipe-count") == "1/2"

    # Details round-trip.
    await page.click("#tab-details")
    await page.fill("#d-premise", "A fox and a lantern that remembers the sun.")
    await page.fill("#d-genre", "fairy tale")
    await page.fill("#d-style", "quiet, wintry")
    await page.fill("#d-note", "Keep it gentle.")
    await page.click("#details-save")
    await page.wait_for_selector("#status >> text=Saved.")
    story = await story_row(live_server, story_id)
    assert (story.premise, story.genre, story.style, story.author_note) == (
        "A fox and a lantern that remembers the sun.", "fairy tale", "quiet, wintry", "Keep it gentle.")
    assert story.memory == "Mira is a young fox of nine winters."

    # Lore: add, edit, switch off and on, delete; each stored.
    await page.click("#tab-lore")
    await page.wait_for_selector(".lore-entry >> nth=1")
    await page.fill("#lore-keys", "owl, owls")
    await page.fill("#lore-text", "The owl of the bridge knows every name.")
    await page.click("#lore-add button[type=submit]")
    await page.wait_for_selector(".lore-entry >> nth=2")
    entry = await lore_entry(page, "The owl of the bridge")
    assert re.fullmatch(r"\d+ tokens", await entry.locator(".lore-tokens").text_content())
    await entry.locator("textarea").fill("The owl of the old bridge knows every name.")
    await entry.locator(".lore-save").click()
    await lore_entry(page, "The owl of the old bridge")
    await page.wait_for_selector("#status >> text=Saved.")
    owl = await rows(live_server, select(LoreEntry).where(LoreEntry.story_id == story_id, LoreEntry.keys.contains("owl")))
    assert [o.text for o in owl] == ["The owl of the old bridge knows every name."]
    dragon = await lore_entry(page, "Dragons sleep")
    await dragon.locator(".lore-on").uncheck()
    await page.wait_for_selector(".lore-entry.off")
    (dragon_row,) = await rows(live_server, select(LoreEntry).where(LoreEntry.story_id == story_id,
                                                                   LoreEntry.keys.contains("dragon")))
    assert dragon_row.enabled is False

    # Settings round-trip.
    await page.click("#tab-settings")
    await page.fill("#s-candidates", "2")
    await page.fill("#s-temperature", "0.7")
    assert await page.input_value("#s-sentences") == "5"
    await page.fill("#s-sentences", "3")
    await page.click("#settings-save")
    await page.wait_for_selector("#status >> text=Saved.")
    settings = (await story_row(live_server, story_id)).settings
    assert settings["candidates"] == 2 and settings["temperature"] == 0.7 and settings["sentences"] == 3

    # Context: the budget by section, each section's text, lore in and out with the reason.
    await page.click("#tab-context")
    await page.wait_for_selector("#context-view .budget-bar .segment")
    names = await page.locator("#context-view details.section").evaluate_all("ns => ns.map(n => n.dataset.section)")
    assert {"instruction", "memory", "lore", "passages", "author_note", "task"} <= set(names)
    await page.wait_for_selector("#context-view .context-lore li")
    save_screenshot(await page.screenshot(), "studio.png")
    memory = page.locator("#context-view details.section[data-section='memory']")
    assert not await memory.locator("pre").is_visible()
    await memory.locator("summary").click()
    assert "nine winters" in await memory.locator("pre").text_content()
    included = await texts(page, "#context-view .context-lore li.included strong")
    left_out = await texts(page, "#context-view .context-lore li.left-out strong")
    assert "lantern" in included and "dragon" in left_out
    assert all(await texts(page, "#context-view .context-lore .reason"))

    # Delete asks once more inline, then deletes.
    await page.click("#tab-lore")
    dragon = await lore_entry(page, "Dragons sleep")
    await dragon.locator(".lore-delete").click()
    await dragon.locator(".lore-delete >> text=Delete for good?").click()
    await page.wait_for_function("() => document.querySelectorAll('.lore-entry').length === 2")
    assert await rows(live_server, select(LoreEntry).where(LoreEntry.id == dragon_row.id)) == []

    # A character answers, streamed, and the story is unchanged.
    head_before = (await story_row(live_server, story_id)).head_id
    await page.click("#tab-character")
    await page.fill("#char-name", "Mira")
    await page.fill("#char-question", "Where are you taking the lantern?")
    await page.press("#char-question", "Enter")
    await page.wait_for_selector("#character-log .answer[aria-busy='false']")
    assert "lantern number" in await page.text_content("#character-log .answer")
    assert (await story_row(live_server, story_id)).head_id == head_before
    assert errors == []
    await context.close()


@IN_MODULE_LOOP
async def test_export_downloads_and_import_makes_a_new_story(browser, live_server) -> None:
    context, page, errors = await open_studio(browser, live_server, accept_downloads=True)
    story_id = await seed_story(live_server, await user_of(page, live_server), "Exported Lantern")
    await page.goto(f"{live_server.url}/write?story={story_id}")
    await page.wait_for_selector(passage(5))
    await page.click("#tab-files")
    async with page.expect_download() as md_info:
        await page.click(".export[data-format='md']")
    md = open(await (await md_info.value).path(), encoding="utf-8").read()
    assert md.startswith("# Exported Lantern") and "whispered back" in md
    async with page.expect_download() as json_info:
        await page.click(".export[data-format='json']")
    download = await json_info.value
    assert download.suggested_filename == "exported-lantern.json"
    exported = json.loads(open(await download.path(), encoding="utf-8").read())
    assert exported

    await page.set_input_files("#import-file", await download.path())
    await page.click("#import-form button[type=submit]")
    await page.wait_for_selector("#status >> text=Imported as a new story.")
    new_id = await open_story_id(page)
    assert new_id != story_id
    assert await page.locator(".story-item", has_text="Exported Lantern").count() == 2
    assert await texts(page, "#passages .passage .body") == [
        p.text for p in (await live_server.tandem.stories.view(await user_of(page, live_server), story_id)).path]
    copies = await rows(live_server, select(Story).where(Story.title == "Exported Lantern"))
    assert len(copies) == 2

    await page.set_input_files("#import-file", files=[{"name": "x.json", "mimeType": "application/json",
                                                       "buffer": b"not json"}])
    await page.click("#import-form button[type=submit]")
    await page.wait_for_selector("#alert >> text=not a JSON export")
    assert errors == []
    await context.close()


@IN_MODULE_LOOP
async def test_user_text_in_titles_and_passages_cannot_run(browser, live_server) -> None:
    context, page, errors = await open_studio(browser, live_server)
    await page.fill("#new-title", ATTACK)
    await page.click("#new-story button[type=submit]")
    await page.wait_for_selector("#passages .empty")
    await page.fill(COMPOSER, ATTACK)
    await page.click("#add")
    await page.wait_for_selector(passage(1))
    assert await page.text_content(passage(1) + " .body") == ATTACK
    assert await page.text_content("#story-title") == ATTACK
    assert await page.locator(".story-item", has_text="<img").count() == 1
    await page.click("#tab-context")
    await page.wait_for_selector("#context-view details.section")
    await page.click("#toggle-stories")
    await page.click("#toggle-stories")
    await page.wait_for_selector("#outline .outline-item")
    assert await page.locator("img").count() == 0
    assert await page.evaluate("() => window.__pwned") is None
    assert errors == []
    await context.close()


@IN_MODULE_LOOP
async def test_phone_screen_reaches_every_control(browser, live_server) -> None:
    context, page, errors = await open_studio(browser, live_server, viewport={"width": 390, "height": 844},
                                              is_mobile=True, has_touch=True)
    story_id = await seed_story(live_server, await user_of(page, live_server), "Phone Lantern")
    await page.goto(f"{live_server.url}/write?story={story_id}")
    await page.wait_for_selector(passage(5))

    async def on_screen(selector: str) -> None:
        node = page.locator(selector)
        await node.scroll_into_view_if_needed()
        box = await node.bounding_box()
        assert box and box["x"] >= 0 and box["y"] >= 0, selector
        assert box["x"] + box["width"] <= 390 and box["y"] + box["height"] <= 844, (selector, box)

    page_box = await page.locator(".page").bounding_box()
    assert page_box["width"] == 390  # the document takes the whole width
    assert await page.is_hidden("#panel") and await page.is_hidden("#stories")
    for selector in ["#toggle-stories", "#toggle-panel", COMPOSER, "#continue", "#add", "#retry", "#undo", "#redo",
                     passage(4) + " .swipe-next", passage(5) + " .edit", passage(5) + " .branch", passage(5) + " .thumb-down"]:
        await on_screen(selector)
    save_screenshot(await page.screenshot(), "studio-phone.png")

    await page.tap("#toggle-panel")
    await page.wait_for_selector("#panel")
    for tab in ["details", "lore", "context", "character", "settings", "files"]:
        await on_screen(f"#tab-{tab}")
        await page.tap(f"#tab-{tab}")
        controls = page.locator(f"#pane-{tab} button:visible, #pane-{tab} input:visible, #pane-{tab} textarea:visible")
        for i in range(await controls.count()):
            control = controls.nth(i)
            await control.scroll_into_view_if_needed()
            box = await control.bounding_box()
            assert box["x"] >= 0 and box["x"] + box["width"] <= 390 and box["y"] + box["height"] <= 844, (tab, i, box)
    await page.tap("#close-panel")
    assert await page.is_hidden("#panel")
    await page.tap("#toggle-stories")
    await on_screen("#new-title")
    await on_screen(".story-item[aria-current='true']")
    await page.keyboard.press("Escape")
    assert await page.is_hidden("#stories")
    assert errors == []
    await context.close()


@IN_MODULE_LOOP
async def test_keyboard_only_reaches_the_composer_and_swipes_quickly(browser, live_server) -> None:
    context, page, errors = await open_studio(browser, live_server, viewport={"width": 1280, "height": 800})
    story_id = await seed_story(live_server, await user_of(page, live_server), "Keyboard Lantern")
    await page.goto(f"{live_server.url}/write?story={story_id}")
    await page.wait_for_selector(passage(5))
    await live_server.tandem.stories.update_settings(await user_of(page, live_server), story_id, {"candidates": 2})

    async def tabs_until(check: str, limit: int, key: str = "Tab") -> int:
        for count in range(1, limit + 1):
            await page.keyboard.press(key)
            if await page.evaluate(check):
                return count
        raise AssertionError(f"not reached in {limit} presses of {key}")

    # From the page's first stop (the skip link): the header's two toggles, the current passage and
    # its tools, then the composer.
    await page.focus("#skip")
    assert await tabs_until("() => document.activeElement.id === 'composer-text'", 10) == 8
    # Focus is visible: the focused element has an outline.
    assert await page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle") == "solid"
    # Up from the last passage to the fourth, whose swipe is a few Tabs from its block.
    await page.keyboard.press("Shift+Tab")
    await tabs_until("() => document.activeElement.classList.contains('passage')", 8, "Shift+Tab")
    await page.keyboard.press("ArrowUp")
    assert await page.evaluate("() => document.activeElement.dataset.number") == "4"
    await tabs_until("() => document.activeElement.classList.contains('swipe-next')", 2)
    await page.keyboard.press("Enter")
    await page.wait_for_selector(passage(4) + " .swipe-count >> text=2/2")
    assert await page.evaluate("() => document.activeElement.classList.contains('swipe-next')")
    assert "owl called her name" in await page.text_content(passage(4) + " .body")
    assert await page.locator("#passages .passage").count() == 4  # the other version's own continuation

    # Continue from the keyboard; focus comes back to the composer.
    await page.focus(COMPOSER)
    await page.keyboard.type("The owl flew down to her shoulder.")
    await page.keyboard.press("Control+Enter")
    await page.wait_for_selector(passage(6))
    await wait_idle(page)
    assert await page.evaluate("() => document.activeElement.id") == "composer-text"
    assert await page.text_content(passage(6) + " .swipe-count") == "1/2"
    assert errors == []
    await context.close()


@IN_MODULE_LOOP
async def test_russian_browser_gets_a_russian_studio_and_story(browser, live_server) -> None:
    context, page, errors = await open_studio(browser, live_server, locale="ru-RU")
    assert await page.text_content("#continue") == "Продолжить"
    assert await page.get_attribute(COMPOSER, "placeholder") == (
        "Напиши следующий отрывок или нажми Ctrl+Enter, чтобы продолжила модель")
    await page.click("#new-story button[type=submit]")
    await page.wait_for_selector("#passages .empty")
    assert (await story_row(live_server, await open_story_id(page))).language == "ru"
    assert await page.text_content("#story-title") == "История без названия"
    assert await page.evaluate("() => document.documentElement.lang") == "ru"
    assert errors == []
    await context.close()


@IN_MODULE_LOOP
async def test_generation_errors_are_shown_and_what_was_written_is_kept(browser, live_server) -> None:
    context, page, errors = await open_studio(browser, live_server)
    await page.fill("#new-title", "Failing Lantern")
    await page.click("#new-story button[type=submit]")
    await page.wait_for_selector("#story-title >> text=Failing Lantern")
    story_id = await open_story_id(page)
    await live_server.tandem.stories.update_settings(await user_of(page, live_server), story_id, {"candidates": 1})

    # The model fails mid-passage: the words so far are the passage, incomplete, and the writer is told.
    live_server.model.script.fail_after = 5
    try:
        await page.press(COMPOSER, "Control+Enter")
        await page.wait_for_selector("#alert >> text=The model stopped partway")
    finally:
        live_server.model.script.fail_after = None
    await page.wait_for_selector(passage(1) + ".incomplete")
    head = await passage_row(live_server, (await story_row(live_server, story_id)).head_id)
    assert head.status == "incomplete" and head.text == await page.text_content(passage(1) + " .body")
    assert "failed while writing" in await page.get_attribute("#alert", "title")  # the detail, for whoever asks

    # An `error` event (here: the server's time budget) is shown; the story is read again afterwards.
    message = "That took too long, so I stopped; what was written so far is kept, marked incomplete."
    events = ('event: delta\ndata: {"candidate": 1, "of": 1, "text": "The fox "}\n\n'
              f'event: error\ndata: {json.dumps({"code": "timeout", "message": message})}\n\n')
    await page.route("**/continue", lambda route: route.fulfill(status=200, body=events,
                                                                headers={"Content-Type": "text/event-stream"}))
    await page.press(COMPOSER, "Control+Enter")
    await page.wait_for_selector(f"#alert >> text={message}")
    await wait_idle(page)
    assert await page.locator("#passages .passage").count() == 1
    assert await page.evaluate("() => document.activeElement.id") == "composer-text"
    assert errors == []
    await context.close()
