"""formal_address: where a Russian text addresses its reader as вы. Tandem says ты to everyone; the
small-talk skill checks its model's replies with it, and the evaluation its whole answers."""

from __future__ import annotations

import re

# Addressing one person as вы: the pronoun in any case, or a plural imperative (напишите,
# попробуйте, отправьте, возвращайтесь). Tandem says ты to everyone.
_FORMAL_PRONOUN = re.compile(r"\b(вы|вас|вам|вами|ваш|ваша|ваше|ваши|вашего|вашей|вашему|вашим|ваших|вашу|вашем)\b",
                             re.IGNORECASE)
_PLURAL_IMPERATIVE = re.compile(r"\b[а-яё]{2,}(?:и|й|ь)те(?:сь)?\b", re.IGNORECASE)
# Nouns that end like a plural imperative (в защите, на сайте, о визите).
_AFTER_PREPOSITION = re.compile(r"(?<![а-яё])(?:в|во|на|о|об|обо|при)\s+$", re.IGNORECASE)
_NOT_IMPERATIVE = frozenset({"защите", "сайте", "визите", "элите", "орбите", "кредите", "аппетите", "граните"})


def formal_address(text: str) -> list[str]:
    """The words of a Russian text that address the reader as вы."""
    found = [m.group(0) for m in _FORMAL_PRONOUN.finditer(text)]
    for m in _PLURAL_IMPERATIVE.finditer(text):
        # After в/на/о/при the word is a noun in the prepositional case ("в килобайте", "на сайте").
        if m.group(0).lower() not in _NOT_IMPERATIVE and not _AFTER_PREPOSITION.search(text, 0, m.start()):
            found.append(m.group(0))
    return found
