"""Label expansion: the generative model writes example messages for intents that have none.

Zero-shot intents are only a name and maybe a description; an encoder compares a message with
those few words, which is where zero-shot accuracy is lost. A language model that is asked "what
would a user write when they want X" turns each name into a handful of plausible messages, and
the intent is then scored like a few-shot one. Generated examples are cached in the data folder
by model and catalogue (a rerun costs nothing), and `tandem nlu expand` writes them to a YAML
file for a bot author to read, correct and keep.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable
from pathlib import Path

from bot.core.errors import ModelError
from bot.models.base import ChatMessage, GenerationParams, LanguageModel
from bot.nlu.catalogue import Intent, IntentCatalogue

log = logging.getLogger(__name__)

SYSTEM = "You write realistic messages that users send to a chatbot. Write only the messages."
# Numbering, bullets and quotes that models put around list items.
_LIST_MARK = re.compile(r'^\s*(?:[-*•]+|\d+[.)]|\(\d+\))\s*')
MAX_EXAMPLE_CHARS = 160


def readable(name: str) -> str:
    return name.replace("_", " ").replace("-", " ").strip()


def prompt_for(intent: Intent, count: int, language: str) -> list[ChatMessage]:
    described = intent.texts("descriptions", language) or intent.texts("descriptions")
    what = readable(intent.name)
    if described and described[0].lower() != what.lower():
        what = f"{what} ({described[0]})"
    tongue = {"en": "English", "ru": "Russian"}.get(language, language)
    # A numbered list: small models keep to the count far better than with "one per line".
    ask = (f"Write {count} different short messages, in {tongue}, that a user might send to a chatbot when "
           f"their intent is: {what}. Vary the wording. Answer with a numbered list, one message per line.")
    return [ChatMessage("system", SYSTEM), ChatMessage("user", ask)]


def parse_examples(text: str, count: int, name: str) -> list[str]:
    """The distinct, plausible lines of the model's answer, at most `count`."""
    seen: dict[str, str] = {}
    for line in text.splitlines():
        line = _LIST_MARK.sub("", line).strip().strip('"“”«»\'').strip()
        if not line or len(line) > MAX_EXAMPLE_CHARS or line.endswith(":"):
            continue
        if line.lower() == readable(name).lower():
            continue  # the label itself adds nothing
        seen.setdefault(line.lower(), line)
    return list(seen.values())[:count]


class LabelExpander:
    """Generates `count` examples per intent without examples, with one model, cached on disk."""

    def __init__(self, model: LanguageModel, data_dir: Path, *, count: int = 8, language: str = "en") -> None:
        self.model = model
        self.count = count
        self.language = language
        self.folder = data_dir / "nlu" / "expansions"

    def _cache_path(self, catalogue: IntentCatalogue) -> Path:
        key = hashlib.sha256(f"{self.model.name}|{self.count}|{self.language}|{catalogue.fingerprint()}".encode())
        return self.folder / f"{key.hexdigest()[:20]}.json"

    async def examples(self, catalogue: IntentCatalogue,
                       progress: Callable[[int, int], None] | None = None) -> dict[str, list[str]]:
        """Generated examples by intent name, for the intents that have no examples."""
        path = self._cache_path(catalogue)
        if path.exists():
            try:
                return json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                log.warning("ignoring unreadable expansion cache %s: %s", path, exc)
        todo = [intent for intent in catalogue if not intent.texts("examples")]
        generated: dict[str, list[str]] = {}
        for number, intent in enumerate(todo, start=1):
            # Seeded by the intent's name: the same catalogue expands the same way every time.
            seed = int(hashlib.sha256(intent.name.encode()).hexdigest()[:7], 16)
            params = GenerationParams(max_new_tokens=24 * self.count, temperature=0.7, top_p=0.9, seed=seed)
            try:
                answer = await self.model.generate(prompt_for(intent, self.count, self.language), params)
            except ModelError as exc:
                log.warning("no examples generated for intent=%s: %s", intent.name, type(exc).__name__)
                answer = ""
            generated[intent.name] = parse_examples(answer, self.count, intent.name)
            if progress is not None:
                progress(number, len(todo))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(generated, ensure_ascii=False, indent=1), encoding="utf-8")
        tmp.replace(path)
        return generated

    async def expand(self, catalogue: IntentCatalogue,
                     progress: Callable[[int, int], None] | None = None) -> IntentCatalogue:
        """The catalogue with the generated examples added to the intents that had none."""
        generated = await self.examples(catalogue, progress)
        intents = []
        for intent in catalogue:
            extra = generated.get(intent.name) or []
            if extra and not intent.texts("examples"):
                intent = intent.model_copy(update={"examples": {self.language: tuple(extra)}})
            intents.append(intent)
        return IntentCatalogue(intents, catalogue.sources)
