"""What the story skill says: its fixed messages (English and Russian) and how a story reads in chat."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from bot.core.errors import InputError
from bot.core.skill import AsideCheck
from bot.story.tree import AUTHOR_NAMES, StoryView
from bot.storage.stories import PassageRecord

T = TypeVar("T")

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

# What a story button (or the command it stands for) did, named the way the button was.
CHOSEN = {"en": "Taken: option {number}.", "ru": "Взят вариант {number}."}
WHAT_NEXT = {"en": "Write what happens next, or say \"continue\".",
             "ru": "Напиши, что будет дальше, или скажи «продолжай»."}
RETRIED = {"en": "Another take on the last passage:", "ru": "Другой вариант последнего отрывка:"}
UNDONE = {"en": "Undone: passage {number} is taken back (/redo brings it back).",
          "ru": "Отменено: отрывок {number} убран (/redo вернёт его)."}
UNDONE_CANDIDATES = {"en": "Undone: passage {number} is taken back, and the options waiting are set aside "
                           "(/redo brings the passage back).",
                     "ru": "Отменено: отрывок {number} убран, а варианты на выбор отложены (/redo вернёт отрывок)."}
REDONE = {"en": "Redone: passage {number} is back.", "ru": "Возвращено: отрывок {number} снова в истории."}
RESUME_HINT = {"en": "(/resume {id} goes back to the story you were writing.)",
               "ru": "(/resume {id} вернёт к истории, которая была открыта.)"}
# A story button pressed after the story moved on (two buttons at once, a keyboard left over).
BUTTON_STALE = {"en": "Those buttons were for an earlier point in the story, so I did nothing. "
                      "Use the ones under the newest passage.",
                "ru": "Эти кнопки были для более раннего места истории, так что я ничего не сделал. "
                      "Нажми кнопки под последним отрывком."}
BUTTON_OTHER_STORY = {"en": "That button belongs to another story (\"{title}\"), so I did nothing. "
                            "/resume {id} goes back to it.",
                      "ru": "Эта кнопка от другой истории («{title}»), так что я ничего не сделал. "
                            "/resume {id} вернёт к ней."}
BUTTON_GONE = {"en": "That story no longer exists. /stories lists yours.",
               "ru": "Этой истории больше нет. /stories покажет твои истории."}
# Story commands typed with no story open.
NO_STORIES = {"en": "You have no stories yet. Say /story to start one.",
              "ru": "У тебя пока нет историй. Скажи /story, чтобы начать."}
NO_STORIES_YET = {"en": "You have no stories yet: write the first passage, and this one is kept.",
                  "ru": "У тебя пока нет историй: напиши первый отрывок, и эта сохранится."}
WHICH = {"en": "Which one? /{command} ID, e.g. /{command} {example}.",
         "ru": "Какую? /{command} ID, например /{command} {example}."}
NOT_YOURS = {"en": "Story {id} does not exist (or is not yours). /stories lists yours.",
             "ru": "Истории {id} нет (или она не твоя). /stories покажет твои истории."}
EXPORTED = {"en": "\"{title}\" (story {id}), as {format}:", "ru": "«{title}» (история {id}) в формате {format}:"}
# The open story went missing (deleted elsewhere, or another user's id).
GONE = {"en": "That story does not exist (or is not yours). /stories lists yours.",
        "ru": "Такой истории нет (или она не твоя). /stories покажет твои истории."}

# Generation as it streams: a candidate cut short, or none written.
CUT_SHORT = {"en": " [cut short: {reason}; kept, marked incomplete]",
             "ru": " [оборвался: {reason}; сохранён как незаконченный]"}
NO_PASSAGE = {"en": "(no passage: {reason})", "ru": "(отрывка нет: {reason})"}
# Why a candidate failed, as the generator says it in English after its "timeout: "/"error: " prefix
# (bot/story/generation.py), in Russian; a reason not listed is shown as it is.
REASONS_RU = {
    "the model took too long": "модель писала слишком долго",
    "the language model stopped while writing and is restarting, so try again in a moment":
        "языковая модель остановилась посреди отрывка и перезапускается, попробуй ещё раз чуть позже",
    "the language model cannot be reached right now": "языковая модель сейчас недоступна",
    "the language model failed while writing": "языковая модель дала сбой, пока писала",
    "the model wrote nothing usable": "у модели не получилось ничего годного",
    "the model could not write in Russian": "модель не смогла написать по-русски",
    "the model could not write in English": "модель не смогла написать по-английски",
    "stopped": "остановлено",
    "no text": "текста нет",
}

# Answers to the story commands.
WHICH_CANDIDATE = {"en": "Which one? /choose 1, or just type its number.",
                   "ru": "Какой? /choose 1 или просто напиши его номер."}
EDITED = {"en": "Edited; the old version is kept.", "ru": "Исправлено; старая версия сохранена."}
WHICH_PASSAGE = {"en": "From which passage? /branch N (the numbers are in /show).",
                 "ru": "С какого отрывка? /branch N (номера есть в /show)."}
BRANCHED = {"en": "Branched after passage {number}; the old continuation is kept (/redo walks back to it). "
                  "Write what happens now, or say \"continue\".",
            "ru": "Новая ветка после отрывка {number}; старое продолжение сохранено (/redo вернёт к нему). "
                  "Напиши, что будет теперь, или скажи «продолжай»."}
EMPTY_FIELD = {"en": "(empty)", "ru": "(пусто)"}
MEMORY_IS = {"en": "Memory: {text}", "ru": "Память: {text}"}
MEMORY_SAVED = {"en": "Memory saved; it stays at the top of what I read.",
                "ru": "Память сохранена; я всегда читаю её первой."}
NOTE_IS = {"en": "Author's note: {text}", "ru": "Заметка автора: {text}"}
NOTE_SAVED = {"en": "Author's note saved; it steers the next passages.",
              "ru": "Заметка автора сохранена; она направляет следующие отрывки."}
LORE_REMOVED = {"en": "Lore entry removed.", "ru": "Запись о мире удалена."}
NO_LORE = {"en": "No lore entries yet.", "ru": "Записей о мире пока нет."}
LORE_FORMAT = {"en": "Write lore as /lore KEYWORDS: TEXT, e.g. /lore dragon, Smaug: an old red dragon.",
               "ru": "Записи о мире пишутся так: /lore КЛЮЧЕВЫЕ СЛОВА: ТЕКСТ, "
                     "например /lore дракон, Смауг: старый красный дракон."}
LORE_SAVED = {"en": "Lore saved ({keys}); I use it when those words come up.",
              "ru": "Запись о мире сохранена ({keys}); я вспомню её, когда встретятся эти слова."}
SETTINGS_ARE = {"en": "Settings: {values}", "ru": "Настройки: {values}"}
IMPORTED = {"en": "Imported.", "ru": "Импортировано."}
CHARACTER_FORMAT = {"en": "Ask like this: /character Mira: where did you hide the key?",
                    "ru": "Спрашивай так: /character Мира: куда ты спрятала ключ?"}
# /title, /genre, /premise, /style: the detail by name, noted before the story starts or changed after.
DETAILS = {"en": {"title": "title", "genre": "genre", "premise": "premise", "style": "style"},
           "ru": {"title": "название", "genre": "жанр", "premise": "завязка", "style": "стиль"}}
DETAIL_VALUE = {"en": "{detail} “{value}”", "ru": "{detail} «{value}»"}
DETAIL_SET = {"en": "The {detail} is now “{value}”.", "ru": "Теперь {detail}: «{value}»."}
DETAIL_MISSING = {"en": "Give the {detail} after the command, e.g. /{command} ...",
                  "ru": "Напиши после команды, что задать, например /{command} ..."}

# Passages shown when a story is opened or shown again.
SHOW_LAST = 6
INCOMPLETE = {"en": ", incomplete", "ru": ", не закончен"}
HEADING = {"en": "\"{title}\" (story {id}, {count} passages)", "ru": "«{title}» (история {id}, отрывков: {count})"}
NO_PASSAGES = {"en": "(no passages yet: write the first one, or say \"continue\")",
               "ru": "(отрывков пока нет: напиши первый или скажи «продолжай»)"}
EARLIER = {"en": "… {count} earlier passages (/export md for the whole story)",
           "ru": "… раньше отрывков: {count} (вся история — /export md)"}
WAITING = {"en": "Candidates waiting:", "ru": "Варианты на выбор:"}
CHOOSE_FROM = {"en": "Choose {range}.", "ru": "Выбери {range}."}


def label(passage: PassageRecord, language: str | None = "en") -> str:
    return pick(AUTHOR_NAMES, language).get(passage.author, passage.author)


def render_passage(number: int | str, passage: PassageRecord, language: str | None = "en") -> str:
    mark = pick(INCOMPLETE, language) if passage.status == "incomplete" else ""
    return f"[{number}] ({label(passage, language)}{mark}) {passage.text}"


def render_view(view: StoryView, *, last: int = SHOW_LAST, language: str | None = None) -> str:
    """The title, the last passages with numbers and authors, and any candidates waiting; in
    `language` (the user's), else in the story's."""
    story = view.story
    language = language or story.language
    lines = [pick(HEADING, language).format(title=story.title, id=story.id, count=len(view.path))]
    if not view.path:
        lines.append(pick(NO_PASSAGES, language))
    start = max(0, len(view.path) - last)
    if start:
        lines.append(pick(EARLIER, language).format(count=start))
    for number, passage in enumerate(view.path[start:], start + 1):
        lines.append(render_passage(number, passage, language))
    if view.pending:
        lines.append(pick(WAITING, language))
        for number, passage in enumerate(view.pending, 1):
            lines.append(f"  {render_passage(number, passage, language)}")
        lines.append(pick(CHOOSE_FROM, language).format(range=choice_range(len(view.pending))))
    return "\n".join(lines)


def render_list(stories: list[dict], current: int | None, language: str = "en", *,
                empty: dict[str, str] = NO_STORIES, hint: bool = True) -> str:
    """The user's stories, newest first, with their ids; `current` is marked open, `empty` is said
    when there are none, and `hint` says how to open one."""
    ru = language == "ru"
    if not stories:
        return pick(empty, language)
    lines = ["Твои истории:" if ru else "Your stories:"]
    for item in stories:
        mark = (" (открыта)" if ru else " (open)") if item["id"] == current else ""
        count = f"отрывков: {item['passages']}" if ru else f"{item['passages']} passages"
        lines.append(f"  {item['id']}: \"{item['title']}\", {count}{mark}")
    if hint:
        lines.append("/resume ID открывает историю." if ru else "/resume ID opens one.")
    return "\n".join(lines)


def pick(texts: Mapping[str, T], language: str | None) -> T:
    """The text of `texts` in `language`, English when there is none."""
    return texts.get(language or "en") or texts["en"]


def reason(error: str, language: str | None) -> str:
    """The reason of a generation error ("timeout: the model took too long") for the user, in `language`."""
    text = error.split(": ", 1)[-1]
    return REASONS_RU.get(text.rstrip(".").lower(), text) if language == "ru" else text


def refusal_of(texts: dict[str, str], **values: object) -> InputError:
    """An InputError with `texts` (formatted with `values`) in every language; the user's is shown."""
    return InputError(texts={language: text.format(**values) for language, text in texts.items()})


def choice_range(count: int) -> str:
    return "1" if count == 1 else f"1–{count}"

# Asked when a message inside a story looks meant for Tandem, not the story ("how are you?").
ASIDE_CHECK = AsideCheck(
    question={"en": "Add that to the story, or leave it?", "ru": "Добавить это в историю или не надо?"},
    add={"en": "Add to the story", "ru": "Добавить в историю"},
    leave={"en": "Leave it", "ru": "Не добавлять"},
    back={"en": "(Our story is waiting: write the next passage, or say \"continue\".)",
          "ru": "(Наша история ждёт: напиши следующий отрывок или скажи «продолжай».)"},
)
