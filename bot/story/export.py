"""Story export (Markdown, plain text, JSON with the whole passage tree) and import of a JSON export."""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

from bot.core.errors import refusal
from bot.story.tree import AUTHOR_LABELS, AUTHOR_NAMES, StoryView, passage_json, swipe_positions
from bot.storage.schema import is_row_id
from bot.storage.stories import ImportedStory, LoreRecord, PassageRecord, SummaryRecord

FORMAT = "tandem-story"
VERSION = 1
FORMATS = {"md": "text/markdown", "txt": "text/plain", "json": "application/json"}
# An import may not be larger than this many passages (the API's body limit is lower anyway).
MAX_IMPORT_PASSAGES = 5000
MAX_TEXT_CHARS = 20000
# The words of a Markdown or text export, in the story's language.
DETAIL_LABELS = {"en": ("Genre", "Style", "Premise"), "ru": ("Жанр", "Стиль", "Завязка")}
INCOMPLETE = {"en": "incomplete", "ru": "не закончен"}


def _words(view: StoryView) -> tuple[str, dict[str, str], tuple[str, ...]]:
    language = view.story.language if view.story.language in INCOMPLETE else "en"
    return INCOMPLETE[language], AUTHOR_NAMES[language], DETAIL_LABELS[language]


def export_markdown(view: StoryView) -> str:
    story = view.story
    incomplete, authors, details = _words(view)
    lines = [f"# {story.title}", ""]
    for label, value in zip(details, (story.genre, story.style, story.premise), strict=True):
        if value:
            lines.append(f"*{label}:* {value}  ")
    if lines[-1] != "":
        lines.append("")
    for number, passage in enumerate(view.path, 1):
        mark = f" — {incomplete}" if passage.status == "incomplete" else ""
        lines += [f"**[{number}] {authors.get(passage.author, passage.author)}{mark}**", "", passage.text, ""]
    return "\n".join(lines).rstrip() + "\n"


def export_text(view: StoryView) -> str:
    story = view.story
    incomplete, authors, _ = _words(view)
    lines = [story.title, "=" * len(story.title), ""]
    for number, passage in enumerate(view.path, 1):
        mark = f", {incomplete}" if passage.status == "incomplete" else ""
        lines += [f"[{number}] ({authors.get(passage.author, passage.author)}{mark})", passage.text, ""]
    return "\n".join(lines).rstrip() + "\n"


def export_json(view: StoryView, tree: Mapping[int, PassageRecord], lore: Sequence[LoreRecord],
                summaries: Mapping[int, SummaryRecord]) -> str:
    """The whole story: every passage of the tree (with its author), the current path, lore and summaries."""
    story = view.story
    on_path = {p.id: n for n, p in enumerate(view.path, 1)}
    swipes = swipe_positions(tree)
    data = {
        "format": FORMAT, "version": VERSION,
        "story": {
            "title": story.title, "genre": story.genre, "premise": story.premise, "style": story.style,
            "language": story.language, "memory": story.memory, "author_note": story.author_note,
            "settings": view.settings,
        },
        "head_id": story.head_id,
        "path": [p.id for p in view.path],
        "passages": [
            passage_json(p, on_path.get(p.id), swipes[p.id]) | {"candidate_group": p.candidate_group}
            for p in sorted(tree.values(), key=lambda p: p.id)
        ],
        "lore": [{"keys": list(e.keys), "text": e.text, "enabled": e.enabled} for e in lore],
        "summaries": [{"through_id": s.through_id, "covered": s.covered, "text": s.text} for s in summaries.values()],
    }
    return json.dumps(data, ensure_ascii=False, indent=2)


