"""The compiled documents the differential tests run: the web app's (web/api.js, fields
expanded), the bench's and hand-written variants over the compiled subset."""

from __future__ import annotations

import json

SESSION_FIELDS = """
  sessionId channel agentName title archivedAt isActive updatedAt lastError unreadCount
  lastMessage { id role content createdAt }
"""
DELIVERY_FIELDS = "channel status attempts lastError sentAt"
MESSAGE_FIELDS = f"id role content createdAt via deliveries {{ {DELIVERY_FIELDS} }}"

SESSIONS_QUERY = f"""
query Sessions($channel: Channel, $archived: Boolean, $first: Int, $after: String) {{
  sessions(channel: $channel, archived: $archived, first: $first, after: $after) {{
    edges {{ node {{ {SESSION_FIELDS} }} }}
    pageInfo {{ hasNextPage endCursor }}
  }}
}}"""

SESSION_QUERY = f"""
query Session($sessionId: String!, $last: Int, $before: String) {{
  session(sessionId: $sessionId) {{
    {SESSION_FIELDS}
    messages(last: $last, before: $before) {{
      edges {{ cursor node {{ {MESSAGE_FIELDS} }} }}
      pageInfo {{ hasPreviousPage startCursor }}
    }}
  }}
}}"""

OLDER_MESSAGES_QUERY = f"""
query OlderMessages($sessionId: String!, $last: Int, $before: String) {{
  messages(sessionId: $sessionId, last: $last, before: $before) {{
    edges {{ cursor node {{ {MESSAGE_FIELDS} }} }}
    pageInfo {{ hasPreviousPage startCursor }}
  }}
}}"""

MESSAGE_DELIVERIES_QUERY = f"""
query MessageDeliveries($id: ID!) {{
  node(id: $id) {{
    ... on ChatMessage {{ id deliveries {{ {DELIVERY_FIELDS} }} }}
  }}
}}"""

Q1 = """query Q1($s: String!, $b: String) { messages(sessionId: $s, last: 50, before: $b) { edges { cursor node { id role content createdAt via } } pageInfo { hasPreviousPage startCursor } } }"""
Q2 = """query Q2($first: Int) { sessions(first: $first) { edges { cursor node { id sessionId channel agentName title isActive updatedAt lastMessage { id role content createdAt } } } pageInfo { hasNextPage endCursor } } }"""
Q2T = Q2.replace("sessions(first: $first)", "sessions(first: $first, channel: TELEGRAM)")

ALL_SESSION = """id sessionId channel agentName isActive createdAt updatedAt lastError lastErrorAt
  title archivedAt unreadCount"""
ALL_MESSAGE = "id role content createdAt via deliveries { __typename " + DELIVERY_FIELDS + " }"
ALL_PAGE = "hasNextPage hasPreviousPage startCursor endCursor"

# Every page field, for page sizes below, at and above the number of rows (the start and end
# cursors are picked without sorting in the compiled statement).
PAGE_EDGES = f"""
query PageEdges($channel: Channel, $first: Int) {{
  sessions(channel: $channel, first: $first) {{ edges {{ cursor }} pageInfo {{ {ALL_PAGE} }} }}
}}"""

# Two (three) lists with different arguments in one document; literal arguments.
ALIASED_LISTS = f"""{{
  recent: sessions(first: 2) {{ edges {{ cursor node {{ {ALL_SESSION} }} }} pageInfo {{ {ALL_PAGE} }} }}
  telegram: sessions(channel: TELEGRAM, first: 5) {{ edges {{ node {{ sessionId channel }} }} }}
  gone: sessions(archived: true, first: 100) {{ edges {{ node {{ sessionId archivedAt }} }}
    pageInfo {{ {ALL_PAGE} }} }}
  scheduled: sessions(channel: SCHEDULED, archived: false) {{ edges {{ cursor }} }}
  web: sessions(channel: WEB, first: 1) {{ pageInfo {{ endCursor hasNextPage }} }}
}}"""

FRAGMENTS = f"""
query Fragments($s: String!, $first: Int) {{
  ...Roots
  sessions(first: $first) {{ ...SessionPage }}
}}
fragment Roots on Query {{ session(sessionId: $s) {{ ...SessionBits ... on Node {{ id }} }} }}
fragment SessionPage on ChatSessionConnection {{
  edges {{ ... {{ cursor }} node {{ ...SessionBits ... on ChatSession {{ unreadCount }} }} }}
  pageInfo {{ ...Page }}
}}
fragment SessionBits on ChatSession {{
  __typename {ALL_SESSION}
  lastMessage {{ ...MessageBits ... on Node {{ __typename id }} }}
  sessionId
}}
fragment MessageBits on ChatMessage {{ {ALL_MESSAGE} }}
fragment Page on PageInfo {{ {ALL_PAGE} __typename }}
"""

