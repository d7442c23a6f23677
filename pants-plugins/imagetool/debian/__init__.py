"""Debian bases from pinned .deb packages: lock a package closure, assemble a root filesystem."""
