"""Settings of serving: the gateway, the idle sweeper, and operations (events, telemetry, logs)."""

from __future__ import annotations

from shared.settingspec.kinds import Setting, as_bool, as_csv, as_endpoint_suffix, as_float, as_int

# Gateway
GATEWAY: tuple[Setting, ...] = (
    Setting(
        "GATEWAY_API_KEYS",
        "gateway_api_keys",
        "",
        "Comma-separated API keys accepted by the chat API (several, for rotation).",
        as_csv,
        secret=True,
    ),
    Setting(
        "GATEWAY_MAX_BODY_BYTES",
        "gateway_max_body_bytes",
        str(1024 * 1024),
        "Largest chat request body (413 above).",
        as_int,
        minimum=1,
    ),
    Setting(
        "GATEWAY_MAX_MESSAGES", "gateway_max_messages", "256", "Most messages in one chat request.", as_int, minimum=1
    ),
    Setting(
        "GATEWAY_MAX_CHARS",
        "gateway_max_chars",
        "200000",
        "Most characters over all messages of a request.",
        as_int,
        minimum=1,
    ),
    Setting(
        "GATEWAY_MAX_TOKENS",
        "gateway_max_tokens",
        "4096",
        "Largest max_tokens a request may ask for.",
        as_int,
        minimum=1,
    ),
    Setting(
        "GATEWAY_DEFAULT_MAX_TOKENS",
        "gateway_default_max_tokens",
        "256",
        "max_new_tokens sent upstream when the request gives none.",
        as_int,
        minimum=1,
    ),
    Setting(
        "GATEWAY_CONNECT_TIMEOUT_SECONDS",
        "gateway_connect_timeout",
        "5",
        "Upstream connect timeout.",
        as_float,
        minimum=0.1,
    ),
    Setting(
        "GATEWAY_READ_TIMEOUT_SECONDS",
        "gateway_read_timeout",
        "170",
        "Upstream read timeout (below the endpoint's 180 s and the Functions 230 s limits).",
        as_float,
        minimum=0.1,
        maximum=179,
    ),
    Setting(
        "ENDPOINT_CACHE_TTL_SECONDS",
        "endpoint_cache_ttl",
        "300",
        "How long scoring URIs and keys are cached.",
        as_float,
        minimum=0,
    ),
    Setting("AUTO_WAKE", "auto_wake", "true", "Redeploy a sleeping model when a request arrives.", as_bool),
    Setting(
        "WAKE_RETRY_MINUTES",
        "wake_retry_minutes",
        "15",
        "After a failed wake, requests try again after this long, doubling with each further failure (at most "
        "16x); quota and capacity failures are retried without a request.",
        as_float,
        minimum=0,
    ),
)

# Sweeper
SWEEPER: tuple[Setting, ...] = (
    Setting("IDLE_SWEEP_SCHEDULE", "idle_sweep_schedule", "0 */10 * * * *", "NCRONTAB schedule of the idle sweeper."),
    Setting(
        "ENDPOINT_IDLE_MINUTES",
        "endpoint_idle_minutes",
        "60",
        "Delete a managed endpoint after this many minutes without requests.",
        as_float,
        minimum=0,
    ),
    Setting(
        "ENDPOINT_NAME_SUFFIX",
        "endpoint_name_suffix",
        "",
        "Suffix of Azure ML endpoint names (at-{model}-{suffix}), 1-8 lowercase letters/digits; endpoint names are "
        "unique per region. Empty: derived from the subscription and workspace.",
        as_endpoint_suffix,
    ),
    Setting(
        "IDLE_SWEEP_DRY_RUN",
        "idle_sweep_dry_run",
        "false",
        "Log what the sweeper would delete; delete nothing.",
        as_bool,
    ),
    Setting("PINNED_MODELS", "pinned_models", "", "Comma-separated models the sweeper never puts to sleep.", as_csv),
)

# Operations
OPERATIONS: tuple[Setting, ...] = (
    Setting(
        "EVENTS_TOPIC_ENDPOINT",
        "events_topic_endpoint",
        "",
        "Event Grid topic endpoint for the app's lifecycle events (empty: none published).",
    ),
    Setting(
        "EVENTS_TOPIC_KEY",
        "events_topic_key",
        "",
        "Access key of that topic, for topics with key auth (empty: publish with the managed identity, which "
        "needs EventGrid Data Sender on the topic).",
        secret=True,
    ),
    Setting(
        "APPLICATIONINSIGHTS_CONNECTION_STRING",
        "appinsights_connection_string",
        "",
        "Application Insights connection string (set by the platform in Azure).",
        secret=True,
    ),
    Setting(
        "AUTOTUNE_FUNCTION_KEY",
        "function_key",
        "",
        "CLI only: function key sent as x-functions-key to a deployed app's management routes.",
        secret=True,
    ),
    Setting(
        "LOG_LEVEL",
        "log_level",
        "INFO",
        "Log level of the app's own loggers.",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
    ),
)


__all__ = ["GATEWAY", "OPERATIONS", "SWEEPER"]
