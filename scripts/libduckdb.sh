#!/usr/bin/env bash
# DuckDB's own prebuilt library (libduckdb.so, DuckDB 1.4 LTS, with the json, icu,
# parquet and core_functions extensions built in), so that building simulate, load
# and the tests takes minutes instead of the half hour DuckDB's C++ sources need.
#
#   scripts/libduckdb.sh install   fetch it once into the cache, check its checksum,
#                                  and point the clone's .local/duckdb at it
#   scripts/libduckdb.sh path      print the folder that holds libduckdb.so
#
# DuckDB publishes the same library in its Node.js bindings on the npm registry;
# `npm pack` fetches that package by name and version, nothing else is downloaded.
# The cache is $IOT_CACHE_DIR (default ~/.cache/iot-streaming), outside the clone, so
# every clone and CI run on the machine shares one copy. crates/iot-load/build.rs
# links the library it finds at the clone's .local/duckdb and records its folder as
# the binaries' rpath: they run without LD_LIBRARY_PATH.
#
# Where the library cannot be had (no npm, another platform), build DuckDB from
# source instead: cargo build --release --features iot-load/bundled (30+ minutes).
set -euo pipefail

DUCKDB_VERSION=1.4.4
PACKAGE=@duckdb/node-bindings-linux-x64
PACKAGE_VERSION=1.4.4-r.1
PACKAGE_SHA256=8ac460b152cd05a95065a414879bb09e40534b1fb7a80a7afe6969b6ce039029

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${IOT_CACHE_DIR:-$HOME/.cache/iot-streaming}/duckdb/$DUCKDB_VERSION
link=$repo/.local/duckdb

say() { printf 'libduckdb: %s\n' "$*" >&2; }
fail() {
  say "$*"
  say "or build DuckDB from source: cargo build --release --features iot-load/bundled (30+ minutes)"
  exit 1
}

install() {
  if [[ ! -f $cache/libduckdb.so ]]; then
    [[ $(uname -sm) == "Linux x86_64" ]] ||
      fail "the prebuilt library is pinned for Linux x86_64 only; this is $(uname -sm)"
    command -v npm >/dev/null 2>&1 ||
      fail "fetching DuckDB's prebuilt library needs npm (Debian: apt-get install npm)"
    say "fetching DuckDB $DUCKDB_VERSION ($PACKAGE@$PACKAGE_VERSION, 21 MB) into $cache"
    local tmp
    tmp=$(mktemp -d -t libduckdb.XXXXXX)
    trap 'rm -rf "$tmp"' RETURN
    (cd "$tmp" && npm pack --silent "$PACKAGE@$PACKAGE_VERSION" >/dev/null) ||
      fail "npm could not fetch $PACKAGE@$PACKAGE_VERSION"
    local tarball=("$tmp"/*.tgz)
    echo "$PACKAGE_SHA256  ${tarball[0]}" | sha256sum --check --status ||
      fail "$PACKAGE@$PACKAGE_VERSION does not have the checksum pinned here; not using it"
    tar -xzf "${tarball[0]}" -C "$tmp" package/libduckdb.so
    mkdir -p "$cache"
    # Renamed into place last: a half-written library is never in the cache.
    mv "$tmp/package/libduckdb.so" "$cache/libduckdb.so.part"
    mv "$cache/libduckdb.so.part" "$cache/libduckdb.so"
  fi
  if [[ $(readlink "$link" 2>/dev/null) != "$cache" ]]; then
    mkdir -p "$(dirname "$link")"
    ln -sfn "$cache" "$link"
  fi
}

case ${1:-} in
  install) install ;;
  path) install && echo "$cache" ;;
  *)
    sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
