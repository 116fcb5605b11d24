"""What the bot says."""

from __future__ import annotations

from .links import RedeemOutcome

HOW_TO_LINK = (
    "Hi! To chat with me, link this Telegram account to your account first:\n"
    "1. open the web app and choose “Link Telegram”;\n"
    "2. open the link it shows, or send me /start followed by the code.\n"
    "Codes work once and only for a few minutes."
)
WELCOME_LINKED = (
    "Your account is linked: just write to me. /new starts a new conversation, "
    "/unlink disconnects this Telegram account."
)
HELP = (
    "Write to me and I answer; every conversation is saved with your account and shows up in "
    "the web app.\n/new starts a new conversation\n/sessions lists your recent conversations, "
    "/resume N continues one here\n/unlink disconnects this Telegram account"
)
REDEEMED = {
    RedeemOutcome.LINKED: "Linked! This Telegram account is now linked to the account that "
    "created this code: everything you write to me here is saved in that account and shown in "
    "its web app. Write to me to start a conversation; /new starts a fresh one at any time.\n"
    "Not your account, or did not mean to? Send /unlink to undo it.",
    RedeemOutcome.ALREADY_LINKED: "This Telegram account is already linked with that code. "
    "Just write to me.",
    RedeemOutcome.USED: "That code was already used. Get a new one in the web app "
    "(“Link Telegram”) and try again.",
    RedeemOutcome.EXPIRED: "That code has expired. Get a new one in the web app "
    "(“Link Telegram”) and try again.",
    RedeemOutcome.UNKNOWN: "I don't know that code. Check it, or get a new one in the web app "
    "(“Link Telegram”).",
}
LINKED_ELSEWHERE = (
    "This Telegram account is already linked to another account, so I did not link it and "
    "the code is still unused. To link it to the account that created this code instead, "
    "send /unlink first, then /start {code} again."
)
UNLINKED = (
    "Done: this Telegram account is no longer linked. Your conversations stay in your account."
)
NOT_LINKED = "This Telegram account is not linked, so there is nothing to unlink."
NEW_SESSION = "Started a new conversation. Your earlier ones stay in your account."
TEXT_ONLY = "I can only read text messages for now."
AGENT_FAILED = (
    "Sorry, I could not answer that just now. Your message is saved; please try again in a moment."
)
SESSIONS = (
    "Your recent conversations, from every channel (▶ is this chat's):\n{list}\n\n"
    "/resume N continues number N here."
)
NO_SESSIONS = "You have no conversations yet: just write to me."
RESUME_HOW = "Send /resume N with N from 1 to {count}, as /sessions lists them."
RESUME_GONE = "That conversation was just deleted. /sessions lists them again."
RESUMED = "Continuing your {channel} conversation “{name}” here. Write to me."
