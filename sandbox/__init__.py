"""A local, Discord-compatible sandbox (REST + gateway on 127.0.0.1) for end-to-end bot tests.

See ``Sandbox`` for the test API, ``point_discord_py_at`` to aim discord.py at it,
and ``run_terminal`` / ``python -m sandbox`` for the interactive client.
"""

from .discord_py import DiscordPyTarget, point_discord_py_at
from .errors import ApiError, SandboxError, SandboxTimeout
from .faults import Fault, FaultInjector, RateLimitBucket
from .interactions import InteractionHandle, Upload
from .models import Attachment, Channel, Guild, Member, Message, Revision, Role, User, Webhook
from .records import CallbackRecord, GatewayEvent, RequestRecord, SandboxEvent, UploadedFile
from .render import render_message
from .server import Sandbox
from .terminal import run_terminal

__all__ = [
    "ApiError",
    "Attachment",
    "CallbackRecord",
    "Channel",
    "DiscordPyTarget",
    "Fault",
    "FaultInjector",
    "GatewayEvent",
    "Guild",
    "InteractionHandle",
    "Member",
    "Message",
    "RateLimitBucket",
    "RequestRecord",
    "Revision",
    "Role",
    "Sandbox",
    "SandboxError",
    "SandboxEvent",
    "SandboxTimeout",
    "Upload",
    "UploadedFile",
    "User",
    "Webhook",
    "point_discord_py_at",
    "render_message",
    "run_terminal",
]
