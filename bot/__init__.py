"""The bot process: settings, start-up checks, the store, the hashing core, the webhook notifier and
its outbox (``storage``), the cogs loaded from an explicit tuple, and shutdown (``app``).
``python -m bot`` runs it against Discord, or with no token against the local sandbox.

May import: ``cogs``, ``chain`` and ``sandbox`` (no-token mode only); nothing imports ``bot``.
"""
