"""What web channels may use, stored on the aiohttp application under one typed key."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from bot.core.messages import Incoming, ReplyStream
from bot.dispatch.admission import Admission
from bot.settings import Settings
from bot.storage.conversations import ConversationRepo
from bot.storage.feedback import FeedbackRepo
from bot.story.service import StoryService


@dataclass(frozen=True)
class Services:
    """The seams a channel gets: `handle_turn` for turns, the repositories for feedback and history."""

    settings: Settings
    handle_turn: Callable[[Incoming], ReplyStream]
    conversations: ConversationRepo
    feedback: FeedbackRepo
    # Story actions for the story endpoints; None when the bot has no story skill.
    stories: StoryService | None = None
    # The dispatcher's gate, which story actions pass too (fair per user, bounded overall).
    admission: Admission | None = None
    # Seconds one story generation may take over the story API (the story skill's turn budget).
    story_budget_s: float = 300.0


SERVICES: web.AppKey[Services] = web.AppKey("services", Services)
