#!/bin/bash
# tests/infra/podman.sh: a private Podman API service for the integration tests.
#
# Usage: tests/infra/podman.sh start|stop|env
#   start  Install Debian's podman when it is missing (needs root), start its Docker-compatible
#          API service (`podman system service`) as root on a socket of its own and wait until it
#          answers. Starting a service that runs already does nothing.
#   stop   Stop the service and wait until it has exited. Its images stay for the next start.
#   env    Print the client setting as a shell export: eval "$(tests/infra/podman.sh env)"
#            ESB_TEST_PODMAN_HOST  unix://<state>/podman/podman.sock, what CONTAINER_HOST takes
#
# State: ${ESB_TEST_STATE:-<checkout>/.ci-state}/podman holds the images and containers
# (storage/), the run root, the tmp dir, the network configuration, runc's state, the socket, the
# pidfile and the service's log podman.log. ESB_PODMAN_START_TIMEOUT (seconds, default 60) bounds
# start.
#
# It does not touch the machine's podman: its own containers.conf and storage.conf (through
# CONTAINERS_CONF and CONTAINERS_STORAGE_CONF, so that the host's files do not reach it) put
# everything above under the state directory. Podman 4.3 still keeps its cache of which blobs
# it has seen in /var/lib/containers/cache, a cache it shares with any podman of the machine.
# The vfs storage driver works on any filesystem at the cost of full copies of the layers.
# Run every container with `--network none`: the service sets up no container networks.
# Rootful podman gives each container the limits of open files and processes of 1048576 by
# default, above the hard limits of sandboxes whose root lacks CAP_SYS_RESOURCE, where runc then
# fails to start any container ("error setting rlimit type 7"). containers.conf sets them to
# this shell's hard limits instead, the processes' also at most kernel.pid_max, above which the
# kernel refuses them the same way.
set -euo pipefail
SCRIPT_NAME=podman.sh
# shellcheck source-path=SCRIPTDIR
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

STATE_DIR=$STATE_ROOT/podman
SOCKET=$STATE_DIR/podman.sock
PIDFILE=$STATE_DIR/podman.pid
LOG=$STATE_DIR/podman.log
CONTAINERS_CONF=$STATE_DIR/containers.conf
STORAGE_CONF=$STATE_DIR/storage.conf
TMP_DIR=$STATE_DIR/tmp

service_answers() {
  curl --silent --fail --max-time 5 --unix-socket "$SOCKET" http://podman/_ping >/dev/null
}

write_configuration() {
  local open_files processes pid_max
  open_files=$(ulimit -Hn)
  processes=$(ulimit -Hu)
  pid_max=$(cat /proc/sys/kernel/pid_max)
  if [[ $processes == unlimited ]] || ((processes > pid_max)); then
    processes=$pid_max
  fi
  [[ $open_files != unlimited ]] || open_files=1048576
  cat >"$CONTAINERS_CONF" <<EOF
[containers]
default_ulimits = ["nofile=$open_files:$open_files", "nproc=$processes:$processes"]

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
image_copy_tmp_dir = "$TMP_DIR"
runtime = "runc"

[network]
network_config_dir = "$STATE_DIR/network"
EOF
  cat >"$STORAGE_CONF" <<EOF
[storage]
driver = "vfs"
graphroot = "$STATE_DIR/storage"
runroot = "$STATE_DIR/run"
EOF
}

start() {
  install_missing podman=podman curl=curl
  ((EUID == 0)) || die "the test service runs podman as root"
  # Unix socket paths are limited to 107 bytes (conmon reaches its deeper ones through a
  # directory's descriptor).
  ((${#SOCKET} <= 107)) ||
    die "state path too long for unix sockets ($SOCKET): set a shorter ESB_TEST_STATE"
  mkdir -p -- "$STATE_DIR"
  lock_state "$STATE_DIR/lock"

  if service_answers; then
    note "running already: ESB_TEST_PODMAN_HOST=unix://$SOCKET"
    return
  fi
  local podman pid started=$EPOCHREALTIME
  podman=$(command -v podman)
  if pid=$(running_pid "$PIDFILE" "$podman"); then
    note "podman (pid $pid) runs but does not answer yet: waiting for it"
  else
    mkdir -p -- "$TMP_DIR" "$STATE_DIR/network"
    write_configuration
    rm -f -- "$SOCKET"
    pid=$(start_daemon "$LOG" env \
      CONTAINERS_CONF="$CONTAINERS_CONF" \
      CONTAINERS_STORAGE_CONF="$STORAGE_CONF" \
      TMPDIR="$TMP_DIR" \
      "$podman" --tmpdir "$TMP_DIR" --runtime-flag "root=$STATE_DIR/runc" \
      system service --time=0 "unix://$SOCKET")
    echo "$pid" >"$PIDFILE"
  fi
  local timeout=${ESB_PODMAN_START_TIMEOUT:-60}
  if ! await_daemon "$pid" "$timeout" podman service_answers "$LOG" "$SOCKET"; then
    die "podman exited during start"
  fi
  note "service ready in $(seconds_since "$started"): ESB_TEST_PODMAN_HOST=unix://$SOCKET"
}

stop() {
  stop_daemon "$STATE_DIR" "$PIDFILE" "$(command -v podman || echo podman)" podman 60 || true
}

print_env() {
  service_answers || die "not running: start it with $0 start"
  printf 'export ESB_TEST_PODMAN_HOST=%q\n' "unix://$SOCKET"
}

run_command "$@"
