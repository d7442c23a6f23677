#!/bin/bash
# entrypoint.sh: the entrypoint of every ESB image.
#
# Usage: entrypoint.sh COMMAND [ARG...]   (the image's Cmd supplies the command by default)
#
# Runs ensure_ca_trust.sh, installed beside this script, and exports the trust settings it prints,
# so that the service trusts the root CAs mounted at SSL_CERT_DIR. When that step fails (with
# REQUIRE_CA_TRUST=true and no usable root CA, say), this exits with its status before the service
# starts. Then it execs COMMAND: the service replaces this shell, keeps its PID (1 in a container)
# and receives signals such as docker stop's SIGTERM itself.
#
# The kernel drops signals that a PID 1 has no handler for: a Python service that does not handle
# SIGTERM ignores docker stop until it is killed. Handle SIGTERM, or give the image StopSignal
# SIGINT, for which Python installs a handler (KeyboardInterrupt).
set -euo pipefail

if (($# == 0)); then
  echo "entrypoint.sh: no command given: usage: entrypoint.sh COMMAND [ARG...]; the image's Cmd supplies one, but docker run --entrypoint resets it" >&2
  exit 2
fi

trust_exports=$("$(dirname -- "${BASH_SOURCE[0]}")/ensure_ca_trust.sh") || exit
eval "$trust_exports"
exec "$@"
