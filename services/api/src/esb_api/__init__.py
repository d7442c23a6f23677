"""ESB HTTP API: a health endpoint and an in-memory registry of function descriptors."""

from esb_api.app import create_app

__all__ = ["create_app"]
