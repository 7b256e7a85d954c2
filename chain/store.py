"""Where the store used to be: its names now live in ``chain.storage`` (re-exported here so that
``from chain.store import Store`` keeps working).  No SQL here."""

from chain.storage import *  # noqa: F403
from chain.storage import __all__  # noqa: F401
