"""The long-lived parts one hub process shares between requests."""

from __future__ import annotations

from dataclasses import dataclass

from hub.auth.keys import KeyStore
from hub.auth.rate_limits import RateLimits
from hub.auth.token_states import TokenStates
from hub.clock import Clock
from hub.config import Settings
from hub.consent.access_log import AccessLog
from hub.db import Database
from hub.members.sms import SmsSender, sender_for
from hub.rewards.codes import RewardKey
from hub.webhooks.crypto import WebhookKey


@dataclass
class Hub:
    settings: Settings
    db: Database
    keys: KeyStore
    clock: Clock
    sms: SmsSender
    access_log: AccessLog
    token_states: TokenStates
    rate_limits: RateLimits
    webhook_key: WebhookKey
    reward_key: RewardKey

    @classmethod
    def create(cls, settings: Settings, clock: Clock | None = None) -> Hub:
        db = Database(settings.database_url, settings.db_pool_size)
        return cls(
            settings=settings,
            db=db,
            keys=KeyStore(settings.keys_dir),
            clock=clock or Clock(),
            sms=sender_for(settings.sms_gateway_url, settings.sms_gateway_token, settings.development),
            access_log=AccessLog(db),
            token_states=TokenStates(settings.database_url, settings.token_cache_seconds),
            rate_limits=RateLimits(settings.redis_url, settings.rate_limit_requests, settings.rate_limit_cost),
            webhook_key=WebhookKey(settings.keys_dir),
            reward_key=RewardKey(settings.keys_dir),
        )

    async def close(self) -> None:
        await self.token_states.close()
        await self.db.dispose()
