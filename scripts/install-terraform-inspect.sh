#!/usr/bin/env bash
# Installs HashiCorp's terraform-config-inspect (`terraform-config-inspect --json DIR`).
# Debian packages it only from trixie on; its one dependency (libc6 >= 2.34) is met by
# bookworm, so on bookworm we fetch trixie's .deb through a PRIVATE apt configuration
# under $TFSTATE_CACHE_DIR and install that one file with the system's apt. The system's
# sources, pins and package lists are never touched, so no other package can drift to trixie.
# Cold: ~4 s (a ~10 MB index + a ~2 MB .deb); warm: exits at once. Only the install step
# needs root: the private apt runs as the caller, into the caller's cache.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

PKG=terraform-config-inspect
command -v "$PKG" >/dev/null && exit 0

# Verify the installed tool on a tiny configuration: JSON out, exit 0, no "diagnostics"
# key (the tool omits it when empty and exits 1 on any error diagnostic).
verify() {
  local tf out
  tf=$(mktemp -d)
  echo 'variable "probe" {}' >"$tf/main.tf"
  out=$(timeout 30 "$PKG" --json "$tf" 2>&1) || { rm -rf "$tf"; die "$PKG --json failed: $out"; }
  rm -rf "$tf"
  grep -q '"probe"' <<<"$out" && ! grep -q '"diagnostics"' <<<"$out" \
    || die "$PKG --json printed unexpected output: $out"
  log "$PKG installed: $(command -v "$PKG")"
}

. /etc/os-release
if [ "${VERSION_CODENAME:-}" != bookworm ]; then
  # trixie and later carry it; older releases lack libc6 2.34, and apt_install says so.
  apt_install "$PKG"
  verify; exit 0
fi

D="$TFSTATE_CACHE_DIR/apt-trixie"
mkdir -p "$D/sources.list.d" "$D/lists/partial" "$D/cache/archives/partial"
# Two test runs starting on a cold machine must not share one apt lists dir at once.
exec 9>"$D/lock"
flock -w 600 9 || die "timed out waiting for another install-terraform-inspect.sh (lock $D/lock)"
command -v "$PKG" >/dev/null && exit 0

# Private apt: only our trixie source, our own lists and cache (Dir::Cache also holds
# pkgcache.bin, which must not overwrite the system's), the system's dpkg status.
# Sandbox::User=root: _apt cannot write into a cache under a 0700 home. DEP-11 and
# translations are of no use for one download and would double the transfer.
papt=(apt-get -q -o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$D/sources.list.d"
  -o "Dir::State::Lists=$D/lists" -o "Dir::Cache=$D/cache" -o APT::Sandbox::User=root
  -o Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false -o Acquire::Languages=none)
# apt retries a silent server for many minutes: bound every network step, and say so.
# net LOG CMD...: run CMD with its output in LOG.
net() {
  local log=$1 rc=0
  shift
  timeout 300 "$@" >"$log" 2>&1 || rc=$?
  [ "$rc" != 124 ] || die "no answer from the Debian archive within 5 minutes (apt-get $(basename "$log" .log); see $log)"
  return "$rc"
}
why() { grep -E '^(E|W|Err):' "$1" | tail -n3; }

deb=$(ls -t "$D/cache/archives/${PKG}_"*.deb 2>/dev/null | head -n1 || true)
if [ -z "$deb" ]; then
  # Mirror the machine's own main Debian entry (same URIs, same Signed-By keyring) with
  # the suite swapped, rather than naming any archive here (as install-kube.sh does).
  src=/etc/apt/sources.list.d/debian.sources
  [ -f "$src" ] || die "$src not found: cannot derive a trixie source for $PKG"
  awk -v RS= -v ORS='\n\n' '$0 ~ /(^|\n)Suites:([^\n]* )?bookworm( |\n|$)/' "$src" \
    | grep -e '^URIs:' -e '^Signed-By:' -e '^$' \
    | sed 's/^URIs:.*/Types: deb\n&\nSuites: trixie\nComponents: main/' >"$D/sources.list.d/trixie.sources"
  grep -q '^URIs:' "$D/sources.list.d/trixie.sources" \
    || die "no stanza with 'Suites: bookworm' in $src: cannot derive a trixie source"

  update() { net "$D/update.log" "${papt[@]}" --error-on=any update; }
  log "apt-get update (private trixie index in $D)"
  if ! update; then
    # trixie's InRelease is signed by the bookworm archive key too, and bookworm's
    # current debian-archive-keyring (2023.3+deb12u2) ships the trixie keys as well; an
    # older keyring that trusts neither any more is upgraded from bookworm itself, once.
    grep -qE 'NO_PUBKEY|EXPKEYSIG|not signed|signature' "$D/update.log" \
      || die "private apt-get update failed: $(why "$D/update.log")"
    log "trixie signature not trusted: upgrading debian-archive-keyring"
    as_root timeout 300 apt-get update -qq >&2 || die "apt-get update failed (or took 5 minutes)"
    as_root timeout 300 env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --only-upgrade \
      debian-archive-keyring >&2 || die "could not upgrade debian-archive-keyring"
    update || die "private apt-get update failed even with an upgraded keyring: $(why "$D/update.log")"
  fi

  log "apt-get download $PKG (trixie)"
  cd "$D/cache/archives" # apt-get download writes into the current directory
  net "$D/download.log" "${papt[@]}" download "$PKG" \
    || die "apt-get download $PKG from trixie failed: $(why "$D/download.log")"
  deb=$(ls -t "$D/cache/archives/${PKG}_"*.deb 2>/dev/null | head -n1 || true)
  [ -n "$deb" ] || die "apt-get download $PKG left no .deb in $D/cache/archives"
fi

# The system's apt checks the .deb's dependencies against what is installed; a local
# file needs no index, so this works offline once the .deb is cached. A .deb that fails
# to install (say, truncated by an interrupted download) is dropped so the next run
# fetches it again.
log "installing $(basename "$deb")"
as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  -o DPkg::Lock::Timeout=300 "$deb" >"$D/install.log" 2>&1 \
  || { rm -f "$deb"; die "could not install $deb: $(why "$D/install.log")"; }
verify
