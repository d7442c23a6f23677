# shellcheck shell=bash
# Shared by the service scripts in tests/infra: sourced, not run. Callers set SCRIPT_NAME.

# The checkout these scripts live in, whatever the caller's working directory.
REPO_ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck disable=SC2034 # used by the scripts that source this file
STATE_ROOT=${ESB_TEST_STATE:-$REPO_ROOT/.ci-state}

note() {
  printf '%s: %s\n' "$SCRIPT_NAME" "$*" >&2
}

die() {
  note "error: $*"
  exit 1
}

# Installs the Debian package of every COMMAND=PACKAGE argument whose command is missing.
install_missing() {
  local pair packages=()
  for pair in "$@"; do
    command -v "${pair%%=*}" >/dev/null || packages+=("${pair#*=}")
  done
  ((${#packages[@]} > 0)) || return 0
  if ((EUID != 0)); then
    die "${packages[*]} not installed, and installing needs root: apt-get install ${packages[*]}"
  fi
  note "installing ${packages[*]}"
  # The package lists are missing on a fresh machine or image: fetch them only then.
  if ! apt-cache show -- "${packages[@]}" >/dev/null 2>&1; then
    apt-get update -q >&2
  fi
  # Keep the packages' own services from starting where systemd runs: a system dockerd would
  # write iptables rules, the registry package would listen on every address at port 5000.
  local policy=/usr/sbin/policy-rc.d forbid_services=false
  if [[ ! -e $policy ]]; then
    forbid_services=true
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 0755 "$policy"
  fi
  local status=0
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    -- "${packages[@]}" >&2 || status=$?
  if $forbid_services; then
    rm -f -- "$policy"
  fi
  ((status == 0)) || die "apt-get install ${packages[*]} failed (status $status)"
}

# Serialises start and stop of one service: takes an exclusive lock on file $1 as fd 9.
# Daemons must be started with 9>&- so that they do not hold the lock.
lock_state() {
  exec 9>"$1"
  flock --timeout 300 9 || die "another start or stop has held $1 for 5 minutes"
}

# Succeeds when process $1 exists and has not exited (a zombie has).
process_alive() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [[ ${stat%% *} != Z ]]
}

# Prints the PID recorded in pidfile $1 when that process is alive and runs executable $2.
running_pid() {
  local pid
  pid=$(cat -- "$1" 2>/dev/null) && [[ $pid =~ ^[0-9]+$ ]] || return 1
  process_alive "$pid" || return 1
  # A stale pidfile may name a PID reused by an unrelated process.
  [[ $(readlink "/proc/$pid/exe") == "$(readlink -f "$2")" ]] || return 1
  echo "$pid"
}

# Runs "$@" every 0.1 s until it succeeds, for at most $1 seconds.
wait_until() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.1
  done
}

# Prints the time elapsed since $1, an $EPOCHREALTIME, as seconds with one decimal.
seconds_since() {
  local tenths=$(((${EPOCHREALTIME//[!0-9]/} - ${1//[!0-9]/}) / 100000))
  printf '%d.%ds' $((tenths / 10)) $((tenths % 10))
}

process_gone() {
  ! process_alive "$1"
}

# Waits up to $2 seconds for daemon $3 (pid $1) to pass the check `$4`. When it does not, shows
# the tail of its log $5 and dies if it still runs (it hangs: where $6 says nothing answers);
# returns 1 if it exited, so that the caller can clean up before it dies.
await_daemon() {
  local pid=$1 timeout=$2 name=$3 answers=$4 log=$5 where=$6
  # shellcheck disable=SC2317  # called through wait_until
  answers_or_exited() { "$answers" || process_gone "$pid"; }
  if wait_until "$timeout" answers_or_exited && "$answers"; then
    return 0
  fi
  log_tail "$log"
  if process_alive "$pid"; then
    die "$name (pid $pid) does not answer on $where after ${timeout}s; stop it with $0 stop"
  fi
  return 1
}

# Stops process $1 (named $2 in messages) with SIGTERM, or SIGKILL after $3 seconds.
stop_process() {
  local pid=$1 name=$2 grace=$3
  kill -TERM "$pid" 2>/dev/null || true
  if ! wait_until "$grace" process_gone "$pid"; then
    note "$name (pid $pid) still runs ${grace}s after SIGTERM: killing it"
    kill -KILL "$pid" 2>/dev/null || true
    wait_until 10 process_gone "$pid" || die "$name (pid $pid) survived SIGKILL"
  fi
}

# The `stop` of every service script: under the lock of state directory $1, stops the daemon
# whose pid file $2 names, if it runs executable $3 (named $4 in messages), with SIGTERM, or
# SIGKILL after $5 seconds. Fails, after saying so, when there is nothing to stop.
stop_daemon() {
  local state_dir=$1 pidfile=$2 executable=$3 name=$4 grace=$5 pid
  if [[ ! -d $state_dir ]]; then
    note "not running"
    return 1
  fi
  lock_state "$state_dir/lock"
  if ! pid=$(running_pid "$pidfile" "$executable"); then
    note "not running"
    return 1
  fi
  stop_process "$pid" "$name" "$grace"
  rm -f -- "$pidfile"
  note "stopped"
}

# Starts "$@" as a daemon: in a session of its own so that it outlives the calling shell, its
# process group and a Ctrl-C there, with a clean environment, output appended to log $1.
# Prints its PID.
start_daemon() {
  local log=$1
  shift
  env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    setsid "$@" </dev/null >>"$log" 2>&1 9>&- &
  echo "$!"
}

# Prints the last lines of log $1, for a failure message.
log_tail() {
  printf '%s: last lines of %s:\n' "$SCRIPT_NAME" "$1" >&2
  tail -n 20 -- "$1" | sed 's/^/  /' >&2
}

# The command line every service script takes: `start`, `stop` or `env`, run by the script's own
# functions of those names (`print_env` for `env`).
run_command() {
  case ${1:-} in
    start) start ;;
    stop) stop ;;
    env) print_env ;;
    *)
      echo "usage: $0 start|stop|env" >&2
      exit 2
      ;;
  esac
}