NODE = f"""query Node($id: ID!) {{
  node(id: $id) {{
    __typename id
    ... on Node {{ id }}
    ... on ChatSession {{ {ALL_SESSION} lastMessage {{ {ALL_MESSAGE} }}
      messages(last: 2) {{ edges {{ node {{ content }} }} pageInfo {{ hasNextPage hasPreviousPage }} }} }}
    ... on ChatMessage {{ {ALL_MESSAGE} __typename }}
  }}
}}"""

TYPENAME_EVERYWHERE = f"""query T($s: String!) {{
  __typename
  sessions(first: 3) {{ __typename edges {{ __typename cursor node {{ __typename sessionId
    lastMessage {{ __typename deliveries {{ __typename }} }} }} }} pageInfo {{ __typename }} }}
  session(sessionId: $s) {{ __typename messages(last: 2) {{ __typename edges {{ __typename
    node {{ __typename }} }} pageInfo {{ __typename {ALL_PAGE} }} }} }}
  messages(sessionId: $s, last: 1) {{ __typename edges {{ __typename cursor }} }}
  t: __typename
}}"""

NESTED_SESSION = f"""query Nested($s: String!, $b: String, $last: Int = 3) {{
  session(sessionId: $s) {{
    sessionId
    newest: messages(last: $last) {{ edges {{ cursor node {{ {ALL_MESSAGE} }} }}
      pageInfo {{ {ALL_PAGE} }} }}
    older: messages(last: 2, before: $b) {{ edges {{ cursor node {{ id content }} }}
      pageInfo {{ {ALL_PAGE} }} }}
    messages {{ pageInfo {{ hasPreviousPage }} }}
  }}
}}"""

SESSIONS_WITH_MESSAGES = """query Lists($first: Int, $channel: Channel, $archived: Boolean) {
  sessions(first: $first, channel: $channel, archived: $archived) { edges { node { sessionId
    messages(last: 2) { edges { node { content } } pageInfo { hasPreviousPage hasNextPage } }
    all: messages { edges { node { id } } } } } } }"""

DEFAULTS = """query Defaults($first: Int = 2, $channel: Channel = WEB, $archived: Boolean = false,
    $s: String = "no-such-session") {
  sessions(first: $first, channel: $channel, archived: $archived) {
    edges { cursor node { sessionId channel } } pageInfo { hasNextPage endCursor } }
  session(sessionId: $s) { sessionId }
}"""

EVERY_ROOT = f"""query Every($s: String!, $id: ID!, $m: ID!) {{
  __typename
  sessions(first: 1) {{ edges {{ node {{ sessionId }} }} }}
  session(sessionId: $s) {{ sessionId lastMessage {{ content }} }}
  messages(sessionId: $s, last: 2) {{ edges {{ cursor node {{ {ALL_MESSAGE} }} }} pageInfo {{ {ALL_PAGE} }} }}
  node(id: $id) {{ id ... on ChatSession {{ sessionId }} }}
  message: node(id: $m) {{ id ... on ChatMessage {{ content }} }}
}}"""

MERGED = """query Merged($first: Int = null, $archived: Boolean = null) {
  sessions(first: $first, archived: $archived) { edges { node { id } }
    ... on ChatSessionConnection { edges { cursor node { sessionId id } } }
    ...More pageInfo { hasNextPage } }
  sessions(archived: $archived, first: $first) { pageInfo { endCursor hasNextPage } }
}
fragment More on ChatSessionConnection { edges { node { ... on Node { id __typename } } }
  pageInfo { startCursor } }"""

OPERATIONS = """query A { sessions(first: 1) { edges { node { sessionId } } } }
query B($s: String!) { session(sessionId: $s) { title } }
mutation C { unlinkTelegram }"""


def literal_document(session_id: str, first: int) -> str:
    """The same questions with literal arguments (a JSON string is a GraphQL string)."""
    s = json.dumps(session_id)
    return f"""{{
  sessions(first: {first}, channel: WEB, archived: false) {{ edges {{ cursor node {{ sessionId }} }} }}
  session(sessionId: {s}) {{ sessionId messages(last: 3) {{ edges {{ cursor }} }} }}
  messages(sessionId: {s}, last: 4, before: null) {{ edges {{ node {{ content }} }} }}
}}"""
