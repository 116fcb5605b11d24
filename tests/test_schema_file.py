"""schema.graphql is generated from the code; this fails when someone forgets to regenerate it."""

from graphql_api.schema.export import SCHEMA_FILE, schema_sdl


def test_schema_graphql_matches_the_code() -> None:
    assert SCHEMA_FILE.read_text(encoding="utf-8") == schema_sdl(), (
        "schema.graphql is stale: run `python -m graphql_api.schema.export`"
    )


def test_the_contract_names_are_present() -> None:
    sdl = schema_sdl()
    for name in (
        "enum Channel",
        "enum MessageRole",
        "type ChatSession implements Node",
        "type ChatMessage implements Node",
        "sessions(channel: Channel = null, first: Int = null, after: String = null): ChatSessionConnection!",
        "session(sessionId: String!): ChatSession",
        "messages(sessionId: String!, last: Int = null, before: String = null): ChatMessageConnection!",
        "upsertSession(input: UpsertSessionInput!): ChatSession!",
        "sendMessage(input: SendMessageInput!): SendMessagePayload!",
    ):
        assert name in sdl, name
