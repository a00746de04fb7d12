"""The CLI's one error: a failure worded for the operator. Its own module, so that ``main`` can catch it without
importing the HTTP client (offline commands never load it)."""

from __future__ import annotations

from shared.errors import AutotuneError


class CliError(AutotuneError, RuntimeError):
    """A failure worded for the operator; the CLI prints it and exits 1."""

    code = "cli_error"
