#!/bin/bash
# tests/infra/buildgrid.sh: a REAPI remote cache (BuildGrid) for the integration tests and for
# trying pants.ci.toml locally.
#
# Usage: tests/infra/buildgrid.sh start|stop|env
#   start  Install BuildGrid from PyPI (3rdparty/buildgrid/requirements.lock, pinned with hashes)
#          into a venv of CPython 3.13 (python3.13 on PATH, or a pyenv 3.13) when the venv is
#          missing or the lock changed; start a cache-only server (tests/infra/buildgrid.yml) on
#          127.0.0.1 and wait until it answers. Starting a server that runs already does nothing.
#   stop   Stop the server and wait until it has exited.
#   env    Print the address as a shell export: eval "$(tests/infra/buildgrid.sh env)"
#            ESB_TEST_REMOTE_CACHE  grpc://127.0.0.1:PORT, for [GLOBAL].remote_store_address
#
# State: ${ESB_TEST_STATE:-<checkout>/.ci-state}/buildgrid holds the venv, the blobs, the port,
# the pidfile and the log buildgrid.log. The action cache lives in the server's memory, so every
# start begins with an empty cache. The port is a free one chosen at the first start and kept for
# the next ones while it is free.
set -euo pipefail
SCRIPT_NAME=buildgrid.sh
# shellcheck source-path=SCRIPTDIR
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

STATE_DIR=$STATE_ROOT/buildgrid
VENV=$STATE_DIR/venv
LOCK=$REPO_ROOT/3rdparty/buildgrid/requirements.lock
CONFIG=$REPO_ROOT/tests/infra/buildgrid.yml
PORT_FILE=$STATE_DIR/port
PIDFILE=$STATE_DIR/buildgrid.pid
LOG=$STATE_DIR/buildgrid.log
HOST=127.0.0.1

port() {
  cat -- "$PORT_FILE"
}

server_answers() {
  [[ -r $PORT_FILE && -x $VENV/bin/bgd ]] || return 1
  timeout 20 "$VENV/bin/bgd" capabilities --remote "http://$HOST:$(port)" --instance-name "" \
    >/dev/null 2>&1
}

# Prints the path of a CPython 3.13, the version the lock is resolved for.
find_python313() {
  local candidate
  for candidate in "$(command -v python3.13 || true)" \
    "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.13.*/bin/python3.13; do
    # A pyenv shim on PATH fails when 3.13 is not among pyenv's selected versions.
    if [[ -x $candidate ]] && "$candidate" -c \
      'import sys; assert sys.version_info[:2] == (3, 13); print(sys.executable)' 2>/dev/null; then
      return
    fi
  done
  die "BuildGrid needs CPython 3.13, and none was found (python3.13 on PATH," \
    "${PYENV_ROOT:-$HOME/.pyenv}/versions/3.13.*). Fix: pyenv install 3.13"
}

# (Re)builds the venv unless it was built from the current lock.
install_buildgrid() {
  local fingerprint python
  fingerprint=$(sha256sum <"$LOCK")
  if [[ $(cat -- "$VENV/.installed-from" 2>/dev/null) == "$fingerprint" ]]; then
    return
  fi
  python=$(find_python313)
  note "installing BuildGrid into $VENV with $python"
  rm -rf -- "$VENV"
  "$python" -m venv "$VENV"
  # The machines' global pip configuration adds indexes and constraints; the lock needs only PyPI.
  PIP_CONFIG_FILE=/dev/null "$VENV/bin/pip" install --quiet --disable-pip-version-check \
    --no-deps --require-hashes --only-binary :all: -r "$LOCK" >&2 ||
    die "installing BuildGrid from PyPI failed (see pip's output above)"
  echo "$fingerprint" >"$VENV/.installed-from"
}

# Prints port $1 when it is free on $HOST, or any free port for 0; fails when $1 is taken.
free_port() {
  "$VENV/bin/python3" - "$HOST" "$1" <<'EOF'
import socket, sys
with socket.socket() as s:
    try:
        s.bind((sys.argv[1], int(sys.argv[2])))
    except OSError:
        sys.exit(1)
    print(s.getsockname()[1])
EOF
}

choose_port() {
  local chosen
  if ! { [[ -s $PORT_FILE ]] && chosen=$(free_port "$(port)"); }; then
    chosen=$(free_port 0)
  fi
  echo "$chosen" >"$PORT_FILE"
}

start() {
  mkdir -p -- "$STATE_DIR"
  lock_state "$STATE_DIR/lock"

  if server_answers; then
    note "running already: grpc://$HOST:$(port)"
    return
  fi
  local pid started=$EPOCHREALTIME
  if pid=$(running_pid "$PIDFILE" "$VENV/bin/python3"); then
    note "BuildGrid (pid $pid) runs but does not answer yet: waiting for it"
  else
    install_buildgrid
    choose_port
    # The blobs of the last server: the action cache that referenced them died with it.
    rm -rf -- "$STATE_DIR/cas"
    pid=$(start_daemon "$LOG" env ESB_BUILDGRID_ADDRESS="$HOST:$(port)" \
      ESB_BUILDGRID_DATA="$STATE_DIR" "$VENV/bin/bgd" server start "$CONFIG")
    echo "$pid" >"$PIDFILE"
  fi
  await_daemon "$pid" 60 BuildGrid server_answers "$LOG" "grpc://$HOST:$(port)" ||
    die "BuildGrid exited during start"
  note "BuildGrid ready in $(seconds_since "$started"): grpc://$HOST:$(port)"
}

stop() {
  stop_daemon "$STATE_DIR" "$PIDFILE" "$VENV/bin/python3" BuildGrid 30 || true
}

print_env() {
  server_answers || die "not running: start it with $0 start"
  printf 'export ESB_TEST_REMOTE_CACHE=%q\n' "grpc://$HOST:$(port)"
}

run_command "$@"
