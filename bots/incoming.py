"""What a Telegram message says, as the text stored in the session and given to the agent.

A text message is its text. Media with a caption is the caption, after a marker naming the media,
because the agent only gets text and the media itself is not downloaded:

    [photo] the caption
    [file: report.pdf] the caption     ([file] when Telegram gives no file name)
    [video] / [animation] / [voice message] / [audio: name.mp3] / [media] the caption

Media without a caption, and anything else without text (stickers, locations...), says nothing:
`None`, and the bot answers that it reads only text.
"""

from __future__ import annotations

from aiogram.types import Message


def media_marker(message: Message) -> str:
    """A short bracketed name for the media a captioned message carries."""
    # An animation (GIF) also comes with `document` set, for old clients: look at it first.
    if message.photo:
        return "[photo]"
    if message.animation:
        return "[animation]"
    if message.video:
        return "[video]"
    if message.voice:
        return "[voice message]"
    if message.audio:
        return _named("audio", message.audio.file_name)
    if message.document:
        return _named("file", message.document.file_name)
    return "[media]"


def _named(kind: str, file_name: str | None) -> str:
    name = " ".join((file_name or "").split())  # one line, whatever the sender's client sent
    return f"[{kind}: {name}]" if name else f"[{kind}]"


def incoming_text(message: Message) -> str | None:
    """The message's text, its caption after a media marker, or None when it has neither."""
    if message.text is not None:
        return message.text
    if message.caption:
        return f"{media_marker(message)} {message.caption}"
    return None
