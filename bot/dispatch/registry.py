"""SkillRegistry: the skills a bot runs, registered explicitly and checked at start-up."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ValidationError

from bot.core.errors import ConfigError
from bot.core.skill import Skill


class SkillRegistry:
    """Skills by name. Start-up fails on duplicate names, unknown intents or config keys."""

    def __init__(self) -> None:
        self._skills: dict[str, Skill] = {}

    def register(self, skill: Skill) -> Skill:
        if skill.name in self._skills:
            raise ConfigError(f"two skills are named {skill.name!r}: {type(self._skills[skill.name]).__qualname__} "
                              f"and {type(skill).__qualname__}")
        self._skills[skill.name] = skill
        return skill

    def __contains__(self, name: object) -> bool:
        return name in self._skills

    def __getitem__(self, name: str) -> Skill:
        return self._skills[name]

    def get(self, name: str | None) -> Skill | None:
        return self._skills.get(name) if name else None

    def __iter__(self):
        return iter(self._skills.values())

    @property
    def names(self) -> set[str]:
        return set(self._skills)

    def by_intent(self, intent: str | None) -> Skill | None:
        """The first registered skill that serves `intent`."""
        if intent is None:
            return None
        for skill in self._skills.values():
            if intent in skill.intents:
                return skill
        return None

    def check_intents(self, known_intents: Iterable[str]) -> None:
        known = set(known_intents)
        for skill in self._skills.values():
            for intent in skill.intents:
                if intent not in known:
                    raise ConfigError(f"skill {skill.name!r} serves unknown intent {intent!r} "
                                      f"(add it to the intent catalogue)")

    @staticmethod
    def configure(skill_cls: type[Skill], tables: Mapping[str, Mapping[str, Any]], **kwargs: Any) -> Skill:
        """Build a skill from its `[skills.NAME]` table, naming the key on a bad value."""
        try:
            config = skill_cls.config_model.model_validate(dict(tables.get(skill_cls.name, {})))
        except ValidationError as exc:
            err = exc.errors()[0]
            key = ".".join(str(p) for p in err["loc"])
            raise ConfigError(f"setting `skills.{skill_cls.name}.{key}`: {err['msg']}") from exc
        return skill_cls(config, **kwargs)
