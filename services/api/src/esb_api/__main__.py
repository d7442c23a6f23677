"""Serve the API with uvicorn: `python -m esb_api`."""

import os
from collections.abc import Mapping

import uvicorn

from esb_api.app import create_app

DEFAULT_PORT = 8080


def port_from_environment(environ: Mapping[str, str]) -> int:
    value = environ.get("PORT", "")
    if not value:
        return DEFAULT_PORT
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise ValueError(f"PORT must be an integer from 1 to 65535, got {value!r}")
    return int(value)


def main() -> None:
    try:
        port = port_from_environment(os.environ)
    except ValueError as error:
        raise SystemExit(f"esb_api: {error}") from None
    uvicorn.run(create_app(), host="0.0.0.0", port=port)


if __name__ == "__main__":
    main()
