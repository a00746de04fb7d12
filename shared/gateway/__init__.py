"""The scoring gateway: an OpenAI-compatible chat API and Azure ML native scoring through one fast proxy.

Why a package of small modules: the gateway is the only function on the hot path, so each concern
(request translation, auth, the upstream client, target lookup, activity) is kept apart and cheap to import.
Nothing here imports ``azure.functions`` or ``azure.ai.ml``; ``aiohttp`` loads on the first scoring call.

- ``openai_api``: OpenAI request validation, translation to Azure ML ``input_data``, answer parsing, response shapes.
- ``errors``: ``GatewayError`` and the OpenAI error body.
- ``auth``: API keys from ``GATEWAY_API_KEYS``.
- ``upstream``: the pooled async HTTP client with timeouts, retries and key refresh.
- ``targets``: model name -> live scoring target, cached in memory.
- ``activity``: debounced last-request times for the idle sweeper.
- ``service``: the request flows behind each route (what ``functions/gateway.py`` calls).
"""
