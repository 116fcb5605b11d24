"""Compiled execution: the hot read operations answered by one SQL statement that builds the
response in PostgreSQL, proven equal to Strawberry's executor (tests/graphql_api/compiled).

- `selection`: an operation's fields collected per type (fragments, aliases, merging);
- `sql`: the SQL of each covered type, field for field as the reference resolvers answer;
- `plan`: a document's plan, its per-request checks and variants;
- `front`: the door in front of Strawberry, with the plan cache and the fallback.
"""

from .front import CompiledQueries

__all__ = ["CompiledQueries"]
