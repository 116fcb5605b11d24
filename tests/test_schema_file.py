"""schema.graphql is generated from the code; this fails when someone forgets to regenerate it."""

from graphql import build_schema

from graphql_api.schema.export import SCHEMA_FILE, schema_sdl

# The contract's names (../shared/DESIGN.md): a field and the arguments it must take. Additions
# (more fields, more optional arguments) keep the contract; a missing or renamed one breaks it.
CONTRACT = {
    "Query": {
        "sessions": {"channel", "first", "after"},
        "session": {"sessionId"},
        "messages": {"sessionId", "last", "before"},
        "node": {"id"},
    },
    "Mutation": {
        "upsertSession": {"input"},
        "sendMessage": {"input"},
        "markSessionRead": {"input"},
        "renameSession": {"input"},
        "archiveSession": {"input"},
        "unarchiveSession": {"input"},
    },
    "Subscription": {"sessionEvents": {"channel"}, "messageEvents": {"sessionId", "after"}},
    "ChatSession": {"unreadCount": set(), "title": set(), "lastMessage": set()},
    "ChatMessage": {"via": set(), "deliveries": set()},
    "MessageEvent": {"kind": set(), "message": set(), "cursor": set(), "text": set()},
    "SessionEvent": {"kind": set(), "sessionId": set(), "session": set()},
}
ENUMS = {
    "Channel": {"WEB", "TELEGRAM", "SCHEDULED"},
    "MessageRole": {"USER", "ASSISTANT", "SYSTEM", "TOOL"},
    "SessionEventKind": {"CREATED", "UPDATED", "DELETED"},
    "MessageEventKind": {"ADDED", "REPLY_PROGRESS", "REPLY_FAILED"},
    "DeliveryStatus": {"PENDING", "SENT", "FAILED"},
}


def test_schema_graphql_matches_the_code() -> None:
    assert SCHEMA_FILE.read_text(encoding="utf-8") == schema_sdl(), (
        "schema.graphql is stale: run `python -m graphql_api.schema.export`"
    )


def test_the_contract_names_are_present() -> None:
    schema = build_schema(schema_sdl())
    for type_name, fields in CONTRACT.items():
        graphql_type = schema.get_type(type_name)
        assert graphql_type is not None, type_name
        for field, arguments in fields.items():
            assert field in graphql_type.fields, f"{type_name}.{field}"  # type: ignore[union-attr]
            given = set(graphql_type.fields[field].args)  # type: ignore[union-attr]
            assert arguments <= given, f"{type_name}.{field}({arguments - given})"
    for enum_name, values in ENUMS.items():
        enum = schema.get_type(enum_name)
        assert enum is not None and values <= set(enum.values), enum_name  # type: ignore[union-attr]
    for interface_user in ("ChatSession", "ChatMessage"):
        node = schema.get_type(interface_user)
        assert [i.name for i in node.interfaces] == ["Node"]  # type: ignore[union-attr]
