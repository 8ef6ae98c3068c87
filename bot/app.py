"""Composition root: builds settings' parts, storage, annotators, skills, graphs and the dispatcher."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bot.core.annotations import Annotator, close_annotators, start_annotators
from bot.core.errors import ConfigError
from bot.core.messages import Incoming
from bot.dispatch.dispatcher import Dispatcher
from bot.dispatch.registry import SkillRegistry
from bot.dispatch.stream import TurnStream
from bot.models.base import LanguageModel
from bot.nlu.catalogue import IntentCatalogue
from bot.nlu.pipeline import build_annotators
from bot.settings import Settings
from bot.storage.conversations import ConversationRepo
from bot.storage.database import Database
from bot.storage.feedback import FeedbackRepo
from bot.storage.stories import StoryRepo
from bot.story.service import StoryService
from skills.clock import ClockSkill
from skills.fallback import FallbackSkill
from skills.feedback import FeedbackSkill
from skills.fun_facts import FunFactSkill
from skills.help import HelpSkill
from skills.jokes import JokeSkill
from skills.language import LanguageSkill
from skills.profile import ProfileSkill
from skills.smalltalk import SmallTalkSkill
from skills.story import StorySkill

log = logging.getLogger(__name__)

HandleTurn = Callable[[Incoming], TurnStream]


@dataclass
class Tandem:
    """Everything a running bot is made of; channels get only `handle_turn`."""

    settings: Settings
    db: Database
    conversations: ConversationRepo
    feedback: FeedbackRepo
    catalogue: IntentCatalogue
    skills: SkillRegistry
    dispatcher: Dispatcher
    annotators: list[Annotator] = field(default_factory=list)
    # The generative model of the story and small-talk skills (loaded on first use).
    language_model: LanguageModel | None = None
    stories: StoryService | None = None

    @property
    def handle_turn(self) -> HandleTurn:
        return self.dispatcher.handle_turn

    async def close(self) -> None:
        await self.dispatcher.close()
        if self.dispatcher.relay is not None:
            await self.dispatcher.relay.close()
        for skill in self.skills:
            await skill.close()
        if self.language_model is not None:
            await self.language_model.close()
        await close_annotators(self.annotators)
        await self.db.close()


def protect_secrets(settings: Settings) -> None:
    """Hide every configured secret from the logs, whatever library logs it."""
    from bot import redaction

    secrets = [s.get_secret_value() for s in (settings.telegram_token, settings.telegram_webhook_secret,
                                               settings.admin_token, settings.lm.api_key) if s is not None]
    redis_url = settings.server.redis_url
    redaction.protect([*secrets, redaction.database_password(settings.resolved_database_url),
                       redaction.database_password(redis_url.get_secret_value()) if redis_url else None])


async def prepare_language_model(settings: Settings) -> None:
    """Strict start-up for the configured model: resolve it (joining a bundled model's parts
    once, with a progress bar) or stop with a ConfigError naming the setting and the file.
    Loading the weights follows: `check_language_model` for `tandem run`, `warm_up` for the chat."""
    from bot.models.runtime import resolve_source

    await asyncio.to_thread(resolve_source, settings.lm.model, Path(settings.data_dir), progress=True)


async def warm_up(model: LanguageModel) -> None:
    """Load the model before the first story asks for it; a failure is logged, and the
    skills answer that the model is unavailable until a later request loads it."""
    try:
        await model.start()
    except Exception:
        log.exception("language model failed to load")


async def check_language_model(model: LanguageModel, setting: str, *, timeout_s: float = 120.0) -> None:
    """`tandem run`'s start-up check: load the model and write a few tokens with it, so a model
    that cannot load or crashes on its first decode stops start-up with one line saying so."""
    from bot.core.errors import ModelError
    from bot.models.base import GenerationParams

    hint = ("try `tandem doctor`; on a CPU that crashes in llama.cpp set lm.weight_repack = \"off\", "
            "or run on lm.backend = \"transformers\"")
    try:
        await model.start()
        async with asyncio.timeout(timeout_s):
            await model.generate("Hello", GenerationParams(max_new_tokens=2, temperature=0.0))
    except ConfigError:
        raise
    except (ModelError, TimeoutError) as exc:
        reason = str(exc) or f"it took longer than {timeout_s:g} s"
        raise ConfigError(f"setting `lm.model` = {setting}: the start-up generation failed: {reason}; {hint}") from exc


def build_language_model(settings: Settings) -> LanguageModel:
    """The configured generative model, built and loaded on its first request, so a bot whose
    model is not installed still starts, and says so when a story is asked for. Local backends
    run in a supervised worker process (lm.isolation = "process"), so their crash is not ours."""
    from bot.models.runtime import build_language_model as build_model
    from bot.models.lazy import LazyLanguageModel

    lm = settings.lm
    if lm.isolation == "process" and not lm.model.startswith(("http://", "https://")):
        from bot.models.supervisor import SupervisedModel

        return SupervisedModel(lm, Path(settings.data_dir), log_level=settings.log_level)
    return LazyLanguageModel(
        lambda: build_model(settings.lm, Path(settings.data_dir), progress=False),
        name=settings.lm.model, context_window=settings.lm.context_window or 2048,
    )


SHIPPED_SKILLS = (HelpSkill, FeedbackSkill, LanguageSkill, StorySkill, JokeSkill, FunFactSkill, ClockSkill,
                  ProfileSkill, SmallTalkSkill, FallbackSkill)


def build_skills(settings: Settings, feedback: FeedbackRepo, *, stories: StoryRepo | None = None,
                 language_model: LanguageModel | None = None) -> SkillRegistry:
    """Register the shipped skills; a bot author adds theirs here (see docs/architecture.md)."""
    tables = settings.skills
    registry = SkillRegistry()
    registry.register(SkillRegistry.configure(HelpSkill, tables))
    registry.register(SkillRegistry.configure(FeedbackSkill, tables, store=feedback))
    registry.register(SkillRegistry.configure(LanguageSkill, tables))
    registry.register(SkillRegistry.configure(StorySkill, tables, repo=stories, model=language_model))
    registry.register(SkillRegistry.configure(JokeSkill, tables))
    registry.register(SkillRegistry.configure(FunFactSkill, tables))
    registry.register(SkillRegistry.configure(ClockSkill, tables))
    registry.register(SkillRegistry.configure(ProfileSkill, tables))
    registry.register(SkillRegistry.configure(SmallTalkSkill, tables, model=language_model))
    registry.register(SkillRegistry.configure(FallbackSkill, tables))
    return registry


def load_graphs(settings: Settings, catalogue: IntentCatalogue, skills: SkillRegistry):
    """Load and validate every dialog graph; any error stops start-up naming file and node."""
    from bot.dialog.engine import GraphEngine
    from bot.dialog.flows import FlowRegistry

    registry = FlowRegistry.load(
        Path(settings.graphs_dir), known_intents=set(catalogue.names), known_skills=skills.names
    )
    return GraphEngine(registry)


def build_turn_relay(settings: Settings):
    """With Redis, a turn's reply streams to another worker that answers a resend of it."""
    if settings.server.redis_url is None:
        return None
    from bot.dispatch.relay_redis import RedisTurnRelay  # only a deployment with Redis needs it
    return RedisTurnRelay(settings.server.redis_url.get_secret_value())


