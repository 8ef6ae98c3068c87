"""Skill declarations are checked when the class is defined, not when a user hits the bug."""

from __future__ import annotations

import pytest

from bot.core.errors import ConfigError
from bot.core.skill import Skill, SkillConfig, Turn
from bot.dispatch.registry import SkillRegistry


def test_a_skill_needs_a_lowercase_name() -> None:
    with pytest.raises(ConfigError, match="name"):
        class Bad(Skill):  # noqa: F811
            name = "Bad Name"

            async def respond(self, turn: Turn) -> str:
                return ""


def test_a_skill_needs_respond() -> None:
    with pytest.raises(ConfigError, match="respond"):
        class NoRespond(Skill):
            name = "no_respond"


def test_intents_must_be_a_tuple_of_names() -> None:
    with pytest.raises(ConfigError, match="intents"):
        class StringIntents(Skill):
            name = "string_intents"
            intents = "help"

            async def respond(self, turn: Turn) -> str:
                return ""


class GreeterConfig(SkillConfig):
    greeting: str = "hi"


class Greeter(Skill):
    name = "greeter"
    intents = ("greeting",)
    config_model = GreeterConfig

    async def respond(self, turn: Turn) -> str:
        return self.config.greeting


def test_config_tables_are_validated_and_name_the_key() -> None:
    skill = SkillRegistry.configure(Greeter, {"greeter": {"greeting": "hello"}})
    assert skill.config.greeting == "hello"
    with pytest.raises(ConfigError, match=r"skills\.greeter\.greting"):
        SkillRegistry.configure(Greeter, {"greeter": {"greting": "typo"}})


def test_registry_refuses_duplicates_and_unknown_intents() -> None:
    registry = SkillRegistry()
    registry.register(Greeter())
    with pytest.raises(ConfigError, match="two skills"):
        registry.register(Greeter())
    with pytest.raises(ConfigError, match="unknown intent 'greeting'"):
        registry.check_intents({"help"})
    registry.check_intents({"greeting"})
    assert registry.by_intent("greeting").name == "greeter"
