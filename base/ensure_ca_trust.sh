#!/bin/bash
# ensure_ca_trust.sh: make the root CAs mounted into an ESB container trusted by its service, or
# refuse to let the service start without them.
#
# Usage (entrypoint.sh does this before it execs the service; do the same by hand in a running
# container to get the service's trust):
#   trust_exports=$(ensure_ca_trust.sh) && eval "$trust_exports"
#
# Configuration (environment):
#   SSL_CERT_DIR      Directory searched for root CA certificates mounted from the host, default
#                     /etc/esb/ca-certificates. No Debian package owns that path, so a forgotten or
#                     empty mount is detected; /etc/ssl/certs always holds Debian's own CAs and
#                     would satisfy REQUIRE_CA_TRUST without anything being mounted. Every
#                     non-hidden file there (symbolic links followed, so Kubernetes Secret and
#                     ConfigMap volumes work) may hold one or more PEM certificates.
#   REQUIRE_CA_TRUST  true: exit 1 unless at least one usable root CA is found.
#                     false or unset: warn and continue with the image's default trust.
#   ESB_TRUST_DIR     Where the combined trust is written, default /tmp/esb-trust. The image's own
#                     files are never changed, so a non-root user works; with a read-only root
#                     filesystem, mount a tmpfs at /tmp or point ESB_TRUST_DIR at a writable volume.
#
# A usable root CA is a PEM certificate with basicConstraints CA:TRUE that is self-signed and valid
# now. Every rejected certificate is reported on stderr with the reason; a file that holds
# several certificates (a host's bundle, say) contributes those that are usable.
#
# When at least one root CA is accepted, this writes (umask 022: readable by a service that drops
# privileges, writable by no one else):
#   $ESB_TRUST_DIR/ca-bundle.crt  Debian's system bundle followed by the accepted CAs
#   $ESB_TRUST_DIR/certs/         the accepted CAs alone, named <subject hash>.<n> (OpenSSL's CA
#                                 directory layout)
# and prints on stdout, as shell `export` lines:
#   SSL_CERT_FILE       the bundle: OpenSSL, Python's ssl and urllib, httpx, aiohttp, uv
#   REQUESTS_CA_BUNDLE  the bundle: requests and pip, which otherwise trust only certifi's bundle
#   CURL_CA_BUNDLE      the bundle: curl
#   SSL_CERT_DIR        the certs directory. OpenSSL also looks CAs up by hash in SSL_CERT_DIR: left
#                       on the mount, it could find a certificate rejected here (a self-signed
#                       server certificate, say). Running this script again finds the same CAs.
# Clients with a bundle of their own that ignore these variables need their own setting (botocore:
# AWS_CA_BUNDLE).
# When no root CA is accepted and none is required, it prints `unset SSL_CERT_DIR` if that was set:
# httpx, given SSL_CERT_DIR without SSL_CERT_FILE, trusts that directory alone.
#
# Exit status: 0 when the service may start; 1 when it must not (trust required but missing, or a
# CA found but not installable); 2 on a usage error. Diagnostics go to stderr.
set -euo pipefail

readonly DEFAULT_CA_DIR=/etc/esb/ca-certificates
readonly DEFAULT_TRUST_DIR=/tmp/esb-trust
readonly SYSTEM_BUNDLE=/etc/ssl/certs/ca-certificates.crt
readonly ROOT_CA_HINT="a root CA is a PEM certificate (-----BEGIN CERTIFICATE-----) with basicConstraints CA:TRUE, self-signed and not expired"

# The accepted root CAs, one entry per certificate, in the order found.
accepted_pems=()
accepted_hashes=()
accepted_labels=()
# Every PEM certificate inspected so far: a bundle next to its own hash links, or a CA mounted
# twice, is inspected and trusted once.
declare -A seen_pems=()

say() {
  printf 'ensure_ca_trust: %s\n' "$*" >&2
}

fail() {
  say "error: $*"
  exit 1
}

require_ca_trust() {
  case ${REQUIRE_CA_TRUST:-} in
    [Tt][Rr][Uu][Ee] | 1 | [Yy][Ee][Ss]) return 0 ;;
    [Ff][Aa][Ll][Ss][Ee] | 0 | [Nn][Oo] | "") return 1 ;;
    # An unrecognised value must not quietly mean "not required": fail closed.
    *) fail "REQUIRE_CA_TRUST=${REQUIRE_CA_TRUST} is neither true nor false" ;;
  esac
}

