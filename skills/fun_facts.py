"""FunFactSkill: a true, checkable fact from skills/data/facts.<language>.yaml, never the same one
twice in a conversation until all were told."""

from __future__ import annotations

from typing import ClassVar

from skills.repertoire import DATA_DIR, RepertoireSkill


class FunFactSkill(RepertoireSkill):
    name = "fun_fact"
    intents = ("fun_fact",)
    description = "Tells a fun fact, a different one each time."
    default_files: ClassVar = {"en": DATA_DIR / "facts.en.yaml", "ru": DATA_DIR / "facts.ru.yaml"}
    round_over: ClassVar = {
        "en": "I've told you every fact I know! Here they come again, from the start.",
        "ru": "Я рассказал тебе все факты, которые знаю! Пойдём по второму кругу.",
    }
    # Names what it asks for: a bare "another one" goes to the joke skill (see skills/jokes.py).
    more: ClassVar = {"en": "Another fact", "ru": "Ещё факт"}
