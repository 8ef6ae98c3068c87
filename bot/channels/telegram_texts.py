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
CONTENT_KINDS = {
    "sticker": ("stickers", "стикеры"), "photo": ("photos", "фото"), "voice": ("voice messages", "голосовые"),
    "audio": ("audio", "аудио"), "video": ("videos", "видео"), "video_note": ("video messages", "видеосообщения"),
    "animation": ("GIFs", "гифки"), "document": ("files", "файлы"), "location": ("locations", "геопозиции"),
    "venue": ("places", "места"), "contact": ("contacts", "контакты"), "poll": ("polls", "опросы"),
    "dice": ("dice", "кубики"),
}

TEXTS: dict[str, dict[str, str]] = {
    "not_text": {"en": "Sorry, I can't read {kind} yet, only text. Could you tell me in words?",
                 "ru": "Извините, я пока не умею читать {kind}, только текст. Напишите словами?"},
    "edited": {"en": "I only see new messages, not edits. Send it again if you'd like me to answer the new version.",
               "ru": "Я вижу только новые сообщения, не правки. Отправьте его заново, если хотите ответ на новую версию."},
    "thanks": {"en": "Thanks for the feedback!", "ru": "Спасибо за отзыв!"},
    "ask_comment": {"en": "Thank you! Anything you'd like to add? Write a comment, or tap skip.",
                    "ru": "Спасибо! Хотите что-нибудь добавить? Напишите комментарий или нажмите «пропустить»."},
    "skip": {"en": "skip", "ru": "пропустить"},
    "not_yours": {"en": "That button isn't for you.", "ru": "Эта кнопка не для вас."},
    "stale": {"en": "That button no longer works.", "ru": "Эта кнопка больше не работает."},
    "not_latest": {"en": "Only the latest passage has these buttons.", "ru": "Эти кнопки есть только у последнего отрывка."},
    "language_ask": {"en": "Which language shall we talk in?", "ru": "На каком языке будем говорить?"},
    "language_set": {"en": "Okay, let's talk in English.", "ru": "Хорошо, говорим по-русски."},
    "delete_ask": {"en": "Delete all your conversations, stories and feedback? This cannot be undone.",
                   "ru": "Удалить все ваши разговоры, истории и отзывы? Это необратимо."},
    "deleted": {"en": "Done: everything I kept about you is deleted.", "ru": "Готово: всё, что я хранил о вас, удалено."},
    "kept": {"en": "Okay, nothing was deleted.", "ru": "Хорошо, ничего не удалено."},
    "private_only": {"en": "Please send /deletemydata to me in a private chat.",
                     "ru": "Отправьте /deletemydata мне в личном чате."},
}


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
