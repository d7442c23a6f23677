#!/bin/bash
# tests/infra/qemu.sh: QEMU user-mode emulation of arm64, so that the Docker engine of the
# integration tests runs linux/arm64 images (`docker run --platform linux/arm64`).
#
# Usage: tests/infra/qemu.sh start|stop|env
#   start  Install Debian's qemu-user-static when qemu-aarch64-static is missing (needs root),
#          mount binfmt_misc when it is not mounted, and register /usr/bin/qemu-aarch64-static
#          for aarch64 ELF binaries with the magic and mask of the package's
#          /usr/lib/binfmt.d/qemu-aarch64.conf. When an enabled aarch64 entry exists already,
#          whoever made it, it is left as it is and start does nothing.
#   stop   Remove the entry and unmount binfmt_misc, each only if start made it.
#   env    Print nothing (the tests need no setting); fails when no enabled aarch64 entry exists.
#
# State: ${ESB_TEST_STATE:-<checkout>/.ci-state}/qemu records what start did: `registered` holds
# the name of the entry it registered, `mounted` says that it mounted binfmt_misc.
#
# The entry has the F (fix-binary) flag: the kernel opens the interpreter at registration, so
# that it runs binaries in every container, none of which has /usr/bin/qemu-aarch64-static.
# binfmt_misc is the kernel's, not this state directory's: the entry serves every engine on the
# machine, and the stop of the state directory whose start registered it removes it for all.
set -euo pipefail
SCRIPT_NAME=qemu.sh
# shellcheck source-path=SCRIPTDIR
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

STATE_DIR=$STATE_ROOT/qemu
REGISTERED=$STATE_DIR/registered
MOUNTED=$STATE_DIR/mounted
BINFMT=/proc/sys/fs/binfmt_misc
INTERPRETER=/usr/bin/qemu-aarch64-static
# The package's registration line, `:name:type:offset:magic:mask:interpreter:flags`.
PACKAGE_ENTRY=/usr/lib/binfmt.d/qemu-aarch64.conf
# Our own name, so that stop never removes an entry of the same package registered by others.
ENTRY_NAME=esb-qemu-aarch64

# Prints bytes written with \xHH escapes (binfmt_misc's syntax) as lowercase hex digits.
escaped_to_hex() {
  printf '%b' "$1" | od -An -v -tx1 | tr -d ' \n'
}