def parse_import(raw: str | Mapping[str, Any]) -> ImportedStory:
    """A JSON export checked through and through; InputError says what is wrong, before anything is stored."""
    if isinstance(raw, str):
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise refusal(f"That is not valid JSON ({exc.msg} at line {exc.lineno}).",
                          f"Это некорректный JSON ({exc.msg}, строка {exc.lineno}).") from None
    else:
        data = raw
    if not isinstance(data, Mapping) or data.get("format") != FORMAT:
        raise refusal(f'That is not a Tandem story export (its "format" must be "{FORMAT}").',
                      f'Это не экспорт истории Тандема (поле "format" должно быть "{FORMAT}").')
    version = data.get("version")
    if version != VERSION:
        raise refusal(f"Unsupported export version {version!r}; this Tandem reads version {VERSION}.",
                      f"Версия экспорта {version!r} не поддерживается; этот Тандем читает версию {VERSION}.")
    meta = data.get("story")
    if not isinstance(meta, Mapping) or not isinstance(meta.get("title"), str) or not meta["title"].strip():
        raise refusal('The export has no story title ("story.title").',
                      'В экспорте нет названия истории ("story.title").')
    meta = dict(meta)
    meta["title"] = " ".join(meta["title"].split())[:200]
    if meta.get("language") not in ("en", "ru"):
        meta["language"] = "en"
    for key in ("genre", "premise", "style", "memory", "author_note"):
        if meta.get(key) is not None and not isinstance(meta[key], str):
            raise refusal(f'"story.{key}" must be text.', f'"story.{key}" должно быть текстом.')
    if not isinstance(meta.get("settings") or {}, Mapping):
        raise refusal('"story.settings" must be an object.', '"story.settings" должно быть объектом.')

    passages = data.get("passages")
    if not isinstance(passages, list) or len(passages) > MAX_IMPORT_PASSAGES:
        raise refusal(f'"passages" must be a list of at most {MAX_IMPORT_PASSAGES} passages.',
                      f'"passages" должно быть списком, в котором не больше {MAX_IMPORT_PASSAGES} отрывков.')
    seen: dict[int, dict[str, Any]] = {}
    for number, item in enumerate(passages, 1):
        seen_item = _check_passage(item, number)
        if seen_item["id"] in seen:
            raise refusal(f"Passage {number}: id {seen_item['id']} appears twice.",
                          f"Отрывок {number}: id {seen_item['id']} встречается дважды.")
        seen[seen_item["id"]] = seen_item
    ordered = _parents_first(seen)
    head = data.get("head_id")
    if head is not None and head not in seen:
        raise refusal(f'"head_id" {head!r} is not one of the passages.',
                      f'"head_id" {head!r} не указывает ни на один из отрывков.')
    lore = []
    for entry in data.get("lore") or []:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("text"), str):
            raise refusal("Each lore entry needs keys and text.", "У каждой записи о мире должны быть ключи и текст.")
        keys = entry.get("keys")
        keys = ", ".join(k for k in keys if isinstance(k, str)) if isinstance(keys, list) else str(keys or "")
        if keys.strip():
            lore.append((keys[:300], entry["text"], entry.get("enabled") is not False))
    # A summary covers some of the passages: one that claims more (or a number no column holds) is left out.
    summaries = [s for s in data.get("summaries") or []
                 if isinstance(s, Mapping) and isinstance(s.get("text"), str) and isinstance(s.get("covered"), int)
                 and not isinstance(s.get("covered"), bool) and 0 < s["covered"] <= len(seen)
                 and s.get("through_id") in seen]
    return ImportedStory(meta, ordered, head, tuple(lore), tuple(summaries))


def _check_passage(item: Any, number: int) -> dict[str, Any]:
    if not isinstance(item, Mapping):
        raise refusal(f"Passage {number} is not an object.", f"Отрывок {number} — не объект.")
    pid, parent = item.get("id"), item.get("parent_id")
    if not isinstance(pid, int) or isinstance(pid, bool):
        raise refusal(f"Passage {number}: its id must be a number.", f"Отрывок {number}: id должен быть числом.")
    if parent is not None and (not isinstance(parent, int) or isinstance(parent, bool)):
        raise refusal(f"Passage {number}: its parent_id must be a number or null.",
                      f"Отрывок {number}: parent_id должен быть числом или null.")
    if item.get("author") not in AUTHOR_LABELS:
        raise refusal(f"Passage {number}: author must be one of user, model, edited.",
                      f"Отрывок {number}: author должен быть одним из user, model, edited.")
    text = item.get("text")
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT_CHARS:
        raise refusal(f"Passage {number}: its text must be non-empty and at most {MAX_TEXT_CHARS} characters.",
                      f"Отрывок {number}: текст должен быть непустым и не длиннее {MAX_TEXT_CHARS} символов.")
    status = item.get("status", "complete")
    if status not in ("complete", "incomplete"):
        raise refusal(f"Passage {number}: status must be complete or incomplete.",
                      f"Отрывок {number}: status должен быть complete или incomplete.")
    group = item.get("candidate_group")
    rating = item.get("rating")
    # A group is only a grouping: one the database cannot hold (past 64 bits) is read as none.
    group_fits = is_row_id(group) and group >= 0
    return {"id": pid, "parent_id": parent, "author": item["author"], "text": text, "status": status,
            "candidate_group": group if group_fits else None, "chosen": bool(item.get("chosen")),
            "rating": rating if rating in (-1, 1) and not isinstance(rating, bool) else None}


def _parents_first(passages: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    """Passages ordered so that each parent comes before its children; a missing parent or a
    cycle is an error."""
    kids: dict[int | None, list[dict[str, Any]]] = {}
    for p in passages.values():
        if p["parent_id"] is not None and p["parent_id"] not in passages:
            raise refusal(f"Passage {p['id']}: its parent {p['parent_id']} is not in the export.",
                          f"Отрывок {p['id']}: его родителя {p['parent_id']} нет в экспорте.")
        kids.setdefault(p["parent_id"], []).append(p)
    ordered: list[dict[str, Any]] = []
    queue = deque(sorted(kids.get(None, []), key=lambda p: p["id"]))
    while queue:
        p = queue.popleft()
        ordered.append(p)
        queue.extend(sorted(kids.get(p["id"], []), key=lambda c: c["id"]))
    if len(ordered) != len(passages):
        raise refusal("The passages' parent links form a loop.", "Ссылки отрывков на родителей образуют цикл.")
    return ordered
