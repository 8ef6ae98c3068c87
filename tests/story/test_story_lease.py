"""Story actions one at a time across processes: two StoryServices on one database (as two workers
would run them) chain their passages instead of forking the story; a lease whose holder died
lapses; a holder that is alive keeps the story through a long generation (renewed)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import update

from bot.core.errors import NotFound
from bot.models.fake import FakeLanguageModel, FakeScript
from bot.storage.schema import Story, utcnow
from bot.story.service import StoryService
from bot.story.tree import path_to
from tests.story.support import run, story_world


@pytest.fixture
def url(database_url: str) -> str:
    return database_url


async def test_passages_written_at_once_through_two_services_form_one_chain(url: str) -> None:
    async with story_world(url) as world:
        other = StoryService(world.repo, world.model)  # another process's service: its own in-process locks
        story = await world.service.start(world.user, title="Two hands")
        services = [world.service, other]
        await asyncio.gather(*(services[i % 2].write(world.user, story.story.id, f"Passage {i}.") for i in range(8)))
        view = await world.service.view(world.user, story.story.id)
        tree = await world.repo.passages(world.user, story.story.id)
        # One chain through all eight: each passage follows the one before it, none forked off.
        assert len(path_to(tree, view.story.head_id)) == 8 == len(tree) == len(view.path)


async def test_a_generation_holds_the_story_against_another_process(url: str) -> None:
    model = FakeLanguageModel(script=FakeScript(outputs=["The lantern swung slowly as the fox walked down the long and winding road toward the sleeping town."], delay_s=0.05))
    async with story_world(url, model=model, candidates=1) as world:
        other = StoryService(world.repo, world.model, lease_s=0.3)  # renewed every 0.1 s while it runs
        story = await world.service.start(world.user, text="It began.")
        generating = asyncio.create_task(run(other.continue_(world.user, story.story.id)))
        await asyncio.sleep(0.1)
        # Outlasts the lease several times over: renewal keeps the other service waiting.
        written = await world.service.write(world.user, story.story.id, "The user's own passage.")
        _, done = await generating
        assert done.candidates and written.path[-2].id == done.candidates[0].id  # written after, onto its passage


async def test_a_lease_whose_holder_died_lapses(url: str) -> None:
    async with story_world(url) as world:
        story = await world.service.start(world.user, title="Orphaned")
        assert await world.repo.take_lease(story.story.id, "dead-process", 60)
        assert not await world.repo.take_lease(story.story.id, "someone-else", 60)
        async with world.db.transaction() as session:  # the holder died long ago: its lease ran out
            await session.execute(update(Story).where(Story.id == story.story.id)
                                  .values(lease_until=utcnow() - timedelta(seconds=1)))
        view = await asyncio.wait_for(world.service.write(world.user, story.story.id, "Taken over."), 5)
        assert [p.text for p in view.path] == ["Taken over."]
        # Released afterwards: the next holder takes it at once.
        assert await world.repo.take_lease(story.story.id, "next", 60)


async def test_a_missing_story_is_not_found_not_waited_for(url: str) -> None:
    async with story_world(url) as world:
        assert await world.repo.take_lease(987654, "anyone", 60)  # nothing to guard
        assert await world.repo.take_lease(2**70, "anyone", 60)  # not even a possible id
        for missing in (987654, 2**63):  # the second: no story can have it, nor the lease's queries take it
            with pytest.raises(NotFound):
                await asyncio.wait_for(world.service.write(world.user, missing, "Nowhere."), 5)
            with pytest.raises(NotFound):
                await asyncio.wait_for(world.service.undo(world.user, missing), 5)
