#!/bin/bash
# tests/infra/registry.sh: a private OCI registry for the integration tests, with TLS and basic
# auth.
#
# Usage: tests/infra/registry.sh start|stop|env
#   start  Install Debian's docker-registry (distribution 2.8), apache2-utils (htpasswd), curl,
#          openssl and python3 when missing (needs root); make a CA, a server certificate and a
#          user on first use; start the registry on 127.0.0.1 and wait until it answers.
#          Starting a registry that runs already does nothing.
#   stop   Stop the registry and wait until it has exited. Its blobs stay for the next start.
#   env    Print the client settings as shell exports: eval "$(tests/infra/registry.sh env)"
#            ESB_TEST_REGISTRY           host:port, e.g. 127.0.0.1:40123
#            ESB_TEST_REGISTRY_CA        the PEM file of the CA that signed its certificate
#            ESB_TEST_REGISTRY_USER      basic auth user
#            ESB_TEST_REGISTRY_PASSWORD  basic auth password
#
# State: ${ESB_TEST_STATE:-<checkout>/.ci-state}/registry holds the CA, the certificate, the
# htpasswd file, the password, the blobs and the log registry.log.
# The port is a free one chosen at the first start and kept for the next ones (a client's
# credentials and pushed references name it); ESB_TEST_REGISTRY_PORT chooses it instead.
# Docker treats every 127.0.0.0/8 registry as insecure (no TLS check): a test that needs Docker to
# verify TLS must reach the registry through an address of its own, in a network namespace. For
# that, ESB_TEST_REGISTRY_HOST sets the address it listens on and its certificate names (default
# 127.0.0.1), and ESB_TEST_REGISTRY_NETNS a network namespace (`ip netns`) to run it in; give such
# a registry a state directory of its own (ESB_TEST_STATE).
set -euo pipefail
SCRIPT_NAME=registry.sh
# shellcheck source-path=SCRIPTDIR
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

STATE_DIR=$STATE_ROOT/registry
CA_CERT=$STATE_DIR/ca.crt
CA_KEY=$STATE_DIR/ca.key
SERVER_CERT=$STATE_DIR/server.crt
SERVER_KEY=$STATE_DIR/server.key
HTPASSWD=$STATE_DIR/htpasswd
PASSWORD_FILE=$STATE_DIR/password
PORT_FILE=$STATE_DIR/port
PIDFILE=$STATE_DIR/registry.pid
LOG=$STATE_DIR/registry.log
USER_NAME=esb-test
HOST=${ESB_TEST_REGISTRY_HOST:-127.0.0.1}
# The prefix that runs a command in the registry's network namespace, if it has one.
IN_NAMESPACE=()
if [[ -n ${ESB_TEST_REGISTRY_NETNS:-} ]]; then
  IN_NAMESPACE=(ip netns exec "$ESB_TEST_REGISTRY_NETNS")
fi

port() {
  cat -- "$PORT_FILE"
}

registry_answers() {
  [[ -r $PORT_FILE && -r $PASSWORD_FILE ]] || return 1
  curl --silent --fail --max-time 5 --cacert "$CA_CERT" \
    --user "$USER_NAME:$(cat -- "$PASSWORD_FILE")" \
    "https://$HOST:$(port)/v2/" >/dev/null
}

new_key() {
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"
}

