"""Permission values and Discord's permission resolution algorithm.

discord.Permissions is reused for flag names -> bits so that tests can say
``manage_webhooks=False`` exactly as they would in discord.py code.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import discord

PermissionsLike = int | discord.Permissions | Iterable[str] | Mapping[str, bool] | None

ALL_PERMISSIONS: int = discord.Permissions.all().value
ADMINISTRATOR: int = discord.Permissions(administrator=True).value
MANAGE_WEBHOOKS: int = discord.Permissions(manage_webhooks=True).value
MANAGE_GUILD: int = discord.Permissions(manage_guild=True).value
SEND_MESSAGES: int = discord.Permissions(send_messages=True).value
VIEW_CHANNEL: int = discord.Permissions(view_channel=True).value
MANAGE_MESSAGES: int = discord.Permissions(manage_messages=True).value
EMBED_LINKS: int = discord.Permissions(embed_links=True).value
READ_MESSAGE_HISTORY: int = discord.Permissions(read_message_history=True).value
ADD_REACTIONS: int = discord.Permissions(add_reactions=True).value

# What a fresh server's @everyone role grants in Discord today (text-relevant subset).
DEFAULT_EVERYONE: int = discord.Permissions(
    view_channel=True,
    send_messages=True,
    send_messages_in_threads=True,
    create_public_threads=True,
    embed_links=True,
    attach_files=True,
    add_reactions=True,
    use_external_emojis=True,
    use_external_stickers=True,
    read_message_history=True,
    use_application_commands=True,
    change_nickname=True,
    connect=True,
    speak=True,
).value

# The bot's managed role as granted by a typical invite link for this project.
DEFAULT_BOT: int = discord.Permissions(
    view_channel=True,
    send_messages=True,
    embed_links=True,
    attach_files=True,
    read_message_history=True,
    add_reactions=True,
    use_application_commands=True,
    manage_webhooks=True,
).value


def to_permission_value(value: PermissionsLike) -> int:
    """Accept the spellings tests naturally use and return the bitfield."""
    if value is None:
        return 0
    if isinstance(value, bool):
        raise TypeError("permissions must be an int, discord.Permissions, flag names or a name->bool mapping")
    if isinstance(value, int):
        return value
    if isinstance(value, discord.Permissions):
        return value.value
    if isinstance(value, Mapping):
        perms = discord.Permissions.none()
        for name, enabled in value.items():
            _check_flag(name)
            setattr(perms, name, bool(enabled))
        return perms.value
    if isinstance(value, str):
        value = [value]
    perms = discord.Permissions.none()
    for name in value:
        _check_flag(name)
        setattr(perms, name, True)
    return perms.value


def apply_flags(current: int, flags: Mapping[str, bool]) -> int:
    perms = discord.Permissions(current)
    for name, enabled in flags.items():
        _check_flag(name)
        setattr(perms, name, bool(enabled))
    return perms.value


def _check_flag(name: str) -> None:
    if name not in discord.Permissions.VALID_FLAGS:
        raise ValueError(f"unknown permission flag {name!r}")


def permission_names(value: int) -> list[str]:
    return [name for name, enabled in discord.Permissions(value) if enabled]
