"""The grammar of image references, `[host[:port]/]path[/path...][:tag][@sha256:hex]`, as the
OCI distribution specification and github.com/distribution/reference define it.

The backend checks target fields and registry options with it, the image tool the references it
reads and the names and tags it writes. Match with `fullmatch`: `$` would accept a trailing
newline.
"""

import re

_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
# A registry host: a domain name (an IPv4 address is one) or an IPv6 address in brackets,
# without a zone; then an optional port.
REGISTRY = re.compile(
    rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
)
# What may separate the alphanumeric runs of a repository path component.
SEPARATOR = re.compile(r"[._]|__|-+")
# One `/`-separated part of a repository path: lowercase, separators between alphanumerics.
PATH_COMPONENT = re.compile(rf"[a-z0-9]+(?:(?:{SEPARATOR.pattern})[a-z0-9]+)*")
REPOSITORY = re.compile(rf"{PATH_COMPONENT.pattern}(?:/{PATH_COMPONENT.pattern})*")
# A repository path, optionally after its registry host.
NAME = re.compile(rf"(?:{REGISTRY.pattern}/)?{REPOSITORY.pattern}")
# The grammar's `\w` is ASCII: Python's `\w` would admit any Unicode letter.
TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
# The one digest algorithm images here are named by.
SHA256_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
# `registry/repository` together, as registries limit it.
MAX_NAME_LENGTH = 255
