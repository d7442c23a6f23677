"""A service's `/.venv` from its `uv.lock`, and the `uv` binary, as image layers."""