# A CA valid for ten years and a server certificate for $HOST valid for one, renewed when it
# expires within a day.
make_certificates() {
  if [[ ! -s $CA_CERT ]]; then
    new_key "$CA_KEY"
    openssl req -x509 -new -key "$CA_KEY" -days 3650 -subj "/CN=ESB test registry CA" \
      -addext "basicConstraints=critical,CA:TRUE" \
      -addext "keyUsage=critical,keyCertSign,cRLSign" \
      -out "$CA_CERT"
  fi
  if [[ ! -s $SERVER_CERT ]] ||
    ! openssl x509 -checkend 86400 -noout -in "$SERVER_CERT" >/dev/null; then
    new_key "$SERVER_KEY"
    openssl req -new -key "$SERVER_KEY" -subj "/CN=$HOST" -out "$STATE_DIR/server.csr"
    printf '%s\n' "basicConstraints=critical,CA:FALSE" "extendedKeyUsage=serverAuth" \
      "subjectAltName=IP:$HOST,DNS:localhost" >"$STATE_DIR/server.ext"
    openssl x509 -req -in "$STATE_DIR/server.csr" -CA "$CA_CERT" -CAkey "$CA_KEY" -days 365 \
      -extfile "$STATE_DIR/server.ext" -out "$SERVER_CERT"
    rm -f -- "$STATE_DIR/server.csr" "$STATE_DIR/server.ext"
  fi
}

make_user() {
  if [[ ! -s $PASSWORD_FILE ]]; then
    openssl rand -hex 16 >"$PASSWORD_FILE"
  fi
  # bcrypt: the only hash that distribution's htpasswd auth accepts.
  htpasswd -B -i -c "$HTPASSWD" "$USER_NAME" <"$PASSWORD_FILE"
}

# Prints port $1 when it is free on $HOST, or any free port for 0; fails when $1 is taken.
free_port() {
  "${IN_NAMESPACE[@]}" python3 - "$HOST" "$1" <<'EOF'
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
  if [[ -n ${ESB_TEST_REGISTRY_PORT:-} ]]; then
    chosen=$ESB_TEST_REGISTRY_PORT
  elif ! { [[ -s $PORT_FILE ]] && chosen=$(free_port "$(port)"); }; then
    chosen=$(free_port 0)
  fi
  echo "$chosen" >"$PORT_FILE"
}

write_config() {
  cat >"$STATE_DIR/config.yml" <<EOF
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: $STATE_DIR/data
  delete:
    enabled: true
http:
  addr: $HOST:$(port)
  # Fixed so that upload sessions survive a restart, and the registry logs no warning about it.
  secret: esb-test-registry
  tls:
    certificate: $SERVER_CERT
    key: $SERVER_KEY
auth:
  htpasswd:
    realm: esb-test-registry
    path: $HTPASSWD
EOF
}

start() {
  install_missing docker-registry=docker-registry htpasswd=apache2-utils curl=curl \
    openssl=openssl python3=python3
  # The keys and the password are for this user only.
  umask 077
  mkdir -p -- "$STATE_DIR"
  lock_state "$STATE_DIR/lock"

  if registry_answers; then
    note "running already: https://$HOST:$(port)"
    return
  fi
  local registry pid started=$EPOCHREALTIME
  registry=$(command -v docker-registry)
  if pid=$(running_pid "$PIDFILE" "$registry"); then
    note "docker-registry (pid $pid) runs but does not answer yet: waiting for it"
  else
    make_certificates
    make_user
    choose_port
    write_config
    # `ip netns exec` execs the registry: the pid stays the registry's.
    pid=$(start_daemon "$LOG" "${IN_NAMESPACE[@]}" "$registry" serve "$STATE_DIR/config.yml")
    echo "$pid" >"$PIDFILE"
  fi
  await_daemon "$pid" 30 docker-registry registry_answers "$LOG" "https://$HOST:$(port)" ||
    die "docker-registry exited during start"
  note "registry ready in $(seconds_since "$started"): https://$HOST:$(port)"
}

stop() {
  stop_daemon "$STATE_DIR" "$PIDFILE" "$(command -v docker-registry || echo docker-registry)" \
    docker-registry 30 || true
}

print_env() {
  registry_answers || die "not running: start it with $0 start"
  printf 'export %s=%q\n' \
    ESB_TEST_REGISTRY "$HOST:$(port)" \
    ESB_TEST_REGISTRY_CA "$CA_CERT" \
    ESB_TEST_REGISTRY_USER "$USER_NAME" \
    ESB_TEST_REGISTRY_PASSWORD "$(cat -- "$PASSWORD_FILE")"
}

run_command "$@"
