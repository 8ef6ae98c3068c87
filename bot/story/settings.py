"""Per-story settings (candidates and sampling), validated, and parsed from "key=value" text."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot.core.errors import refusal
from bot.models.base import GenerationParams

# Generation ends before these: the model starting the user's side of a dialogue, or chat markers.
STOP_STRINGS = (
    "\nUser:", "\nuser:", "\nYou:", "\nHuman:", "\nПользователь:", "\nВы:", "<|im_end|>", "<|endoftext|>",
    "<|im_start|>", "\n\n\n",
)
# What is wrong with a setting's value, in Russian, by pydantic's error type (English is pydantic's own message).
RU_PROBLEMS = {
    "greater_than_equal": "значение должно быть не меньше {ge}", "greater_than": "значение должно быть больше {gt}",
    "less_than_equal": "значение должно быть не больше {le}", "less_than": "значение должно быть меньше {lt}",
    "int_type": "нужно целое число", "int_parsing": "нужно целое число", "int_from_float": "нужно целое число",
    "float_type": "нужно число", "float_parsing": "нужно число",
}


class StorySettings(BaseModel):
    """What a user may change in a story at any time; stored per story as JSON."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Continuations generated per turn to choose from (1 = no choice, the passage is taken).
    candidates: int = Field(3, ge=1, le=5)
    # Length of one passage, in tokens (the hard limit) and in sentences (where it ends when it
    # reaches them first: the model is asked for two to this many, and stopped at this many).
    max_new_tokens: int = Field(120, ge=16, le=1024)
    sentences: int = Field(5, ge=1, le=20)
    temperature: float = Field(0.8, ge=0, le=2)
    top_p: float = Field(0.95, gt=0, le=1)
    repetition_penalty: float = Field(1.1, ge=1, le=2)

    def params(self, *, stop: tuple[str, ...] = STOP_STRINGS) -> GenerationParams:
        return GenerationParams(
            max_new_tokens=self.max_new_tokens, temperature=self.temperature, top_p=self.top_p,
            repetition_penalty=self.repetition_penalty, stop=stop,
        )

    @classmethod
    def load(cls, stored: dict[str, Any], defaults: StorySettings | None = None) -> StorySettings:
        """Stored values over the defaults; keys from older versions that no longer exist are ignored."""
        base = (defaults or cls()).model_dump()
        base.update({k: v for k, v in stored.items() if k in cls.model_fields})
        return cls.model_validate(base)

    def changed(self, changes: dict[str, Any]) -> StorySettings:
        """These settings with `changes`, or InputError naming the key and the allowed range."""
        unknown = sorted(set(changes) - set(type(self).model_fields))
        if unknown:
            known = ", ".join(type(self).model_fields)
            raise refusal(f"Unknown setting {unknown[0]!r}. Known settings: {known}.",
                          f"Нет такой настройки: {unknown[0]!r}. Есть такие: {known}.")
        try:
            return type(self).model_validate({**self.model_dump(), **changes})
        except ValidationError as exc:
            err = exc.errors()[0]
            key = ".".join(str(p) for p in err["loc"])
            problem = RU_PROBLEMS.get(err["type"], "недопустимое значение ({msg})")
            raise refusal(f"Setting {key}: {err['msg']}.",
                          f"Настройка {key}: {problem.format(msg=err['msg'], **err.get('ctx', {}))}.") from None


_ASSIGNMENT = re.compile(r"^([a-z_]+)\s*=\s*(\S+)$")


def parse_assignments(text: str) -> dict[str, Any]:
    """`"temperature=0.9 candidates=2"` -> {"temperature": 0.9, "candidates": 2}; InputError when malformed."""
    changes: dict[str, Any] = {}
    for part in re.split(r"[\s,;]+", text.replace(" = ", "=").strip()):
        if not part:
            continue
        match = _ASSIGNMENT.match(part.lower())
        if match is None:
            raise refusal(f"I can't read {part!r}: write settings as key=value, e.g. temperature=0.9 candidates=2.",
                          f"Не могу разобрать {part!r}: пиши настройки как ключ=значение, "
                          "например temperature=0.9 candidates=2.")
        key, raw = match.groups()
        try:
            changes[key] = int(raw) if re.fullmatch(r"-?\d+", raw) else float(raw)
        except ValueError:
            raise refusal(f"Setting {key}: {raw!r} is not a number.", f"Настройка {key}: {raw!r} — не число.") from None
    if not changes:
        raise refusal("Give at least one setting as key=value, e.g. temperature=0.9.",
                      "Укажи хотя бы одну настройку как ключ=значение, например temperature=0.9.")
    return changes
