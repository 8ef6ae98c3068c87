"""GenerativeIntentJudge: a prompted language model's second opinion when the intent guess is ambiguous.

The embedding classifier is fast and usually right; where it is unsure (its best score in the
ambiguous band, or two intents nearly tied) a generative model reads the message and the few
leading candidates with their descriptions and picks one, or none. That costs a generation
(~0.5 s with the 1.5B default on a CPU), so it is off by default (`nlu.judge = true` turns it
on) and asked only for the ambiguous share of turns. Whatever goes wrong with the model (an
error, a timeout, an answer that is not one of the options), the first guess stands.
"""

from __future__ import annotations

import asyncio
import logging
import re

from bot.core.annotations import Annotations, IntentGuess
from bot.core.errors import ModelError
from bot.models.base import ChatMessage, GenerationParams, LanguageModel
from bot.nlu.catalogue import IntentCatalogue
from bot.nlu.config import NluConfig

log = logging.getLogger(__name__)

SYSTEM = (
    "You sort chat messages sent to a chatbot by what the user wants. You are given a message and numbered "
    "options. Answer with the number of the option that fits the message best, or 0 if none fits. "
    "Answer with the number only."
)
# The answer is one number; a few tokens leave room for a leading space or a full stop.
ANSWER_TOKENS = 4


# The confidence the judge's pick gets: enough to route the turn.
PICK_CONFIDENCE = 0.9


class GenerativeIntentJudge:
    """An annotator that runs after the intent classifier and may change `annotations.intent`."""

    name = "judge"

    def __init__(self, catalogue: IntentCatalogue, model: LanguageModel, config: NluConfig | None = None) -> None:
        self.catalogue = catalogue
        self.model = model
        self.config = config or NluConfig()  # its judge_* settings

    def options(self, annotations: Annotations) -> list[IntentGuess]:
        """The candidates to offer when the guess is ambiguous; [] when the judge should stay out."""
        if annotations.intent is not None and annotations.intent.source == "rules":
            return []  # an author's rule is never second-guessed
        ranking = [g for g in annotations.ranking if g.source != "rules" and g.name in self.catalogue
                   and g.name != self.config.noise_intent]  # "none of these" is the judge's own answer for noise
        if not ranking:
            return []
        best = ranking[0].confidence
        runner_up = ranking[1].confidence if len(ranking) > 1 else 0.0
        cfg = self.config
        if cfg.judge_low <= best <= cfg.judge_high or (best > cfg.judge_low and best - runner_up < cfg.judge_margin):
            return ranking[:cfg.judge_candidates]
        return []

    def prompt(self, text: str, options: list[IntentGuess], language: str | None) -> list[ChatMessage]:
        lines = [f"Message: {text!r}", "Options:"]
        for number, guess in enumerate(options, start=1):
            lines.append(f"{number}. {self._describe(guess.name, language)}")
        lines.append("0. none of these")
        lines.append("Answer:")
        return [ChatMessage("system", SYSTEM), ChatMessage("user", "\n".join(lines))]

    def _describe(self, name: str, language: str | None) -> str:
        intent = self.catalogue.intents[name]
        # English descriptions read best for the model; the message itself stays as written.
        described = intent.texts("descriptions", "en") or intent.texts("descriptions", language) \
            or intent.texts("descriptions")
        readable = name.replace("_", " ")
        return f"{readable}: {described[0]}" if described else readable

    async def annotate(self, text: str, annotations: Annotations) -> None:
        options = self.options(annotations)
        if not options:
            return
        params = GenerationParams(max_new_tokens=ANSWER_TOKENS, temperature=0.0, seed=0)
        try:
            answer = await asyncio.wait_for(
                self.model.generate(self.prompt(text, options, annotations.language), params),
                self.config.judge_timeout_s,
            )
        except (ModelError, TimeoutError) as exc:
            log.info("intent judge gave no opinion: %s", type(exc).__name__)
            return
        choice = parse_choice(answer, len(options))
        before = annotations.intent_name
        if choice is None:
            log.info("intent judge answer not an option: %r", answer[:40])
            return
        if choice == 0:
            annotations.intent = None
        else:
            picked = options[choice - 1]
            annotations.intent = IntentGuess(picked.name, max(picked.confidence, PICK_CONFIDENCE), self.name)
        annotations.values[self.name] = {"asked": [g.name for g in options], "before": before,
                                         "after": annotations.intent_name}


def parse_choice(answer: str, count: int) -> int | None:
    """The option number in the model's answer (0..count), or None when there is none."""
    match = re.search(r"\d+", answer)
    if match is None:
        return None
    number = int(match.group())
    return number if 0 <= number <= count else None
