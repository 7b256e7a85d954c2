"""A mining session's work for the hashing core: block templates, refreshed while it searches.

``Node.mining_job`` builds one per session (chain/adapters/node.py); the hashing core
(chain/adapters/hashcore.py) asks it for header prefixes, one per extra nonce, and the node
solves a found block from the template that nonce was handed out with (``template_for``).
Nothing here touches the store or a chain's lock: the node's refresh callback does, and hands
the job a fresher template to ``offer``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from chain.consensus.block import BlockTemplate
from chain.errors import ChainError

Clock = Callable[[], float]

# How stale a mining session's header may get (seconds of the node's clock) before it is refreshed
# with the current time and the mempool's current transfers (BIP 22 ``curtime``, BIP 23 time rolling).
TEMPLATE_REFRESH_S = 2
# Templates kept per session for the chunks still in flight (each refresh moves to the next extra nonce).
TEMPLATES_KEPT = 16


class TemplateJob:
    """A mining session's work for the hashing core: block templates, refreshed while it searches.

    Every ``refresh_s`` of the node's clock the core asks for the next extra
    nonce (``refresh_due``), and ``header_prefix`` hands out a template dated now
    (``refresh``).  A template with a new body (the mempool's and op pool's current
    contents) is built off the event loop and ``offer``-ed; the core then moves to
    it at once.  A found block is solved from the template of the extra nonce it
    was found with, so it carries the time it was found, within ``refresh_s``.
    """

    def __init__(
        self,
        chain_id: int,
        template: BlockTemplate,
        target: int,
        *,
        refresh: Callable[[BlockTemplate], BlockTemplate] | None = None,
        clock: Clock | None = None,
        refresh_s: float = TEMPLATE_REFRESH_S,
        max_nonce: int = 0xFFFFFFFF,
        follows_tip: bool = True,
    ) -> None:
        self.chain_id = chain_id
        self.tip = template.header.prev_hash
        # False: mining a side branch on purpose; a new main tip does not end the session.
        self.follows_tip = follows_tip
        self.target = target
        self.max_nonce = max_nonce
        self._latest = template
        self._refresh = refresh
        self._clock = clock
        self._refresh_s = refresh_s
        self._built_at = clock() if clock is not None else 0.0
        self._templates: dict[int, BlockTemplate] = {}
        self._offered: BlockTemplate | None = None
        # The body being rebuilt in a thread, if any (``Node.mining_job``); tests await it.
        self.rebuilding: asyncio.Task[None] | None = None

    @property
    def template(self) -> BlockTemplate:
        """The newest template (without its extra nonce)."""
        return self._latest

    def offer(self, template: BlockTemplate) -> None:
        """A template with a fresher body, built elsewhere: handed out from the next extra nonce."""
        if template.header.prev_hash == self.tip:
            self._offered = template

    def take_offer(self) -> BlockTemplate | None:
        offered, self._offered = self._offered, None
        return offered

    def refresh_due(self) -> bool:
        if self._refresh is None or self._clock is None:
            return False
        return self._offered is not None or self._clock() - self._built_at >= self._refresh_s

    def header_prefix(self, extra_nonce: int) -> bytes:
        template = self._templates.get(extra_nonce)
        if template is None:
            if extra_nonce > 0 and self.refresh_due():
                self._latest = self._refresh(self._latest)  # type: ignore[misc]
                self._built_at = self._clock()  # type: ignore[misc]
            template = self._latest.with_extra_nonce(extra_nonce)
            self._templates[extra_nonce] = template
            for old in sorted(self._templates)[:-TEMPLATES_KEPT]:
                del self._templates[old]
        return template.header.prefix()

    def template_for(self, extra_nonce: int) -> BlockTemplate:
        """The template a result found at ``extra_nonce`` was hashed from."""
        template = self._templates.get(extra_nonce)
        if template is None:
            raise ChainError(f"no template for extra nonce {extra_nonce} (it was never handed out, or is too old)")
        return template
