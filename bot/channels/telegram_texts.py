"""What the Telegram channel says and registers: commands and fixed texts (English and Russian)."""

from __future__ import annotations

import re

from telegram import User

COMMANDS = [
    ("start", "Say hello"),
    ("help", "What I can do"),
    ("story", "Start a new story"),
    ("continue", "Let me write the next passage"),
    ("retry", "Rewrite the last passage"),
    ("undo", "Take back the last passage"),
    ("redo", "Bring back what you undid"),
    ("choose", "Pick a candidate passage: /choose 2"),
    ("show", "The story so far"),
    ("stories", "Your stories"),
    ("export", "Get the story as a file: /export md, txt or json"),
    ("rate", "Rate our conversation from 1 to 5"),
    ("feedback", "Tell us what you think"),
    ("reset", "Start over"),
    ("language", "Talk in English or Russian"),
    ("deletemydata", "Delete everything I keep about you"),
]
# The command menu per language: Telegram shows a client the one of its language_code.
COMMAND_DESCRIPTIONS: dict[str, dict[str, str]] = {"en": dict(COMMANDS), "ru": {
    "start": "Поздороваться",
    "help": "Что я умею",
    "story": "Начать новую историю",
    "continue": "Я напишу следующий отрывок",
    "retry": "Переписать последний отрывок",
    "undo": "Убрать последний отрывок",
    "redo": "Вернуть то, что убрали",
    "choose": "Выбрать вариант отрывка: /choose 2",
    "show": "Что уже написано",
    "stories": "Твои истории",
    "export": "История файлом: /export md, txt или json",
    "rate": "Оценить разговор от 1 до 5",
    "feedback": "Рассказать, что ты думаешь",
    "reset": "Начать заново",
    "language": "Говорить по-английски или по-русски",
    "deletemydata": "Удалить всё, что я о тебе храню",
}}
CONTENT_KINDS = {
    "sticker": ("stickers", "стикеры"), "photo": ("photos", "фото"), "voice": ("voice messages", "голосовые"),
    "audio": ("audio", "аудио"), "video": ("videos", "видео"), "video_note": ("video messages", "видеосообщения"),
    "animation": ("GIFs", "гифки"), "document": ("files", "файлы"), "location": ("locations", "геопозиции"),
    "venue": ("places", "места"), "contact": ("contacts", "контакты"), "poll": ("polls", "опросы"),
    "dice": ("dice", "кубики"),
}

TEXTS: dict[str, dict[str, str]] = {
    "not_text": {"en": "Sorry, I can't read {kind} yet, only text. Could you tell me in words?",
                 "ru": "Извини, я пока не умею читать {kind}, только текст. Напишешь словами?"},
    "edited": {"en": "I only see new messages, not edits. Send it again if you'd like me to answer the new version.",
               "ru": "Я вижу только новые сообщения, не правки. Отправь его заново, если хочешь ответ на новую версию."},
    "thanks": {"en": "Thanks for the feedback!", "ru": "Спасибо за отзыв!"},
    "ask_comment": {"en": "Thank you! Anything you'd like to add? Write a comment, or tap skip.",
                    "ru": "Спасибо! Хочешь что-нибудь добавить? Напиши комментарий или нажми «пропустить»."},
    "skip": {"en": "skip", "ru": "пропустить"},
    "not_yours": {"en": "That button isn't for you.", "ru": "Эта кнопка не для тебя."},
    "stale": {"en": "That button no longer works.", "ru": "Эта кнопка больше не работает."},
    # A story button pressed again (a double tap, a tap after a restart), or under a story that moved on.
    "done": {"en": "Already done.", "ru": "Уже сделано."},
    "moved_on": {"en": "The story has moved on since: use the buttons under the newest passage.",
                 "ru": "История уже ушла дальше: нажми кнопки под последним отрывком."},
    "language_ask": {"en": "Which language shall we talk in?", "ru": "На каком языке будем говорить?"},
    "language_set": {"en": "Okay, let's talk in English.", "ru": "Хорошо, говорим по-русски."},
    "delete_ask": {"en": "Delete all your conversations, stories and feedback? This cannot be undone.",
                   "ru": "Удалить все твои разговоры, истории и отзывы? Это необратимо."},
    "deleted": {"en": "Done: everything I kept about you is deleted.", "ru": "Готово: всё, что я хранил о тебе, удалено."},
    "kept": {"en": "Okay, nothing was deleted.", "ru": "Хорошо, ничего не удалено."},
    "private_only": {"en": "Please send /deletemydata to me in a private chat.",
                     "ru": "Отправь мне /deletemydata в личном чате."},
}


def commands(language: str | None = None) -> list[tuple[str, str]]:
    """(name, description) of every command, described in `language` (English for None or unknown)."""
    described = COMMAND_DESCRIPTIONS.get(language or "en", {})
    return [(name, described.get(name, description)) for name, description in COMMANDS]


def say(key: str, language: str | None, **values: str) -> str:
    texts = TEXTS[key]
    return (texts.get(language or "en") or texts["en"]).format(**values)


def language_of(user: User | None) -> str | None:
    code = (user.language_code or "")[:2].lower() if user else ""
    return code if code in ("en", "ru") else None


def split_command(text: str) -> tuple[str | None, str | None, str]:
    """("help", "TandemBot", "rest") from "/help@TandemBot rest"; (None, None, text) for plain text."""
    match = re.match(r"^/([A-Za-z0-9_]{1,32})(?:@([A-Za-z0-9_]+))?(?:\s+|$)(.*)$", text, re.DOTALL)
    if not match:
        return None, None, text
    return match.group(1).lower(), match.group(2), match.group(3).strip()