async def build_app(settings: Settings, *, migrate: bool = True,
                    language_model: LanguageModel | None = None) -> Tandem:
    """Build a running Tandem from settings: strict, so a bad file or value stops here.
    `language_model` replaces the configured one (tests pass a FakeLanguageModel)."""
    protect_secrets(settings)
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    catalogue = IntentCatalogue.load(Path(settings.intents_dir))
    db = Database(settings.resolved_database_url, busy_timeout_s=settings.database_busy_timeout_s)
    try:
        if migrate:
            await db.migrate()
        conversations = ConversationRepo(db)
        feedback = FeedbackRepo(db)
        language_model = language_model or build_language_model(settings)
        skills = build_skills(settings, feedback, stories=StoryRepo(db), language_model=language_model)
        skills.check_intents(catalogue.names)
        graphs = load_graphs(settings, catalogue, skills)
        annotators = build_annotators(settings.nlu, catalogue, Path(settings.data_dir), language_model)
        await start_annotators(annotators)
        dispatcher = Dispatcher(
            conversations, skills, annotators, graphs, settings.dispatcher, settings.nlu.intent_threshold,
            relay=build_turn_relay(settings),
        )
    except BaseException:
        await db.close()
        raise
    log.info("tandem ready: %d skills, %d intents", len(skills.names), len(catalogue))
    story_skill = skills.get(StorySkill.name)
    return Tandem(settings, db, conversations, feedback, catalogue, skills, dispatcher, annotators,
                  language_model, getattr(story_skill, "service", None))
