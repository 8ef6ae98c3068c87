"""The response selector: where several skills could answer a message (no intent is sure, or two are
close), they answer side by side and the selector keeps the best reply, scoring each by how sure the
intent was and what the reply is like (empty, declined, a repeat of the last reply).

Like DeepPavlov Dream's response selector and the Alexa Prize bots' rankers, but cheap: the
candidates are the few skills the intent ranking names, and most turns have one, which answers
alone and streams. Every candidate and its score are stored with the turn (the bot message's
annotations, `candidates`), for the dashboard and for learning from thumbs later.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from bot.core.annotations import IntentGuess
from bot.core.skill import HistoryItem, Skill, Turn

# The score of "I didn't understand that": a candidate must beat it to be said instead.
FALLBACK_PRIOR = 0.35
# Taken off a reply that repeats the bot's last one word for word, and off one its skill declined.
REPEAT_PENALTY = 0.3
DECLINED_PENALTY = 0.3


@dataclass(frozen=True)
class SelectorConfig:
    # Candidates answering one message at most (1 = no selection, the top intent's skill answers).
    max_candidates: int = 3
    # Intents ranked below this are not candidates.
    floor: float = 0.25
    # A sure top intent that leads the next candidate's by this much answers alone.
    margin: float = 0.2


@dataclass
class Candidate:
    """One skill's answer to the message, made on its own copy of the turn."""

    skill: Skill
    guess: IntentGuess | None  # None: the fallback, for a message no intent is sure of
    turn: Turn
    pieces: list[str] = field(default_factory=list)
    failed: bool = False
    score: float = 0.0

    @property
    def text(self) -> str:
        return (self.turn.rewritten if self.turn.rewritten is not None else "".join(self.pieces)).strip()

    def to_json(self, chosen: bool) -> dict:
        return {"skill": self.skill.name, "intent": self.guess.name if self.guess else None,
                "score": round(self.score, 4), "text": self.text[:300], "chosen": chosen}


def candidate_skills(intent: IntentGuess | None, ranking: Sequence[IntentGuess], skill_for, fallback: Skill,
                     threshold: float, config: SelectorConfig) -> list[tuple[Skill, IntentGuess | None]]:
    """The skills that may answer, best first: one per skill, from the annotators' intent and ranking;
    the fallback too when no intent is sure. `skill_for(intent)` is the registry's lookup (None: no
    skill serves it)."""
    # The annotators' decision first (a later annotator may have overruled a higher-ranked guess),
    # then the rest of the ranking, best first.
    rest = sorted((g for g in ranking if intent is None or g.name != intent.name), key=lambda g: -g.confidence)
    guesses = [intent, *rest] if intent is not None else rest
    found: list[tuple[Skill, IntentGuess | None]] = []
    seen: set[str] = set()
    for guess in guesses:
        if guess.confidence < config.floor:
            continue
        skill = skill_for(guess.name)
        if skill is None or skill.name in seen:
            continue
        seen.add(skill.name)
        found.append((skill, guess))
    sure = bool(found) and found[0][1] is not None and found[0][1].confidence >= threshold
    if not sure and fallback.name not in seen:
        found.append((fallback, None))
    if found and not found[0][0].selectable:
        return found[:1]  # the best one acts (starts a story, stores a rating): it answers alone
    # Only skills whose answer can be thrown away answer beside another.
    found = [option for option in found if option[0].selectable]
    if sure and len(found) > 1 and found[0][1].confidence - found[1][1].confidence >= config.margin:
        found = found[:1]
    return found[: max(1, config.max_candidates)]


def score(candidate: Candidate, history: Sequence[HistoryItem]) -> float:
    """How good an answer the candidate is: the intent's confidence (a rule's is 1.0, the fallback's a
    fixed prior), less penalties for a declined answer or a repeat of the bot's last reply."""
    text = candidate.text
    if candidate.failed or not text:
        return float("-inf")
    value = candidate.guess.confidence if candidate.guess is not None else FALLBACK_PRIOR
    if candidate.turn.data.get("declined"):
        value -= DECLINED_PENALTY
    last = next((item.text for item in reversed(history) if item.author == "bot"), None)
    if last is not None and last.strip().casefold() == text.casefold():
        value -= REPEAT_PENALTY
    return value


def pick(candidates: Sequence[Candidate], history: Sequence[HistoryItem]) -> Candidate | None:
    """Score every candidate and return the best one (the first of equals: the ranking's order)."""
    best: Candidate | None = None
    for candidate in candidates:
        candidate.score = score(candidate, history)
        if candidate.score != float("-inf") and (best is None or candidate.score > best.score):
            best = candidate
    return best
