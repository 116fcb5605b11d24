"""ASGI entry point for `unified-sessions serve` (uvicorn imports it in each worker process)."""

from starlette.applications import Starlette

from .app import create_app
from .core.settings import Settings


def app_from_env() -> Starlette:
    return create_app(Settings.from_env())
