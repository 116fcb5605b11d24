"""The app from the environment (`graphql_api.server.app_from_env` wraps it for `unified-sessions
serve`, which uvicorn imports in each worker process)."""

from starlette.applications import Starlette

from .app import create_app
from .core.settings import Settings


def app_from_env() -> Starlette:
    return create_app(Settings.from_env())
