"""autotune: keep a fine-tuned chat model trained, deployed and served without anyone babysitting it.

Conventions of the package's entry points (what ``functions/`` and the CLI call):
- collaborators come first, outermost first: ``settings``, ``ledger``, ``backend``, or one ``RunContext`` that
  bundles them; then the subject (model, run id, body); then keyword options. A handler for a delivered trigger
  payload (``ingest_blob``, ``handle_event``) takes the payload first and its collaborators after, optional;
- results are plain data (or ``shared.dropzone.Answer``); failures are ``shared.errors`` exceptions. Nothing
  here decides an HTTP status: ``functions/http.py`` does (the OpenAI gateway's contract aside).
"""

__version__ = "0.1.0"
