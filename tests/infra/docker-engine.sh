#!/bin/bash
# tests/infra/docker-engine.sh: a private Docker engine for the integration tests.
#
# Usage: tests/infra/docker-engine.sh start|stop|env
#   start  Install Debian's docker.io when dockerd is missing (needs root), start dockerd and wait
#          until it answers. Starting an engine that runs already does nothing.
#   stop   Stop the engine and wait until it has exited. Its images stay for the next start.
#   env    Print the client setting as a shell export: eval "$(tests/infra/docker-engine.sh env)"
#
# State: ${ESB_TEST_STATE:-<checkout>/.ci-state}/docker holds the images, the socket, the pidfile,
# and the engine's log dockerd.log. ESB_DOCKER_START_TIMEOUT (seconds, default 60) bounds start.
#
# The engine has no networking: no bridge and no iptables rules, so it changes nothing on the host
# and needs no NET_ADMIN. Run every container with `docker run --network none`.
# It does not touch a system engine: its own socket, data, exec root, daemon.json and containerd
# namespace. The vfs storage driver works on any filesystem (overlayfs included) at the cost of
# full copies of the layers.
# Debian 12's engine (20.10) speaks API 1.41. Newer clients, like the Docker CLI 28 installed in
# /usr/local/bin on the dev machines and the docker SDK 7, negotiate down to it by themselves:
# DOCKER_API_VERSION is not needed.
set -euo pipefail
SCRIPT_NAME=docker-engine.sh
# shellcheck source-path=SCRIPTDIR
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

STATE_DIR=$STATE_ROOT/docker
SOCKET=$STATE_DIR/docker.sock
PIDFILE=$STATE_DIR/dockerd.pid
LOG=$STATE_DIR/dockerd.log
EXEC_ROOT=$STATE_DIR/exec
# Unix socket paths are limited to 107 bytes; containerd's lives deepest under the exec root.
LONGEST_SOCKET=$EXEC_ROOT/containerd/containerd.sock.ttrpc

engine_answers() {
  docker --host "unix://$SOCKET" version >/dev/null 2>&1
}

# dockerd bind-mounts its data root onto itself and unmounts it only when it exits cleanly: a
# leftover mount would make the state directory impossible to delete.
release_data_root() {
  if mountpoint -q -- "$STATE_DIR/data"; then
    umount -- "$STATE_DIR/data"
  fi
}

start() {
  install_missing dockerd=docker.io docker=docker.io
  ((EUID == 0)) || die "dockerd needs root"
  ((${#LONGEST_SOCKET} <= 107)) ||
    die "state path too long for unix sockets ($LONGEST_SOCKET): set a shorter ESB_TEST_STATE"
  mkdir -p -- "$STATE_DIR"
  lock_state "$STATE_DIR/lock"

  if engine_answers; then
    note "running already: DOCKER_HOST=unix://$SOCKET"
    return
  fi
  local dockerd pid started=$EPOCHREALTIME
  dockerd=$(command -v dockerd)
  if pid=$(running_pid "$PIDFILE" "$dockerd"); then
    note "dockerd (pid $pid) runs but does not answer yet: waiting for it"
  else
    # An empty daemon.json: a host's /etc/docker/daemon.json must not reach this engine.
    echo '{}' >"$STATE_DIR/daemon.json"
    pid=$(start_daemon "$LOG" "$dockerd" \
      --config-file "$STATE_DIR/daemon.json" \
      --host "unix://$SOCKET" \
      --data-root "$STATE_DIR/data" \
      --exec-root "$EXEC_ROOT" \
      --pidfile "$PIDFILE" \
      --containerd-namespace esb-test \
      --containerd-plugins-namespace esb-test-plugins \
      --iptables=false --ip6tables=false --bridge=none \
      --storage-driver=vfs)
  fi
  local timeout=${ESB_DOCKER_START_TIMEOUT:-60}
  if ! await_daemon "$pid" "$timeout" dockerd engine_answers "$LOG" "$SOCKET"; then
    release_data_root
    die "dockerd exited during start"
  fi
  note "engine ready in $(seconds_since "$started"): DOCKER_HOST=unix://$SOCKET"
}

stop() {
  # dockerd stops its containers (10 s each at most) and its containerd before it exits.
  stop_daemon "$STATE_DIR" "$PIDFILE" "$(command -v dockerd || echo dockerd)" dockerd 60 || true
  release_data_root
}

print_env() {
  engine_answers || die "not running: start it with $0 start"
  printf 'export DOCKER_HOST=%q\n' "unix://$SOCKET"
}

run_command "$@"
