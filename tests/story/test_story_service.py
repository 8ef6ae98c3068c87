"""StoryService over a fake model: candidates, retry/undo/redo/edit/branch as a tree that never loses
a row, rolling summaries, faults mid-stream, and clear refusals that change nothing."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.core.errors import InputError, NotFound
from bot.models.fake import FakeLanguageModel, FakeScript
from bot.story.tree import CandidateDone, PassageDelta
from tests.story.support import assert_kept, run, snapshot, story_world


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'stories.sqlite3'}"


def numbered_model(**kwargs) -> FakeLanguageModel:
    """Each request answers "Candidate N." with a growing N, so candidates can be told apart."""
    counter = iter(range(1, 10_000))
    return FakeLanguageModel(script=FakeScript(respond=lambda prompt, params: f"Candidate {next(counter)} went on.",
                                               **kwargs))


async def test_candidates_are_stored_and_one_is_chosen(url: str) -> None:
    async with story_world(url, numbered_model()) as w:
        view = await w.service.start(w.user, title="Fox", text="A fox lived in the woods.")
        events, done = await run(w.service.continue_(w.user, view.story.id))
        assert [c.text for c in done.candidates] == ["Candidate 1 went on.", "Candidate 2 went on.",
                                                     "Candidate 3 went on."]
        deltas = [e for e in events if isinstance(e, PassageDelta)]
        assert {d.candidate for d in deltas} == {1, 2, 3}
        assert [p.id for p in done.view.pending] == [c.id for c in done.candidates]
        assert done.view.path[-1].author == "user"

        view = await w.service.choose(w.user, view.story.id, number=2)
        assert view.path[-1].text == "Candidate 2 went on." and view.path[-1].author == "model"
        assert view.pending == []
        tree = await w.repo.passages(w.user, view.story.id)
        assert len(tree) == 4, "the candidates not chosen stay stored"
        assert tree[view.path[-1].id].chosen_at is not None


async def test_one_candidate_is_taken_at_once(url: str) -> None:
    async with story_world(url, numbered_model(), candidates=1) as w:
        view = await w.service.start(w.user)
        _, done = await run(w.service.continue_(w.user, view.story.id))
        assert done.auto_chosen and [p.author for p in done.view.path] == ["model"]


async def test_retry_undo_redo_edit_branch_never_delete_or_change_a_row(url: str) -> None:
    async with story_world(url, numbered_model(), candidates=2) as w:
        sid = (await w.service.start(w.user, text="One.")).story.id
        await run(w.service.continue_(w.user, sid))
        await w.service.choose(w.user, sid, number=1)
        await run(w.service.continue_(w.user, sid, text="Three."))
        await w.service.choose(w.user, sid, number=2)
        before = snapshot(await w.repo.passages(w.user, sid))

        _, done = await run(w.service.retry(w.user, sid))
        assert [c.parent_id for c in done.candidates] == [done.view.path[-2].id] * 2, "siblings of the last"
        view = await w.service.choose(w.user, sid, number=1)
        assert view.path[-1].text == "Candidate 5 went on."
        view = await w.service.undo(w.user, sid)
        assert [p.text for p in view.path] == ["One.", "Candidate 1 went on.", "Three."]
        view = await w.service.redo(w.user, sid)
        assert view.path[-1].text == "Candidate 5 went on."
        view = await w.service.edit(w.user, sid, "Candidate one, improved.", number=2)
        assert [p.author for p in view.path] == ["user", "edited", "user", "model"]
        assert view.path[1].source_id is not None
        assert [p.text for p in view.path][2:] == ["Three.", "Candidate 5 went on."], "the rest is copied"
        view = await w.service.branch(w.user, sid, number=1)
        assert [p.text for p in view.path] == ["One."]
        view = await w.service.write(w.user, sid, "A new way.")
        assert [p.text for p in view.path] == ["One.", "A new way."]
        assert_kept(before, snapshot(await w.repo.passages(w.user, sid)))


async def test_undo_past_the_beginning_and_bad_choices_change_nothing(url: str) -> None:
    async with story_world(url, numbered_model(), candidates=2) as w:
        sid = (await w.service.start(w.user)).story.id
        with pytest.raises(InputError, match="Nothing to undo"):
            await w.service.undo(w.user, sid)
        with pytest.raises(InputError, match="no candidates"):
            await w.service.choose(w.user, sid, number=1)
        await run(w.service.continue_(w.user, sid))
        story_before = await w.repo.get_story(w.user, sid)
        rows_before = snapshot(await w.repo.passages(w.user, sid))
        for bad in [
            w.service.choose(w.user, sid, number=3),
            w.service.choose(w.user, sid, number=0),
            w.service.choose(w.user, sid, passage_id=999),
            w.service.redo(w.user, sid),
            w.service.branch(w.user, sid, number=5),
            w.service.edit(w.user, sid, "x", number=1),
            w.service.write(w.user, sid, "   "),
            w.service.write(w.user, sid, "x" * 5000),
            w.service.update_settings(w.user, sid, {"temperature": 7}),
            w.service.update_settings(w.user, sid, {"colour": 1}),
            w.service.rename(w.user, sid, ""),
            w.service.export(w.user, sid, "pdf"),
        ]:
            with pytest.raises(InputError):
                await bad
        for generator in (w.service.continue_(w.user, sid, text=""), w.service.continue_(w.user, sid, candidates=9)):
            with pytest.raises(InputError):
                await run(generator)
        after = await w.repo.get_story(w.user, sid)
        assert (after.head_id, after.cursor, after.settings, after.title) == (
            story_before.head_id, story_before.cursor, story_before.settings, story_before.title)
        assert snapshot(await w.repo.passages(w.user, sid)) == rows_before


async def test_unknown_and_foreign_stories_are_not_found(url: str) -> None:
    async with story_world(url) as w:
        sid = (await w.service.start(w.user, text="Mine.")).story.id
        for attempt in (w.service.view(w.other_user, sid), w.service.view(w.user, 12345),
                        w.service.delete(w.other_user, sid), w.service.write(w.other_user, sid, "Hi.")):
            with pytest.raises(NotFound):
                await attempt
        with pytest.raises(NotFound):
            await run(w.service.continue_(w.other_user, sid))
        assert len(await w.repo.passages(w.user, sid)) == 1
        assert await w.service.list_stories(w.other_user) == []


async def test_an_error_mid_stream_keeps_the_text_marked_incomplete(url: str) -> None:
    model = FakeLanguageModel(script=FakeScript(outputs=("The fox ran. It found a lantern and then",),
                                                fail_after=6))
    async with story_world(url, model, candidates=3) as w:
        sid = (await w.service.start(w.user, text="Start.")).story.id
        events, done = await run(w.service.continue_(w.user, sid))
        shown = "".join(e.text for e in events if isinstance(e, PassageDelta) and e.candidate == 1)
        assert shown.strip() == "The fox ran. It found a"
        assert [(c.text, c.status) for c in done.candidates] == [("The fox ran. It found a", "incomplete")] * 3
        assert done.errors == ["error: the language model failed while writing"] * 3  # no internals shown
        assert any(isinstance(e, CandidateDone) and e.error for e in events)
        assert [p.text for p in done.view.path] == ["Start."], "the user's passage is kept"


async def test_a_stopped_generation_keeps_what_was_shown(url: str) -> None:
    model = FakeLanguageModel("One sentence here. Another one there. A third one.", delay_s=0.05)
    async with story_world(url, model, candidates=1) as w:
        sid = (await w.service.start(w.user, text="Start.")).story.id
        shown: list[str] = []

        async def consume() -> None:
            async for event in w.service.continue_(w.user, sid):
                if isinstance(event, PassageDelta):
                    shown.append(event.text)

        task = asyncio.create_task(consume())
        while not shown:
            await asyncio.sleep(0.01)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        view = await w.service.view(w.user, sid)
        (kept,) = view.pending
        assert kept.status == "incomplete" and kept.text.startswith("One sentence here.")


async def test_a_model_that_cannot_answer_loses_nothing(url: str) -> None:
    model = FakeLanguageModel("The fox ran.", timeout_s=0.2, delay_s=0.5)
    async with story_world(url, model) as w:
        sid = (await w.service.start(w.user, text="Start.")).story.id
        _, done = await run(w.service.continue_(w.user, sid, text="More."))
        assert done.candidates == [] and done.errors[0].startswith("timeout")
        assert len(model.calls) == 1, "after a timeout no more candidates are tried"
        assert [p.text for p in done.view.path] == ["Start.", "More."]


async def test_a_long_story_is_summarised_and_the_summary_reused(url: str) -> None:
    def respond(prompt, params) -> str:
        system = prompt[0].content
        return "Summary: the fox walked far." if system.startswith("Summarise") else "The fox walked on."

    model = FakeLanguageModel(script=FakeScript(respond=respond), context_window=400)
    async with story_world(url, model, candidates=1, max_new_tokens=40) as w:
        sid = (await w.service.start(w.user)).story.id
        for turn in range(30):
            await w.service.write(w.user, sid, f"Turn {turn}: " + "the fox kept walking through the woods " * 2)
        _, done = await run(w.service.continue_(w.user, sid))
        summaries = await w.repo.summaries(w.user, sid)
        assert len(summaries) == 1
        last_prompt = model.calls[-1].prompt
        assert "Summary: the fox walked far." in last_prompt[1].content
        assert sum(len(m.content.split()) + 8 for m in last_prompt) + 8 <= 400 - 40
        await run(w.service.continue_(w.user, sid))
        assert len(await w.repo.summaries(w.user, sid)) == 1, "the stored summary is reused"


async def test_settings_change_mid_story_and_are_used(url: str) -> None:
    model = numbered_model()
    async with story_world(url, model) as w:
        sid = (await w.service.start(w.user, text="Go.")).story.id
        settings = await w.service.update_settings(w.user, sid, {"temperature": 0.2, "candidates": 2})
        assert settings.temperature == 0.2
        _, done = await run(w.service.continue_(w.user, sid))
        assert len(done.candidates) == 2 and model.calls[-1].params.temperature == 0.2


async def test_a_character_answers_without_adding_to_the_story(url: str) -> None:
    model = FakeLanguageModel("Mira: I was by the river, of course. Why do you ask?")
    async with story_world(url, model) as w:
        sid = (await w.service.start(w.user, text="Mira went missing.")).story.id
        answer = "".join([p async for p in w.service.character(w.user, sid, "Mira", "Where were you?")])
        assert answer.strip() == "I was by the river, of course. Why do you ask?"
        assert "You are Mira" in model.calls[-1].prompt[0].content
        assert "Mira went missing." in model.calls[-1].prompt[1].content
        assert len(await w.repo.passages(w.user, sid)) == 1
        with pytest.raises(InputError):
            async for _ in w.service.character(w.user, sid, "", "hi"):
                pass


async def test_lore_memory_and_note_reach_the_prompt(url: str) -> None:
    model = numbered_model()
    async with story_world(url, model, candidates=1) as w:
        sid = (await w.service.start(w.user, text="The dragon woke.")).story.id
        await w.service.set_memory(w.user, sid, "Mira is brave.")
        await w.service.set_author_note(w.user, sid, "Make it funny.")
        await w.service.set_lore(w.user, sid, ["dragon"], "The dragon is tiny.")
        await w.service.set_lore(w.user, sid, ["castle"], "The castle is far.")
        await run(w.service.continue_(w.user, sid))
        text = "\n".join(m.content for m in model.calls[-1].prompt)
        assert "Mira is brave." in text and "Make it funny." in text and "The dragon is tiny." in text
        assert "The castle is far." not in text


async def test_a_candidate_in_the_wrong_language_is_written_again(url: str) -> None:
    model = FakeLanguageModel(["The fox ran away into the woods.", "Лиса убежала в лес."])
    async with story_world(url, model, candidates=1) as w:
        sid = (await w.service.start(w.user, language="ru", text="Жила-была лиса.")).story.id
        events, done = await run(w.service.continue_(w.user, sid))
        assert [c.text for c in done.candidates] == ["Лиса убежала в лес."]
        assert "".join(e.text for e in events if isinstance(e, PassageDelta)) == "Лиса убежала в лес."
        assert "Russian" in model.calls[0].prompt[0].content and len(model.calls) == 2


async def test_swipes_move_among_siblings_set_candidates_aside_and_never_change_a_row(url: str) -> None:
    async with story_world(url, numbered_model(), candidates=2) as w:
        sid = (await w.service.start(w.user, text="One.")).story.id
        _, done = await run(w.service.continue_(w.user, sid))
        c1, c2 = (c.id for c in done.candidates)
        await w.service.choose(w.user, sid, number=1)
        _, done = await run(w.service.continue_(w.user, sid))
        c3, c4 = (c.id for c in done.candidates)
        before = snapshot(await w.repo.passages(w.user, sid))

        view = await w.service.swipe(w.user, sid, c1, 1)
        assert [p.id for p in view.path][1:] == [c2] and view.pending == []
        assert view.story.cursor == {}, "the candidates after c1 are set aside"
        view = await w.service.swipe(w.user, sid, c2, -1)
        # c1's candidates were never chosen: they are not its story, so the swipe ends at c1.
        assert [p.id for p in view.path][1:] == [c1] and view.swipes[c1] == (1, 2)

        _, done = await run(w.service.retry(w.user, sid))
        c5, c6 = (c.id for c in done.candidates)
        assert done.view.swipes[c5] == (3, 4) and done.view.swipes[c6] == (4, 4)
        view = await w.service.swipe(w.user, sid, c6, -1)
        assert [p.id for p in view.path][1:] == [c5] and view.path[-1].chosen_at is not None
        view = await w.service.swipe(w.user, sid, c5, -1)  # back to c2, chosen before: it stays as it was
        assert [p.id for p in view.path][1:] == [c2]
        tree = await w.repo.passages(w.user, sid)
        assert [tree[c].chosen_at is not None for c in (c1, c2, c3, c4, c5, c6)] == [True, True, False, False,
                                                                                     True, False]
        assert_kept(before, snapshot(tree))
        for bad in (w.service.swipe(w.user, sid, c2, 5), w.service.swipe(w.user, sid, c3, 1),
                    w.service.swipe(w.user, sid, 999, 1), w.service.swipe(w.user, sid, view.path[0].id, -1)):
            with pytest.raises(InputError):
                await bad
        with pytest.raises(NotFound):
            await w.service.swipe(w.other_user, sid, c2, 1)
        assert (await w.repo.get_story(w.user, sid)).head_id == c2


async def test_ratings_are_checked_before_anything_is_stored(url: str) -> None:
    async with story_world(url) as w:
        view = await w.service.start(w.user, text="One.")
        sid, pid = view.story.id, view.path[0].id
        assert (await w.service.rate(w.user, sid, pid, -1))["rating"] == -1
        for bad in (2, -2, True, False, 0.5, "1", None):
            with pytest.raises(InputError, match="Rate a passage 1"):
                await w.service.rate(w.user, sid, pid, bad)
        assert (await w.repo.passages(w.user, sid))[pid].rating == -1
        assert (await w.service.rate(w.user, sid, pid, 0))["rating"] is None
        with pytest.raises(NotFound):
            await w.service.rate(w.other_user, sid, pid, 1)