# Prints hex string $1 with every byte ANDed with the same byte of hex string $2.
masked_hex() {
  local value=$1 mask=$2 i masked=''
  for ((i = 0; i < ${#value}; i += 2)); do
    printf -v masked '%s%02x' "$masked" $((16#${value:i:2} & 16#${mask:i:2}))
  done
  echo "$masked"
}

# Reads the package's line into ENTRY_OFFSET, ENTRY_MAGIC, ENTRY_MASK and ENTRY_FLAGS (the magic
# and mask keep their \xHH escapes, as register takes them).
read_package_entry() {
  [[ -r $PACKAGE_ENTRY ]] ||
    die "$PACKAGE_ENTRY is missing: reinstall it with apt-get install --reinstall qemu-user-static"
  local line type
  line=$(grep -v '^[[:space:]]*\(#\|$\)' "$PACKAGE_ENTRY" | head -n 1)
  IFS=: read -r _ _ type ENTRY_OFFSET ENTRY_MAGIC ENTRY_MASK _ ENTRY_FLAGS <<<"$line"
  [[ $type == M && -n $ENTRY_MAGIC && -n $ENTRY_MASK ]] ||
    die "$PACKAGE_ENTRY does not register a magic and a mask: $line"
  # F: the interpreter is opened now, from the host, for binaries in any mount namespace.
  [[ $ENTRY_FLAGS == *F* ]] || ENTRY_FLAGS+=F
}

# Succeeds when entry file $1 is enabled and matches aarch64 ELF binaries as the package's does.
matches_aarch64() {
  local line key value enabled=false offset='' magic='' mask=''
  while read -r line; do
    key=${line%% *}
    value=${line#* }
    case $key in
      enabled) enabled=true ;;
      offset) offset=$value ;;
      magic) magic=$value ;;
      mask) mask=$value ;;
    esac
  done <"$1"
  local want_magic want_mask
  want_magic=$(escaped_to_hex "$ENTRY_MAGIC")
  want_mask=$(escaped_to_hex "$ENTRY_MASK")
  $enabled && [[ ${offset:-0} == "${ENTRY_OFFSET:-0}" && ${mask:-} == "$want_mask" ]] &&
    [[ $(masked_hex "$magic" "$want_mask") == "$(masked_hex "$want_magic" "$want_mask")" ]]
}

# Prints the path of the first enabled entry for aarch64 binaries.
aarch64_entry() {
  local entry
  for entry in "$BINFMT"/*; do
    [[ $entry == "$BINFMT/register" || $entry == "$BINFMT/status" ]] && continue
    if matches_aarch64 "$entry"; then
      echo "$entry"
      return
    fi
  done
  return 1
}

mount_binfmt() {
  if mountpoint -q -- "$BINFMT"; then
    return
  fi
  rm -f -- "$MOUNTED"
  mount -t binfmt_misc binfmt_misc "$BINFMT" || die "mounting binfmt_misc on $BINFMT failed"
  touch -- "$MOUNTED"
  note "mounted binfmt_misc on $BINFMT"
}

start() {
  install_missing qemu-aarch64-static=qemu-user-static
  ((EUID == 0)) || die "registering a binfmt_misc entry needs root"
  mkdir -p -- "$STATE_DIR"
  lock_state "$STATE_DIR/lock"
  read_package_entry
  mount_binfmt
  [[ $(cat -- "$BINFMT/status") == enabled ]] ||
    die "binfmt_misc is disabled on this machine (echo 1 > $BINFMT/status enables it)"

  local entry
  if entry=$(aarch64_entry); then
    if [[ $entry == "$BINFMT/$(cat -- "$REGISTERED" 2>/dev/null)" ]]; then
      note "registered already: $entry"
      return
    fi
    rm -f -- "$REGISTERED"
    grep -qx 'flags: .*F.*' "$entry" ||
      note "warning: $entry lacks the F flag: containers cannot run arm64 binaries through it"
    note "$entry handles aarch64 already: left as it is"
    return
  fi
  # A disabled entry of our name, left by an earlier run, would make the registration fail.
  if [[ -e $BINFMT/$ENTRY_NAME ]]; then
    echo -1 >"$BINFMT/$ENTRY_NAME"
  fi
  printf ':%s:M:%s:%s:%s:%s:%s' "$ENTRY_NAME" "$ENTRY_OFFSET" "$ENTRY_MAGIC" "$ENTRY_MASK" \
    "$INTERPRETER" "$ENTRY_FLAGS" >"$BINFMT/register" ||
    die "registering $INTERPRETER in $BINFMT/register failed"
  echo "$ENTRY_NAME" >"$REGISTERED"
  note "registered $INTERPRETER for aarch64 binaries as $BINFMT/$ENTRY_NAME"
}

# Names of the entries binfmt_misc holds.
entries() {
  find "$BINFMT" -mindepth 1 -maxdepth 1 ! -name register ! -name status -printf '%f\n'
}

stop() {
  if [[ ! -d $STATE_DIR ]]; then
    note "nothing to undo"
    return
  fi
  lock_state "$STATE_DIR/lock"
  local name
  if name=$(cat -- "$REGISTERED" 2>/dev/null); then
    if [[ -e $BINFMT/$name ]]; then
      echo -1 >"$BINFMT/$name"
      note "removed $BINFMT/$name"
    fi
    rm -f -- "$REGISTERED"
  fi
  if [[ -e $MOUNTED ]] && mountpoint -q -- "$BINFMT"; then
    if [[ -n $(entries) ]]; then
      # Others registered entries after start mounted it: unmounting would hide them from
      # whoever is to remove them.
      note "binfmt_misc left mounted: it holds entries of others ($(entries | paste -sd ' '))"
    else
      umount -- "$BINFMT"
      note "unmounted $BINFMT"
    fi
  fi
  rm -f -- "$MOUNTED"
}

print_env() {
  read_package_entry
  if ! mountpoint -q -- "$BINFMT" || ! aarch64_entry >/dev/null; then
    die "no enabled aarch64 entry in $BINFMT: start it with $0 start"
  fi
}

run_command "$@"
