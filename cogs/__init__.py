"""The slash commands: one ``GroupCog`` per domain (mining, wallet, explorer, staking, admin, help).

Each command converts Discord input, makes one call to the façade (``chain.playground.Playground``)
and formats an embed (``embeds``); ``errors`` turns engine errors into ephemeral replies (in the
words ``refusals`` gives each error code) and ``options`` bounds every option. ``services``
builds the façade for the cogs.

May import: ``discord``, ``chain.playground`` and the value, error and constant modules of
``chain/`` that embeds format (listed in ``tests/test_layout.py``); never ``bot``, a store or a
runtime.
"""
