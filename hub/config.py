"""Settings, read once from environment variables. Every variable and its default is listed in README.md."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from zoneinfo import ZoneInfo

from hub.points.policy import ExpiryRule, PointsPolicy
from hub.programme.config import Programme
from hub.programme.config import load as load_programme

DEFAULT_DATABASE_URL = "sqlite:///var/hub.sqlite3"


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from exc


def _bool(name: str, default: bool) -> bool:
    raw = (os.environ.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw not in ("1", "true", "yes", "0", "false", "no"):
        raise ValueError(f"{name} must be true or false, got {raw!r}")
    return raw in ("1", "true", "yes")


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    issuer: str = "http://127.0.0.1:8000"
    env: str = "production"  # development (GraphiQL, error detail, codes in the log) only when asked for
    keys_dir: Path = Path("var/keys")
    demo_credentials_file: Path = Path("var/demo-credentials.json")
    access_token_ttl: int = 600
    default_phone_region: str = "CN"
    db_pool_size: int = 10
    # How long a process may keep a partner token's state between change notifications; 0 turns the cache off
    # (needed behind a transaction-pooling proxy such as PgBouncer, through which LISTEN hears nothing).
    token_cache_seconds: int = 60
    graphql_max_depth: int = 10
    graphql_max_aliases: int = 30
    graphql_max_tokens: int = 2000
    graphql_max_cost: int = 10_000
    # Per OAuth client and minute, unless the client has its own (`hub client limits`); shared by every hub
    # process through Redis when redis_url is set, per process otherwise.
    rate_limit_requests: int = 120_000
    rate_limit_cost: int = 2_400_000
    redis_url: str | None = None
    # Proxies whose X-Forwarded-For / X-Forwarded-Proto the hub believes (comma-separated addresses); none by
    # default, so a caller cannot choose the address the sign-in limits count.
    trusted_proxies: str = ""
    # Development and tests only: webhook receivers on loopback and private networks, and plain http.
    webhook_allow_private: bool = False
    webhook_retention_days: int = 30
    points_expiry: str = "year_end:1"
    points_allow_negative: bool = True
    hold_ttl_default: int = 900
    hold_ttl_max: int = 7 * 24 * 3600
    # `points.expiring` goes out this many days before a batch of a member's points expires.
    expiry_notice_days: int = 30
    # `hub worker` fits and scores each partner's members this often (hours).
    retention_rescore_hours: int = 24
    timezone: str = "Asia/Shanghai"
    sms_gateway_url: str | None = None
    sms_gateway_token: str | None = None
    programme_file: Path | None = None  # None: the built-in defaults (hub/programme/default.toml)
    # The operator's token for /metrics (never a partner's); without one, /metrics answers in development only.
    metrics_token: str | None = None
    log_format: str = ""  # json or text; empty: json in production, text in development
    log_level: str = "INFO"

    def __post_init__(self) -> None:
        if self.env not in ("development", "production"):
            raise ValueError(f"HUB_ENV must be 'development' or 'production', got {self.env!r}")
        if not 60 <= self.access_token_ttl <= 900:
            # RFC 9068 tokens are bearer credentials that cannot be recalled from a cache: keep them short.
            raise ValueError("HUB_ACCESS_TOKEN_TTL must be between 60 and 900 seconds")
        if not 0 <= self.token_cache_seconds <= 300:
            raise ValueError("HUB_TOKEN_CACHE_SECONDS must be between 0 (off) and 300")
        if self.log_format not in ("", "json", "text"):
            raise ValueError(f"HUB_LOG_FORMAT must be json or text, got {self.log_format!r}")
        if self.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ValueError(f"HUB_LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got {self.log_level!r}")
        if not 1 <= self.expiry_notice_days <= 365:
            raise ValueError("HUB_EXPIRY_NOTICE_DAYS must be between 1 and 365")
        if not 1 <= self.retention_rescore_hours <= 24 * 31:
            raise ValueError("HUB_RETENTION_RESCORE_HOURS must be between 1 and 744 (a month)")
        ExpiryRule.parse(self.points_expiry)  # fail at start-up, not at the first earn
        ZoneInfo(self.timezone)

    @property
    def secure_cookies(self) -> bool:
        """Portal cookies carry `Secure` whenever the hub is served over https."""
        return self.issuer.startswith("https://")

    @property
    def json_logs(self) -> bool:
        return self.log_format == "json" or (not self.log_format and not self.development)

    @property
    def development(self) -> bool:
        return self.env == "development"

    @property
    def audience(self) -> str:
        """The resource server's identifier: tokens minted for the GraphQL API carry it as `aud`."""
        return self.issuer.rstrip("/") + "/graphql"

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            database_url=os.environ.get("HUB_DATABASE_URL") or DEFAULT_DATABASE_URL,
            issuer=(os.environ.get("HUB_ISSUER") or "http://127.0.0.1:8000").rstrip("/"),
            env=os.environ.get("HUB_ENV") or "production",
            keys_dir=Path(os.environ.get("HUB_KEYS_DIR") or "var/keys"),
            demo_credentials_file=Path(os.environ.get("HUB_DEMO_CREDENTIALS_FILE") or "var/demo-credentials.json"),
            access_token_ttl=_int("HUB_ACCESS_TOKEN_TTL", 600),
            default_phone_region=os.environ.get("HUB_DEFAULT_PHONE_REGION") or "CN",
            db_pool_size=_int("HUB_DB_POOL_SIZE", 10),
            token_cache_seconds=_int("HUB_TOKEN_CACHE_SECONDS", 60),
            graphql_max_depth=_int("HUB_GRAPHQL_MAX_DEPTH", 10),
            graphql_max_aliases=_int("HUB_GRAPHQL_MAX_ALIASES", 30),
            graphql_max_cost=_int("HUB_GRAPHQL_MAX_COST", 10_000),
            rate_limit_requests=_int("HUB_RATE_LIMIT_REQUESTS", 120_000),
            rate_limit_cost=_int("HUB_RATE_LIMIT_COST", 2_400_000),
            redis_url=os.environ.get("HUB_REDIS_URL") or None,
            trusted_proxies=os.environ.get("HUB_TRUSTED_PROXIES") or "",
            webhook_allow_private=(os.environ.get("HUB_WEBHOOK_ALLOW_PRIVATE") or "false").lower()
            in ("1", "true", "yes"),
            webhook_retention_days=_int("HUB_WEBHOOK_RETENTION_DAYS", 30),
            points_expiry=os.environ.get("HUB_POINTS_EXPIRY") or "year_end:1",
            points_allow_negative=(os.environ.get("HUB_POINTS_ALLOW_NEGATIVE") or "true").lower()
            in ("1", "true", "yes"),
            hold_ttl_default=_int("HUB_HOLD_TTL_DEFAULT", 900),
            hold_ttl_max=_int("HUB_HOLD_TTL_MAX", 7 * 24 * 3600),
            expiry_notice_days=_int("HUB_EXPIRY_NOTICE_DAYS", 30),
            retention_rescore_hours=_int("HUB_RETENTION_RESCORE_HOURS", 24),
            timezone=os.environ.get("HUB_TIMEZONE") or "Asia/Shanghai",
            sms_gateway_url=os.environ.get("HUB_SMS_GATEWAY_URL") or None,
            sms_gateway_token=os.environ.get("HUB_SMS_GATEWAY_TOKEN") or None,
            programme_file=Path(os.environ["HUB_PROGRAMME_FILE"]) if os.environ.get("HUB_PROGRAMME_FILE") else None,
            metrics_token=os.environ.get("HUB_METRICS_TOKEN") or None,
            log_format=(os.environ.get("HUB_LOG_FORMAT") or "").lower(),
            log_level=os.environ.get("HUB_LOG_LEVEL") or "INFO",
        )

    @cached_property
    def programme(self) -> Programme:  # validated once, when first needed (`hub serve` loads it at start-up)
        return load_programme(self.programme_file, ZoneInfo(self.timezone))

    @cached_property
    def points_policy(self) -> PointsPolicy:  # read on every ledger command: parse once
        return PointsPolicy(
            expiry=ExpiryRule.parse(self.points_expiry),
            allow_negative=self.points_allow_negative,
            hold_ttl_default=self.hold_ttl_default,
            hold_ttl_max=self.hold_ttl_max,
            zone=ZoneInfo(self.timezone),
        )
