"""What a simulated user says: seeded scripts of realistic turns for the load generator.

A script is a few short *episodes* (a dialog-graph walk, a help question, small talk, a
feedback exchange, a story started and continued), cut to a fixed number of turns. The
phrases come from dialog_graphs/*.yaml, tests/dialog_graphs/test_happy_paths.py and the
examples in intents/*.yaml, so each one takes the route it is meant to take.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

# What a turn is meant to exercise; "story_api" turns go to /api/stories instead of the chat.
GRAPH, INTENT, SMALLTALK, STORY, STORY_API = "graph", "intent", "smalltalk", "story", "story_api"


@dataclass(frozen=True)
class Step:
    """One user turn: the text sent and what it is meant to exercise. For story_api steps the
    text is the action ("start" or "continue")."""

    text: str
    kind: str


# Episodes by name: (steps, weight). Weights give the mix; generative ones are the smaller share.
EPISODES: dict[str, tuple[tuple[Step, ...], float]] = {
    # onboarding.yaml: welcome → capabilities.
    "onboarding_menu": ((Step("hi", GRAPH), Step("What can you do?", GRAPH)), 3.0),
    # onboarding.yaml: welcome → leave_feedback → the feedback skill (a rating and a comment).
    "onboarding_feedback": ((Step("hello", GRAPH), Step("Leave feedback", GRAPH), Step("{rating}", INTENT),
                             Step("skip", INTENT)), 1.0),
    # about.yaml: what_is_tandem → privacy → storage → cancel.
    "about": ((Step("what is tandem?", GRAPH), Step("Is it private?", GRAPH), Step("How is my data stored?", GRAPH),
               Step("cancel", GRAPH)), 2.0),
    # Classifier-routed: examples of the help, thanks, goodbye and feedback intents.
    "help": ((Step("{help}", INTENT),), 2.0),
    "social": ((Step("{thanks}", INTENT), Step("{goodbye}", INTENT)), 1.5),
    "feedback": ((Step("{feedback}", INTENT), Step("{rating}", INTENT), Step("{comment}", INTENT)), 1.0),
    # Small talk answered by the model (intents/smalltalk.yaml).
    "smalltalk": ((Step("{chitchat}", SMALLTALK),), 2.0),
    # The story skill in the chat: start, one candidate twice (auto-chosen), leave story mode.
    "story_chat": ((Step("let's write a story", STORY), Step("continue 1", STORY), Step("continue 1", STORY),
                    Step("/end", STORY)), 1.0),
}
# The HTTP API conversations write their story through /api/stories instead of the chat.
HTTP_EPISODES = {**EPISODES, "story_chat": ((Step("start", STORY_API), Step("continue", STORY_API),
                                             Step("continue", STORY_API)), 1.0)}

PHRASES = {
    "help": ["help", "how does this work", "I need help", "show me the commands", "what features do you have",
             "how do I use you"],
    "thanks": ["thanks a lot", "thank you so much", "much appreciated", "that was helpful, thanks"],
    "goodbye": ["bye", "see you later", "bye for now", "talk to you later"],
    "feedback": ["I want to leave feedback", "can I rate you?", "let me give you a rating"],
    "comment": ["skip", "it was fun, thanks", "the stories could be longer", "nothing to add"],
    "chitchat": ["how are you?", "what's up", "do you like music?", "I love pizza", "I had a long day at work",
                 "what do you think about cats?", "what's your favourite book?"],
}
STORY_OPENINGS = [
    "Mira the fox found an old brass lantern under the snow.",
    "The lighthouse keeper heard a knock at midnight.",
    "On the first day of spring the river began to sing.",
    "A small robot woke up in an empty library.",
]
COMMENTS = ["great bot", "the stories were fun", "could be faster", None, None]


@dataclass
class Script:
    """One conversation's plan: its turns, and whether it thumbs replies and rates at the end."""

    steps: list[Step]
    thumbs: list[str | None]  # per turn: "up", "down", or None (no thumb on that reply)
    rating: int | None
    comment: str | None
    story_opening: str
    think: list[float] = field(default_factory=list)  # seconds before each turn


def build_script(rng: random.Random, index: int, turns: int, *, http: bool, mix: dict[str, float] | None = None,
                 think_s: tuple[float, float] = (1.0, 5.0), thumb_probability: float = 0.3,
                 rating_probability: float = 0.5) -> Script:
    """A seeded script of exactly `turns` turns (fewer only if `turns` < 1). The first episode
    is chosen round-robin by `index`, so every episode of the mix appears even at a low level."""
    catalogue = HTTP_EPISODES if http else EPISODES
    weights = {name: catalogue[name][1] for name in catalogue} if mix is None else dict(mix)
    names = sorted(weights)
    rating = rng.randint(1, 5)
    steps: list[Step] = []
    first = True
    while len(steps) < turns:
        name = names[index % len(names)] if first else rng.choices(names, [weights[n] for n in names])[0]
        first = False
        for step in catalogue[name][0]:
            steps.append(Step(_fill(step.text, rng, rating), step.kind))
    steps = steps[:max(turns, 0)]
    rates = rng.random() < rating_probability
    thumbs = [(("up" if rng.random() < 0.8 else "down") if rng.random() < thumb_probability else None)
              for _ in steps]
    return Script(
        steps=steps, thumbs=thumbs, rating=rating if rates else None,
        comment=rng.choice(COMMENTS) if rates else None, story_opening=rng.choice(STORY_OPENINGS),
        think=[rng.uniform(*think_s) for _ in steps],
    )


def _fill(text: str, rng: random.Random, rating: int) -> str:
    if text == "{rating}":
        return str(rating)
    if text.startswith("{") and text.endswith("}"):
        return rng.choice(PHRASES[text[1:-1]])
    return text
