"""Write the schema as SDL: `python -m graphql_api.schema.export [path]`."""

from __future__ import annotations

import sys
from pathlib import Path

from ..channels import installed_channels
from ..core.settings import PROJECT_ROOT
from . import build_schema

SCHEMA_FILE = PROJECT_ROOT / "schema.graphql"


def schema_sdl() -> str:
    return build_schema(installed_channels()).as_str() + "\n"


def main(argv: list[str]) -> int:
    target = Path(argv[0]) if argv else SCHEMA_FILE
    target.write_text(schema_sdl(), encoding="utf-8")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
