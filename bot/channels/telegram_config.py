"""TelegramConfig: the [telegram] settings table (no secrets: the token and webhook secret come from the environment)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class TelegramConfig(BaseModel):
    """How the Telegram channel talks to the Bot API. Times are seconds."""

    model_config = ConfigDict(extra="forbid")

    # "polling" (getUpdates, works behind NAT) or "webhook" (Telegram POSTs to `webhook_url`).
    mode: Literal["polling", "webhook"] = "polling"
    # Public HTTPS address Telegram posts updates to, ending in `webhook_path` (webhook mode only).
    webhook_url: str | None = None
    # Path of the webhook route on Tandem's own aiohttp server.
    webhook_path: str = "/telegram/webhook"
    # Webhook connections Telegram may open at once (setWebhook max_connections, 1-100). At 1 it
    # sends the next update only after the previous was answered, and the answer waits until the
    # update's message is stored: a chat's messages are taken in order, across any number of
    # workers. Raising it trades each chat's order for throughput.
    webhook_max_connections: int = Field(1, ge=1, le=100)
    # Longest wait of a webhook answer for its update to be taken; then it answers all the same.
    webhook_take_timeout_s: float = Field(10.0, gt=0)
    # The Bot API endpoint; a self-hosted Bot API server or a test server goes here.
    api_base_url: str = "https://api.telegram.org/bot"
    # Long-polling wait of one getUpdates call.
    poll_timeout_s: float = Field(30.0, ge=0)
    # Polling with several processes on one database: one polls (the leader), and the others try
    # to take over this often; the leader checks its PostgreSQL lock connection as often too.
    leader_interval_s: float = Field(5.0, gt=0)
    # Throw away updates that arrived while the bot was down.
    drop_pending_updates: bool = False
    # Timeouts of one Bot API request (getUpdates adds poll_timeout_s).
    request_timeout_s: float = Field(15.0, gt=0)
    # Show a streamed reply (draft or placeholder) only when the turn takes longer than this.
    stream_after_s: float = Field(0.8, ge=0)
    # Least time between two edits (or drafts) of a streamed reply in one chat.
    edit_interval_s: float = Field(1.0, ge=0)
    # sendChatAction(typing) lasts 5 s on Telegram; renew it this often while generating.
    typing_interval_s: float = Field(4.0, gt=0)
    # Long replies are split into messages of at most this many UTF-16 units (Telegram allows 4096).
    split_at: int = Field(3900, ge=100, le=4096)
    # The one retry policy of Bot API calls (ApiCaller): a call is tried at most max_retries + 1 times
    # in all. A 429 waits as long as Telegram asks; network errors, timeouts and 5xx wait backoff,
    # 2x backoff, ... up to the max.
    max_retries: int = Field(5, ge=0)
    retry_backoff_s: float = Field(1.0, ge=0)
    retry_backoff_max_s: float = Field(30.0, ge=0)
    # Global and per-group flood limits (Telegram: about 30 messages/s overall, 20/min per group).
    overall_per_s: float = Field(30.0, gt=0)
    group_per_min: float = Field(20.0, gt=0)
    # Drafts (sendMessageDraft) for streaming in private chats; off = throttled edits everywhere.
    use_drafts: bool = True

    @model_validator(mode="after")
    def _webhook_needs_url(self) -> TelegramConfig:
        if self.mode == "webhook" and not self.webhook_url:
            raise ValueError("webhook mode needs `webhook_url` (the public https address Telegram posts to)")
        if not self.webhook_path.startswith("/"):
            raise ValueError("`webhook_path` must start with /")
        return self
