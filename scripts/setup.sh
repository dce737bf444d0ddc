#!/usr/bin/env bash
# Installs the servers the integration tests start as private instances, Debian's nats-server and
# postgresql packages, erlang-base (Erlang/OTP, the oracle of the supervision conformance test),
# chromium (the real browser the dashboard test drives with playwright-core) and iptables (the chaos net lab's
# packet filter for partitions, loss, duplication and delay between network namespaces).
#
#   scripts/setup.sh               install them (apt-get; needs root or sudo)
#   scripts/setup.sh --if-needed   do nothing, quietly, when nats-server, initdb, pg_ctl, escript, chromium and iptables are present
#
# It never fails when the binaries are present: a failed install then only prints a warning.
set -euo pipefail

if_needed=false
for arg in "$@"; do
  case "$arg" in
    --if-needed) if_needed=true ;;
    -h | --help)
      sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "setup: unknown argument '$arg' (use --if-needed or --help)" >&2
      exit 2
      ;;
  esac
done

# A binary on PATH or in one of the given directories (globs allowed).
have() {
  local name="$1" dir
  shift
  command -v "$name" >/dev/null 2>&1 && return 0
  for dir in "$@"; do
    [ -x "$dir/$name" ] && return 0
  done
  return 1
}

have_nats() { have nats-server /usr/sbin /usr/local/sbin /usr/bin; }
# initdb and pg_ctl are not on PATH in Debian's postgresql packages: they live in /usr/lib/postgresql/<v>/bin.
have_pg() { have initdb /usr/lib/postgresql/*/bin && have pg_ctl /usr/lib/postgresql/*/bin; }
have_erlang() { have escript /usr/bin /usr/local/bin; }
have_chromium() { have chromium /usr/bin /usr/local/bin; }
have_iptables() { have iptables /usr/sbin /sbin && have iptables-restore /usr/sbin /sbin; }

missing() {
  local list=()
  have_nats || list+=(nats-server)
  have initdb /usr/lib/postgresql/*/bin || list+=(initdb)
  have pg_ctl /usr/lib/postgresql/*/bin || list+=(pg_ctl)
  have_erlang || list+=(escript)
  have_chromium || list+=(chromium)
  have_iptables || list+=(iptables)
  echo "${list[*]:-}"
}

if $if_needed && have_nats && have_pg && have_erlang && have_chromium && have_iptables; then
  exit 0
fi

if $if_needed; then
  echo "setup: missing: $(missing)"
fi

sudo=()
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then
  sudo=(sudo)
fi

packages=(nats-server postgresql erlang-base chromium iptables)
echo "setup: installing Debian's ${packages[*]} packages${sudo[*]:+ (with sudo)}"
echo "setup: ${sudo[*]:+${sudo[*]} }apt-get update && ${sudo[*]:+${sudo[*]} }apt-get install -y --no-install-recommends ${packages[*]}"
status=0
{
  "${sudo[@]}" apt-get update &&
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${packages[@]}"
} || status=$?

if have_nats && have_pg && have_erlang && have_chromium && have_iptables; then
  if [ "$status" -ne 0 ]; then
    echo "setup: warning: apt-get failed (exit $status), but nats-server, initdb, pg_ctl, escript, chromium and iptables are present" >&2
  fi
  echo "setup: nats-server, initdb, pg_ctl, escript, chromium and iptables are present"
  exit 0
fi

echo "setup: still missing after the install: $(missing)" >&2
if [ "$(id -u)" -ne 0 ] && [ "${#sudo[@]}" -eq 0 ]; then
  echo "setup: this user is not root and has no sudo; install ${packages[*]} as root" >&2
fi
exit 1
