"""The installed channels: the web, then every entry point in the group `unified_sessions.channels`.

Registering a channel is one entry point (this project's own are in pyproject.toml):

    [project.entry-points."unified_sessions.channels"]
    telegram = "bots.channel:telegram"

The entry point's name is the channel's name; its object is a zero-argument function returning
a `graphql_api.core.channels.Channel` of that name. Names are read without importing anything
(the GraphQL `Channel` enum needs only them); channel modules are imported on first use of
`installed_channels()`. docs/channels.md walks through adding one.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from importlib.metadata import EntryPoint, entry_points

from .core.channels import WEB, Channel
from .core.settings import Settings

GROUP = "unified_sessions.channels"
# A name is stored in chat_sessions.channel and, upper-cased, is a GraphQL enum value.
_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")


class ChannelRegistrationError(RuntimeError):
    pass


@functools.cache
def _entry_points() -> tuple[EntryPoint, ...]:
    """Each name once (an editable install can list a distribution twice), sorted by name:
    installers do not keep the order entry points are declared in."""
    found: dict[str, EntryPoint] = {}
    for point in entry_points(group=GROUP):
        if not _NAME.fullmatch(point.name) or point.name == WEB:
            raise ChannelRegistrationError(
                f"channel entry point {point.name!r} ({point.value}): a channel's name is 1-32 "
                f"characters of a-z 0-9 _, starts with a letter and is not {WEB!r}"
            )
        if found.setdefault(point.name, point).value != point.value:
            raise ChannelRegistrationError(
                f"two channels are registered as {point.name!r}: {found[point.name].value} and "
                f"{point.value}"
            )
    return tuple(found[name] for name in sorted(found))


def channel_names() -> tuple[str, ...]:
    return (WEB, *(point.name for point in _entry_points()))


@functools.cache
def installed_channels() -> tuple[Channel, ...]:
    channels = [Channel(name=WEB, description="the web app")]
    for point in _entry_points():
        channel = point.load()()
        if not isinstance(channel, Channel) or channel.name != point.name:
            raise ChannelRegistrationError(
                f"entry point {point.name!r} ({point.value}) must return a Channel named "
                f"{point.name!r}"
            )
        channels.append(channel)
    return tuple(channels)


def enabled_channels(
    settings: Settings, channels: Iterable[Channel] | None = None
) -> tuple[Channel, ...]:
    """The channels this configuration runs, each checked (`check_settings`: SettingsError for
    a misconfiguration, one clear line before anything starts)."""
    found = installed_channels() if channels is None else tuple(channels)
    running = tuple(channel for channel in found if channel.enabled(settings))
    for channel in running:
        channel.check_settings(settings)
    return running
