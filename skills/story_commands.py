"""Story commands typed in chat: "/retry", "/edit 2 New text", "continue", a bare "2" to choose, ...

Parsing only; the story skill runs them. Anything that is not a command is the user's passage.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Command names and their aliases (English and Russian words a user may type without the slash).
ALIASES = {
    "continue": ("continue", "c", "next", "go on", "go", "продолжай", "продолжить", "дальше", "далее"),
    "retry": ("retry", "again", "reroll", "ещё раз", "заново", "переписать"),
    "undo": ("undo", "отменить", "назад"),
    "redo": ("redo", "вернуть", "вперёд"),
    "choose": ("choose", "pick", "выбрать"),
    "edit": ("edit", "изменить", "правка"),
    "branch": ("branch", "ветка"),
    "memory": ("memory", "память"),
    "note": ("note", "заметка"),
    "lore": ("lore", "мир"),
    "settings": ("settings", "настройки"),
    "export": ("export", "экспорт"),
    "import": ("import", "импорт"),
    "stories": ("stories", "list", "истории"),
    "resume": ("resume", "open", "открыть"),
    "rename": ("rename", "title", "название"),
    "genre": ("genre", "жанр"),
    "premise": ("premise", "завязка"),
    "style": ("style", "стиль"),
    "delete": ("delete", "удалить"),
    "character": ("character", "ask", "персонаж"),
    "show": ("show", "story", "read", "показать"),
    "new": ("new", "новая"),
    "help": ("help", "помощь"),
    "end": ("end", "exit", "quit", "leave", "конец", "выйти"),
}
# Words that run a command when they are the whole message, without a slash.
BARE_WORDS = {
    alias: name for name, aliases in ALIASES.items() for alias in aliases
    if name in ("continue", "retry", "undo", "redo", "stories", "help")
}
_BY_ALIAS = {alias: name for name, aliases in ALIASES.items() for alias in aliases}
# Commands that make sense with no story open: they list, open, export or delete one, and none of
# them starts a new story.
OUTSIDE_A_STORY = frozenset({"stories", "resume", "export", "delete"})
# "my stories", "show me my stories", "мои истории", "список историй": the list, said in words (the
# story intent's rule in intents/core.yaml matches the same, so it reaches the skill with no story open).
_LIST_STORIES = re.compile(
    r"^\s*((show\s+)?(me\s+)?(my|list(\s+of)?(\s+my)?)\s+stories|(покажи\s+)?(мои|список)(\s+моих)?\s+истори\w*)"
    r"\s*[?.!]*\s*$", re.IGNORECASE)
_NUMBER = re.compile(r"^\s*#?(\d{1,4})\s*[.)]?\s*$")
_YES = re.compile(r"^\s*(yes|y|yep|sure|delete|да|конечно|удали\w*)\s*[.!]*\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Command:
    """A parsed message: `name` is a command, or "passage" for story text; `number` is a leading
    number of the arguments (/edit 2 ..., /branch 3, /choose 1); `rest` the text after it."""

    name: str
    args: str = ""
    number: int | None = None
    rest: str = ""


def parse(text: str, *, candidates_waiting: bool = False) -> Command:
    stripped = text.strip()
    if candidates_waiting:
        number = _NUMBER.match(stripped)
        if number:
            return Command("choose", stripped, int(number.group(1)))
    if stripped.startswith("/"):
        head, _, args = stripped[1:].partition(" ")
        head = head.split("@", 1)[0].lower()  # "/retry@TandemBot" in Telegram groups
        name = _BY_ALIAS.get(head)
        if name is None:
            return Command("unknown", head)
        return _with_number(name, args.strip())
    if _LIST_STORIES.match(stripped):
        return Command("stories")
    bare = stripped.lower().rstrip(".!")
    if bare in BARE_WORDS:
        return Command(BARE_WORDS[bare])
    word, _, count = bare.rpartition(" ")
    if word in BARE_WORDS and BARE_WORDS[word] in ("continue", "retry") and count.isdigit():
        return Command(BARE_WORDS[word], count, int(count))  # "continue 2": two candidates
    return Command("passage", stripped)


def _with_number(name: str, args: str) -> Command:
    match = re.match(r"^#?(\d{1,6})\b[.:)]?\s*(.*)$", args, re.DOTALL)
    if match:
        return Command(name, args, int(match.group(1)), match.group(2).strip())
    return Command(name, args, None, args)


def is_yes(text: str) -> bool:
    return bool(_YES.match(text))


def split_named(args: str) -> tuple[str, str] | None:
    """"Mira: where were you?" -> ("Mira", "where were you?"); None without a colon."""
    name, sep, rest = args.partition(":")
    if not sep or not name.strip():
        return None
    return name.strip(), rest.strip()


HELP = {
    "en": """Story commands:
  (any text)        your passage; then I write candidates for the next one
  continue          I write the next passage (/continue 2: ask for 2 candidates)
  1, 2, 3           choose a candidate          /retry   new candidates
  /undo  /redo      step back or forward        /show    the story so far
  /edit [N] TEXT    rewrite passage N (the last by default)
  /branch N         continue from passage N (the rest is kept)
  /memory TEXT      what I always remember      /note TEXT   author's note
  /lore KEYS: TEXT  a world note used when KEYS appear (/lore to list, /lore -ID to remove)
  /settings k=v     candidates, temperature, top_p, max_new_tokens, repetition_penalty
  /character NAME: QUESTION   ask a character
  /export [ID] md|txt|json   /stories   /resume ID   /rename TITLE   /delete [ID]   /new   /end""",
    "ru": """Команды историй:
  (любой текст)     твой отрывок; потом я пишу варианты следующего
  продолжай         я пишу следующий отрывок (/continue 2: два варианта)
  1, 2, 3           выбрать вариант             /retry   новые варианты
  /undo  /redo      шаг назад или вперёд        /show    что уже написано
  /edit [N] ТЕКСТ   переписать отрывок N (по умолчанию последний)
  /branch N         продолжить с отрывка N (остальное сохранится)
  /memory ТЕКСТ     что я помню всегда          /note ТЕКСТ   заметка автора
  /lore КЛЮЧИ: ТЕКСТ  запись о мире, я учту её, когда встретятся КЛЮЧИ (/lore — список, /lore -ID — удалить)
  /settings k=v     candidates, temperature, top_p, max_new_tokens, repetition_penalty
  /character ИМЯ: ВОПРОС   спросить персонажа
  /export [ID] md|txt|json   /stories   /resume ID   /rename НАЗВАНИЕ   /delete [ID]   /new   /end""",
}
