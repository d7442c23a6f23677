"""A client of the OCI distribution API: pull images by digest into OCI layouts, push layouts.

- `reference`: image references, read as Docker reads them.
- `credentials`: Docker config files and credential helpers.
- `auth`: `WWW-Authenticate` challenges, Basic auth and Bearer tokens.
- `transport`: endpoints (TLS, plain HTTP, mirrors), retries, and the errors users see.
- `pull`, `push`: the two operations; `commands`: the `pull-image` and `push-image` subcommands.
"""
