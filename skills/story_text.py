"""What the story skill says: its fixed messages (English and Russian) and how a story reads in chat."""

from __future__ import annotations

from bot.story.tree import AUTHOR_LABELS, StoryView
from bot.storage.stories import PassageRecord

INTRO = {
    "en": "Let's write a story! Write its first passage, or say \"continue\" and I'll open it. "
          "Before that you can set /title, /genre, /premise or /style. (/stories lists your stories, /help shows all commands.)",
    "ru": "Давай напишем историю! Напиши первый отрывок или скажи «продолжай», и я начну сам. "
          "Можно задать /title, /genre, /premise или /style. (/stories — твои истории, /help — все команды.)",
}
NOTED = {"en": "Noted: {what}. Now write the first passage, or say \"continue\".",
         "ru": "Записал: {what}. Теперь напиши первый отрывок или скажи «продолжай»."}
CHOOSE = {"en": "Choose {range}, or /retry for new ones.", "ru": "Выбери {range} или /retry для новых вариантов."}
TAKEN = {"en": "(/retry for another take, /undo to take it back)", "ru": "(/retry — другой вариант, /undo — убрать)"}
FAILED = {"en": "Sorry, I couldn't write a passage ({reason}). Nothing stored was lost; /retry to try again.",
          "ru": "Извини, не получилось написать отрывок ({reason}). Ничего не потеряно; /retry — попробовать снова."}
UNAVAILABLE = {"en": "Sorry, story writing is not available right now: the language model is not installed or "
                     "did not load.",
               "ru": "Извини, сейчас писать истории не получится: языковая модель не установлена или не загрузилась."}
ENDED = {"en": "We've left the story \"{title}\"; it is saved. Say /story to come back to it any time.",
         "ru": "Мы вышли из истории «{title}», она сохранена. Скажи /story, чтобы вернуться."}
CONFIRM_DELETE = {"en": "Delete \"{title}\" with all its passages? This cannot be undone. Answer yes or no.",
                  "ru": "Удалить «{title}» со всеми отрывками? Это нельзя отменить. Ответь да или нет."}
DELETED = {"en": "Deleted \"{title}\".", "ru": "История «{title}» удалена."}
KEPT = {"en": "Okay, I kept \"{title}\".", "ru": "Хорошо, «{title}» остаётся."}
NO_STORY = {"en": "There is no story open. Write a first passage to start one, or /stories to pick one.",
            "ru": "Сейчас нет открытой истории. Напиши первый отрывок или выбери из /stories."}
UNKNOWN = {"en": "I don't know the command /{name}. /help lists the story commands.",
           "ru": "Не знаю команды /{name}. /help покажет команды историй."}

# Passages shown when a story is opened or shown again.
SHOW_LAST = 6
INCOMPLETE = {"en": " (incomplete)", "ru": " (не закончен)"}


def label(passage: PassageRecord) -> str:
    return AUTHOR_LABELS.get(passage.author, passage.author)


def render_passage(number: int | str, passage: PassageRecord) -> str:
    mark = ", incomplete" if passage.status == "incomplete" else ""
    return f"[{number}] ({label(passage)}{mark}) {passage.text}"


def render_view(view: StoryView, *, last: int = SHOW_LAST) -> str:
    """The title, the last passages with numbers and authors, and any candidates waiting."""
    story = view.story
    lines = [f"\"{story.title}\" (story {story.id}, {len(view.path)} passages)"]
    if not view.path:
        lines.append("(no passages yet: write the first one, or say \"continue\")")
    start = max(0, len(view.path) - last)
    if start:
        lines.append(f"… {start} earlier passages (/export md for the whole story)")
    for number, passage in enumerate(view.path[start:], start + 1):
        lines.append(render_passage(number, passage))
    if view.pending:
        lines.append("Candidates waiting:")
        for number, passage in enumerate(view.pending, 1):
            lines.append(f"  {render_passage(number, passage)}")
        lines.append(f"Choose 1–{len(view.pending)}." if len(view.pending) > 1 else "Choose 1.")
    return "\n".join(lines)


def render_list(stories: list[dict], current: int | None) -> str:
    if not stories:
        return "You have no stories yet. Write a first passage to start one."
    lines = ["Your stories:"]
    for item in stories:
        mark = " (open)" if item["id"] == current else ""
        lines.append(f"  {item['id']}: \"{item['title']}\", {item['passages']} passages{mark}")
    lines.append("/resume ID opens one.")
    return "\n".join(lines)


def choice_range(count: int) -> str:
    return "1" if count == 1 else f"1–{count}"
