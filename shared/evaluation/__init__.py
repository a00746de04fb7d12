"""Champion vs challenger: a new version takes traffic only if it is at least as good on held-out conversations.

``examples`` (which conversations, cut before the last assistant message), ``sources`` (held-out splits and the
golden set), ``plan`` (the questions, frozen at the start), ``runner`` (asking both deployments through the
gateway's client, a resumable slice at a time), ``metrics`` (ROUGE-L, token F1, latency, paired bootstrap) and
``gate`` (the promotion decision). The reconcile step that drives them is ``shared.reconcile.evaluate``.

Light to import: ``rouge-score`` (and its ``nltk``), numpy and the HTTP client load on first use.
"""
