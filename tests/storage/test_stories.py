"""StoryRepo on SQLite and PostgreSQL: ownership, the passage tree, cursor moves and deletion."""

from __future__ import annotations

import pytest

from bot.core.errors import NotFound
from bot.storage.conversations import ConversationRepo
from bot.storage.database import Database
from bot.storage.stories import NewPassage, StoryRepo


@pytest.fixture
async def repos(database_url: str):
    db = Database(database_url)
    await db.migrate()
    try:
        users = ConversationRepo(db)
        yield StoryRepo(db), await users.user_for("test", "ann"), await users.user_for("test", "bob")
    finally:
        await db.close()


async def test_a_story_belongs_to_its_user_only(repos) -> None:
    stories, ann, bob = repos
    story = await stories.create_story(ann, "Mine", language="ru")
    assert (await stories.get_story(ann, story.id)).language == "ru"
    for call in (stories.get_story(bob, story.id), stories.passages(bob, story.id),
                 stories.update_story(bob, story.id, title="Stolen"), stories.delete_story(bob, story.id),
                 stories.add_passages(bob, story.id, [NewPassage("user", "x")]), stories.lore(bob, story.id)):
        with pytest.raises(NotFound):
            await call
    assert [s.title for s, _ in await stories.list_stories(ann)] == ["Mine"]
    assert await stories.list_stories(bob) == []


async def test_passages_form_a_tree_and_candidates_share_a_group(repos) -> None:
    stories, ann, _ = repos
    story = await stories.create_story(ann, "Tree")
    story, (first,) = await stories.add_passages(ann, story.id, [NewPassage("user", "One.")], cursor={})
    assert story.head_id == first.id
    story, candidates = await stories.add_passages(
        ann, story.id, [NewPassage("model", f"Two {i}.", first.id, candidate=True) for i in range(2)],
        keep_head=True, cursor={"pending": [], "pending_parent": first.id}, append_pending=True,
    )
    assert story.head_id == first.id and story.cursor["pending"] == [c.id for c in candidates]
    assert len({c.candidate_group for c in candidates}) == 1 and candidates[0].candidate_group is not None
    story = await stories.move_cursor(ann, story.id, candidates[1].id, {}, chosen_id=candidates[1].id)
    tree = await stories.passages(ann, story.id)
    assert tree[candidates[1].id].chosen_at is not None and tree[candidates[0].id].chosen_at is None
    # A chain added at once: each passage follows the one before it in the batch.
    _, chain = await stories.add_passages(ann, story.id, [NewPassage("edited", "A.", first.id, source_id=first.id),
                                                         NewPassage("model", "B.", parent_index=0)])
    assert chain[1].parent_id == chain[0].id


async def test_deleting_a_story_removes_its_passages_lore_and_summaries(repos) -> None:
    stories, ann, _ = repos
    story = await stories.create_story(ann, "Gone")
    _, (passage,) = await stories.add_passages(ann, story.id, [NewPassage("user", "One.")])
    await stories.set_lore(ann, story.id, ["fox"], "A fox.")
    await stories.add_summary(ann, story.id, passage.id, 1, "A summary.")
    kept = await stories.create_story(ann, "Kept")
    await stories.add_passages(ann, kept.id, [NewPassage("user", "Stay.")])
    await stories.delete_story(ann, story.id)
    with pytest.raises(NotFound):
        await stories.get_story(ann, story.id)
    assert [s.title for s, n in await stories.list_stories(ann)] == ["Kept"]
    assert len(await stories.passages(ann, kept.id)) == 1


async def test_lore_with_the_same_keys_is_replaced(repos) -> None:
    stories, ann, _ = repos
    story = await stories.create_story(ann, "Lore")
    first = await stories.set_lore(ann, story.id, ["Dragon", "Smaug"], "Old.")
    second = await stories.set_lore(ann, story.id, ["smaug", "dragon"], "Red.")
    assert first.id == second.id and [e.text for e in await stories.lore(ann, story.id)] == ["Red."]
    await stories.remove_lore(ann, story.id, first.id)
    assert await stories.lore(ann, story.id) == []
    with pytest.raises(NotFound):
        await stories.remove_lore(ann, story.id, first.id)


async def test_a_rating_is_the_only_thing_of_a_passage_that_changes(repos) -> None:
    from bot.core.errors import StorageError

    stories, ann, bob = repos
    story = await stories.create_story(ann, "Thumbs")
    _, (first, second) = await stories.add_passages(ann, story.id, [NewPassage("user", "One."),
                                                                    NewPassage("model", "Two.", parent_index=0)])
    assert first.rating is None
    rated = await stories.rate_passage(ann, story.id, second.id, -1)
    assert rated.rating == -1 and (rated.text, rated.parent_id, rated.author) == ("Two.", first.id, "model")
    await stories.rate_passage(ann, story.id, first.id, 1)
    assert {p.id: p.rating for p in (await stories.passages(ann, story.id)).values()} == {first.id: 1, second.id: -1}
    cleared = await stories.rate_passage(ann, story.id, first.id, None)
    assert cleared.rating is None and (await stories.passages(ann, story.id))[first.id].rating is None
    other = await stories.create_story(ann, "Other")
    for call in (stories.rate_passage(bob, story.id, first.id, 1),  # another user's story
                 stories.rate_passage(ann, other.id, first.id, 1),  # a passage of another story
                 stories.rate_passage(ann, story.id, 99_999, 1),
                 stories.rate_passage(ann, story.id, 2**70, 1)):  # no row id at all
        with pytest.raises(NotFound):
            await call
    # The schema itself allows only a thumb up or down.
    with pytest.raises(StorageError):
        await stories.rate_passage(ann, story.id, first.id, 2)
    assert (await stories.passages(ann, story.id))[first.id].rating is None


async def test_lore_is_switched_off_and_edited_in_place(repos) -> None:
    stories, ann, bob = repos
    story = await stories.create_story(ann, "Lore")
    entry = await stories.set_lore(ann, story.id, ["dragon"], "Old.")
    assert entry.enabled
    off = await stories.update_lore(ann, story.id, entry.id, enabled=False)
    assert (off.id, off.keys, off.text, off.enabled) == (entry.id, ("dragon",), "Old.", False)
    edited = await stories.update_lore(ann, story.id, entry.id, keys=["dragon", "Smaug"], text="Red.")
    assert (edited.keys, edited.text, edited.enabled) == (("dragon", "Smaug"), "Red.", False)  # the switch stays
    assert await stories.lore(ann, story.id) == [edited]
    # set_lore with the same keys replaces text and switch.
    again = await stories.set_lore(ann, story.id, ["smaug", "DRAGON"], "Redder.", enabled=True)
    assert again.id == entry.id and again.enabled and again.text == "Redder."
    hidden = await stories.set_lore(ann, story.id, ["castle"], "Far.", enabled=False)
    assert [(e.text, e.enabled) for e in await stories.lore(ann, story.id)] == [("Redder.", True), ("Far.", False)]
    other = await stories.create_story(ann, "Other")
    for call in (stories.update_lore(bob, story.id, entry.id, enabled=True),
                 stories.update_lore(ann, other.id, hidden.id, enabled=True),
                 stories.update_lore(ann, story.id, 99_999, text="x")):
        with pytest.raises(NotFound):
            await call
    assert not (await stories.lore(ann, story.id))[1].enabled
