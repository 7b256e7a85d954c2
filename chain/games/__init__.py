"""The games' mathematics (issue 11): the figures each attack game shows and is checked against.

``double_spend``: the attacker's chance to catch up from z blocks behind, from the Bitcoin paper
(Nakamoto 2008, section 11) and exactly for the block-by-block race, and a seeded simulation of the
race. ``selfish_mining``: Eyal and Sirer's selfish-mining state machine ("Majority is not Enough",
2014) as a seeded simulation, its closed-form relative revenue and its profitability threshold.
``chance``: the random source the simulations are handed and the checks on exact fractions.

Pure: no clock, no I/O, no randomness of its own (a ``random.Random`` or any ``randrange`` source is
an argument), no binary floats (exact ``Fraction``s; ``Decimal`` for the paper's e^-λ series).
May import the vocabulary and the rule folders (``pow``, ``ledger``, ``pos``); never ``consensus``
(its peer at the same rank), adapters or the front door.
"""