# Sets the global array pem_blocks to the PEM certificates in file $1.
read_pem_certificates() {
  local line block="" in_block=false
  pem_blocks=()
  while IFS= read -r line || [[ -n $line ]]; do
    line=${line%$'\r'}
    if [[ $line == "-----BEGIN CERTIFICATE-----" ]]; then
      in_block=true
      block=""
    fi
    if $in_block; then
      block+=$line$'\n'
      if [[ $line == "-----END CERTIFICATE-----" ]]; then
        pem_blocks+=("$block")
        in_block=false
      fi
    fi
  done <"$1"
}

# Inspects the PEM certificate $1. Sets rejection to why it is not a usable root CA (empty when it
# is one), cert_subject and cert_hash.
inspect_certificate() {
  local pem=$1 facts line issuer="" not_after="" is_ca=false expired=false verify_output
  rejection="" cert_subject="" cert_hash=""
  # SSL_CERT_FILE=/dev/null: openssl x509 loads the default CA bundle, a fivefold slowdown.
  # -checkend also exits 1 for an expired certificate, so only empty output means unreadable.
  facts=$(SSL_CERT_FILE=/dev/null openssl x509 -noout -nameopt RFC2253 -subject_hash -subject \
    -issuer -enddate -ext basicConstraints -checkend 0 <<<"$pem" 2>/dev/null) || true
  while IFS= read -r line; do
    case $line in
      subject=*) cert_subject=${line#subject=} ;;
      issuer=*) issuer=${line#issuer=} ;;
      notAfter=*) not_after=${line#notAfter=} ;;
      "Certificate will expire") expired=true ;;
      *[[:space:]]CA:TRUE*) is_ca=true ;;
      [0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]) cert_hash=$line ;;
    esac
  done <<<"$facts"

  if [[ -z $cert_hash ]]; then
    rejection="not a readable X.509 certificate (corrupt PEM data)"
  elif ! $is_ca; then
    rejection="not a CA certificate (no basicConstraints CA:TRUE): mount the root CA that issued it, not a server or client certificate"
  elif $expired; then
    rejection="expired on $not_after"
  elif [[ $issuer != "$cert_subject" ]]; then
    rejection="not self-signed (issued by $issuer): an intermediate CA; mount the root CA instead"
  elif ! verify_output=$(openssl verify -no-CAfile -no-CApath -no-CAstore -check_ss_sig \
    -CAfile /dev/stdin /dev/fd/3 3<<<"$pem" <<<"$pem" 2>&1); then
    # openssl verify reports e.g. "error 9 at 0 depth lookup: certificate is not yet valid".
    while IFS= read -r line; do
      if [[ $line == error\ [0-9]*:* ]]; then
        rejection="fails verification: ${line#*: }"
        break
      fi
    done <<<"$verify_output"
    rejection=${rejection:-fails verification: ${verify_output//$'\n'/; }}
  fi
}

# Appends the usable root CAs in file $1 to the accepted_* arrays; reports the rest.
collect_from_file() {
  local file=$1 count index pem where accepted_here=0 seen_before=0 accepted_subject=""
  if [[ ! -e $file ]]; then
    say "rejected $file: a broken symbolic link"
    return
  elif [[ -d $file ]]; then
    say "rejected $file: a directory (subdirectories are not searched)"
    return
  elif [[ ! -f $file ]]; then
    say "rejected $file: not a regular file"
    return
  elif [[ ! -r $file ]]; then
    say "rejected $file: not readable by uid $(id -u)"
    return
  fi

  read_pem_certificates "$file"
  count=${#pem_blocks[@]}
  if ((count == 0)); then
    say "rejected $file: no PEM certificate (-----BEGIN CERTIFICATE-----) in it"
    return
  fi
  for ((index = 0; index < count; index++)); do
    pem=${pem_blocks[index]}
    if [[ -n ${seen_pems[$pem]:-} ]]; then
      ((seen_before += 1))
      continue
    fi
    seen_pems[$pem]=1
    where=$file
    ((count == 1)) || where+=" (certificate $((index + 1)) of $count)"
    inspect_certificate "$pem"
    if [[ -n $rejection ]]; then
      say "rejected $where${cert_subject:+ [$cert_subject]}: $rejection"
      continue
    fi
    ((accepted_here += 1))
    accepted_subject=$cert_subject
    accepted_pems+=("$pem")
    accepted_hashes+=("$cert_hash")
    accepted_labels+=("$file: $cert_subject")
  done
  if ((accepted_here == 1)); then
    say "trusting $file: $accepted_subject"
  elif ((accepted_here > 1)); then
    say "trusting $file: $accepted_here root CAs"
  elif ((seen_before == count)); then
    say "skipped $file: its certificates were already read from another file"
  fi
}

# Appends the usable root CAs in directory $1 to the accepted_* arrays; reports what is wrong.
collect_root_cas() {
  local dir=$1 entries
  if [[ ! -e $dir ]]; then
    say "SSL_CERT_DIR=$dir does not exist (nothing mounted there?)"
    return
  elif [[ ! -d $dir ]]; then
    say "SSL_CERT_DIR=$dir is not a directory"
    return
  elif [[ ! -r $dir || ! -x $dir ]]; then
    say "SSL_CERT_DIR=$dir is not readable by uid $(id -u)"
    return
  fi
  shopt -s nullglob
  entries=("$dir"/*)
  shopt -u nullglob
  if ((${#entries[@]} == 0)); then
    say "SSL_CERT_DIR=$dir is empty (hidden files are ignored)"
    return
  fi
  local entry
  for entry in "${entries[@]}"; do
    collect_from_file "$entry"
  done
}

# Writes the bundle and the certs directory under $1. The bundle is replaced by a rename: a service
# reading it while this runs again (docker exec) never sees it half-written.
install_trust() {
  local trust_dir=$1 error index name
  [[ $trust_dir == /* ]] || fail "ESB_TRUST_DIR=$trust_dir is not an absolute path"
  umask 022
  if ! error=$(mkdir -p -- "$trust_dir" 2>&1); then
    fail "cannot create ESB_TRUST_DIR=$trust_dir (${error#mkdir: }); mount a tmpfs at /tmp (docker run --tmpfs /tmp) or set ESB_TRUST_DIR to a writable directory"
  fi
  # /tmp is shared: never write where another user could swap the trust under the service.
  if [[ -L $trust_dir || ! -O $trust_dir ]]; then
    fail "ESB_TRUST_DIR=$trust_dir is a symbolic link or belongs to another user than uid $(id -u); remove it or choose another ESB_TRUST_DIR"
  fi
  chmod 0755 -- "$trust_dir"

  # Globals, not locals: the EXIT trap runs after a failing command has unwound this function.
  staged_bundle=$(mktemp "$trust_dir/.ca-bundle.crt.XXXXXX")
  staged_certs=$(mktemp -d "$trust_dir/.certs.XXXXXX")
  trap 'rm -rf -- "$staged_bundle" "$staged_certs"' EXIT

  if [[ -r $SYSTEM_BUNDLE ]]; then
    cat -- "$SYSTEM_BUNDLE" >"$staged_bundle"
  else
    say "warning: $SYSTEM_BUNDLE is missing: only the mounted root CAs will be trusted"
  fi
  for index in "${!accepted_pems[@]}"; do
    printf '# %s\n%s' "${accepted_labels[index]}" "${accepted_pems[index]}" >>"$staged_bundle"
    name=${accepted_hashes[index]}.0
    while [[ -e $staged_certs/$name ]]; do
      name=${name%.*}.$((${name##*.} + 1))
    done
    printf '%s' "${accepted_pems[index]}" >"$staged_certs/$name"
  done
  chmod 0644 -- "$staged_bundle"
  chmod 0755 -- "$staged_certs"

  mv -f -- "$staged_bundle" "$trust_dir/ca-bundle.crt"
  rm -rf -- "$trust_dir/certs"
  mv -- "$staged_certs" "$trust_dir/certs"
  trap - EXIT
}

main() {
  if (($# > 0)); then
    say "usage: ensure_ca_trust.sh (no arguments; configured by SSL_CERT_DIR, REQUIRE_CA_TRUST and ESB_TRUST_DIR)"
    exit 2
  fi
  local source_dir=${SSL_CERT_DIR:-$DEFAULT_CA_DIR} trust_dir=${ESB_TRUST_DIR:-$DEFAULT_TRUST_DIR}
  local required=false
  if require_ca_trust; then
    required=true
  fi

  collect_root_cas "$source_dir"

  if ((${#accepted_pems[@]} == 0)); then
    if $required; then
      say "error: REQUIRE_CA_TRUST=$REQUIRE_CA_TRUST and no usable root CA in SSL_CERT_DIR=$source_dir: the service must not start"
      say "$ROOT_CA_HINT; mount one there (docker run -v /path/to/ca.crt:$source_dir/ca.crt:ro ...) or point SSL_CERT_DIR at it"
      exit 1
    fi
    say "warning: no usable root CA in SSL_CERT_DIR=$source_dir; continuing with the image's default trust because REQUIRE_CA_TRUST is not true ($ROOT_CA_HINT)"
    if [[ -v SSL_CERT_DIR ]]; then
      echo "unset SSL_CERT_DIR"
    fi
    exit 0
  fi

  install_trust "$trust_dir"
  local bundle=$trust_dir/ca-bundle.crt
  printf 'export %s=%q\n' \
    SSL_CERT_FILE "$bundle" \
    REQUESTS_CA_BUNDLE "$bundle" \
    CURL_CA_BUNDLE "$bundle" \
    SSL_CERT_DIR "$trust_dir/certs"
}

main "$@"
