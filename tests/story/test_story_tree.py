"""bot.story.tree: siblings (a passage's swipes), continuation (the branch a swipe lands on),
the swipe position in views, and what passage_json and GenerationDone give the API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.storage.stories import PassageRecord, StoryRecord
from bot.story.tree import (
    GenerationDone,
    build_view,
    continuation,
    passage_json,
    siblings,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def passage(pid: int, parent: int | None, *, created: int, group: int | None = None, chosen: int | None = None,
            author: str = "model", rating: int | None = None) -> PassageRecord:
    return PassageRecord(pid, 1, parent, author, f"Passage {pid}.", "complete", group,
                         at(chosen) if chosen is not None else None, None, at(created), rating)


def story(head: int | None, cursor: dict | None = None) -> StoryRecord:
    return StoryRecord(id=1, user_id=1, title="Swipes", genre=None, premise=None, style=None, language="en",
                       memory="", author_note="", settings={}, head_id=head, cursor=cursor or {},
                       created_at=T0, updated_at=T0)


def shuffled(*passages: PassageRecord) -> dict[int, PassageRecord]:
    """A tree whose dict order is not id order (siblings must not depend on it)."""
    return {p.id: p for p in sorted(passages, key=lambda p: -p.id)}


def tree_of_candidates() -> dict[int, PassageRecord]:
    """1 (user) has candidates 2, 3, 4: 4 was chosen first and written on (6), later 2 was chosen
    and written on (5, then 8, a candidate of 5 never chosen); 3 was never chosen."""
    return shuffled(
        passage(1, None, created=0, author="user"),
        passage(2, 1, created=1, group=1, chosen=5),
        passage(3, 1, created=1, group=1),
        passage(4, 1, created=1, group=1, chosen=3),
        passage(5, 2, created=6, author="user"),
        passage(6, 4, created=4, author="user"),
        passage(7, 5, created=7, group=2, chosen=8),
        passage(8, 5, created=7, group=2),
    )


def test_siblings_are_the_passages_of_the_same_parent_oldest_first() -> None:
    tree = tree_of_candidates()
    assert [p.id for p in siblings(tree, tree[3])] == [2, 3, 4]
    assert [p.id for p in siblings(tree, tree[2])] == [2, 3, 4]
    assert [p.id for p in siblings(tree, tree[7])] == [7, 8]
    assert [p.id for p in siblings(tree, tree[1])] == [1]  # the only opening
    assert [p.id for p in siblings(tree, tree[6])] == [6]
    two_openings = shuffled(passage(9, None, created=9), passage(1, None, created=0))
    assert [p.id for p in siblings(two_openings, two_openings[9])] == [1, 9]


def test_continuation_follows_the_most_recently_chosen_branch_to_its_end() -> None:
    tree = tree_of_candidates()
    # From 1: candidate 2 was chosen after 4, so the story goes 1, 2, 5, then 7 (chosen), not 8.
    assert continuation(tree, 1) == 7
    assert continuation(tree, 2) == 7
    # Swiping to 4 lands at the end of its own branch: what was written after it comes back.
    assert continuation(tree, 4) == 6
    # A passage nothing was written after is its own end; a never-chosen candidate below it is no story.
    assert continuation(tree, 3) == 3
    assert continuation(tree, 8) == 8


def test_continuation_passes_over_candidates_never_chosen() -> None:
    tree = shuffled(passage(1, None, created=0, author="user"),
                    passage(2, 1, created=1, group=1), passage(3, 1, created=1, group=1))
    assert continuation(tree, 1) == 1


def test_continuation_takes_the_newest_written_child() -> None:
    # After an undo the writer wrote 3 in place of 2: the branch written last is the one followed.
    tree = shuffled(passage(1, None, created=0, author="user"), passage(2, 1, created=1, author="user"),
                    passage(3, 1, created=5, author="user"), passage(4, 2, created=2, author="user"))
    assert continuation(tree, 1) == 3
    # A candidate chosen later than a passage was written wins over it (chosen_at, not created_at).
    tree[5] = passage(5, 1, created=1, group=1, chosen=9)
    assert continuation(tree, 1) == 5


def test_continuation_stops_on_a_corrupted_cycle() -> None:
    tree = {8: passage(8, 9, created=0), 9: passage(9, 8, created=1)}
    assert continuation(tree, 8) == 9
    assert continuation(tree, 9) == 8


def test_a_view_tells_each_passage_and_candidate_its_place_among_its_siblings() -> None:
    tree = tree_of_candidates()
    view = build_view(story(head=5), tree, {})
    assert [p.id for p in view.path] == [1, 2, 5]
    assert view.swipes == {1: (1, 1), 2: (1, 3), 5: (1, 1)}
    data = view.to_json()
    assert [p["swipe"] for p in data["passages"]] == [{"index": 1, "count": 1}, {"index": 1, "count": 3},
                                                     {"index": 1, "count": 1}]
    # Candidates waiting after 5 have their places too.
    view = build_view(story(head=5, cursor={"pending": [8, 7], "pending_parent": 5}), tree, {})
    assert view.swipes[8] == (2, 2) and view.swipes[7] == (1, 2)
    assert [(c["id"], c["candidate_number"], c["swipe"]) for c in view.to_json()["candidates"]] == [
        (8, 1, {"index": 2, "count": 2}), (7, 2, {"index": 1, "count": 2})]
    view = build_view(story(head=6), tree, {})
    assert view.swipes[4] == (3, 3)


def test_passage_json_has_its_rating_and_a_swipe_position() -> None:
    data = passage_json(passage(4, 1, created=1, group=1, chosen=3, rating=-1), 2, (3, 3))
    assert data["rating"] == -1 and data["swipe"] == {"index": 3, "count": 3}
    assert data["number"] == 2 and data["candidate"] and data["chosen"]
    plain = passage_json(passage(1, None, created=0, author="user"))
    assert plain["rating"] is None and "swipe" not in plain  # no position known (a fresh candidate event): none given


def test_generation_done_ranks_candidates_and_notes_each() -> None:
    tree = tree_of_candidates()
    view = build_view(story(head=1, cursor={"pending": [2, 3, 4]}), tree, {})
    candidates = [tree[2], tree[3], tree[4]]
    done = GenerationDone(view, None, candidates, [], ranked=[4, 2, 3],
                          notes={3: ["colour of 'lantern': blue here, red in the story"]})
    data = done.to_json()
    assert data["ranked"] == [4, 2, 3]
    assert [(c["id"], c["notes"]) for c in data["candidates"]] == [
        (2, []), (3, ["colour of 'lantern': blue here, red in the story"]), (4, [])]
    # Without a ranking (no candidate was judged) they come in the order they were written.
    assert GenerationDone(view, None, candidates, []).to_json()["ranked"] == [2, 3, 4]
