#!/usr/bin/env bash
# Builds the agent and collector packages into target/packages/ (docs/rollout.md, "Packages"):
#   aiscout-agent_VERSION-1_amd64.deb       + aiscout-agent-dbgsym_VERSION-1_amd64.ddeb
#   aiscout-collector_VERSION-1_amd64.deb   + aiscout-collector-dbgsym_VERSION-1_amd64.ddeb
#   aiscout-agent-VERSION-1.x86_64.rpm      + aiscout-agent-VERSION.x86_64.debug
#   aiscout-collector-VERSION-1.x86_64.rpm  + aiscout-collector-VERSION.x86_64.debug
#
# Both binaries are linked against glibc 2.17 with cargo-zigbuild (zig from PyPI's ziglang
# package provides the glibc 2.17 stubs; no new Rust target is needed), in the `dist` cargo
# profile (the release settings). The script fails when a binary needs a GLIBC_ symbol version
# above 2.17. Binaries are stripped; their debug symbols ship separately (the .ddeb packages,
# the .debug files with a GNU debuglink in each stripped rpm binary).
#
# Tools it installs when missing (pinned, so every machine builds the same way): cargo-zigbuild,
# cargo-deb, cargo-generate-rpm (crates.io), ziglang (PyPI), binutils and dpkg-dev (Debian).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

GLIBC_FLOOR=2.17
TRIPLE=x86_64-unknown-linux-gnu
PROFILE=dist
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
OUT=$TARGET_DIR/packages
BIN_DIR=$TARGET_DIR/$TRIPLE/$PROFILE
# cargo-generate-rpm packs files as they are: the stripped copies live here (a path relative
# to the workspace, where its manifest entries point).
RPM_STAGE=$ROOT/target/rpm-stage
CARGO_DEB_VERSION=3.8.0
CARGO_GENERATE_RPM_VERSION=0.21.1
CARGO_ZIGBUILD_VERSION=0.24.1
ZIGLANG_VERSION=0.17.1

say() { printf '== %s\n' "$*"; }
die() { printf 'package.sh: %s\n' "$*" >&2; exit 1; }

# On a fresh machine the three tools are built from source, which was 6.5 of a cold CI's
# minutes with their own release profiles (LTO, one crate graph per tool). Built at opt-level 1
# without LTO, into one shared target directory (their common dependencies are built once),
# they cost far less, and they only pack files: their speed does not show.
cargo_tool() { # cargo_tool SUBCOMMAND CRATE VERSION
  if ! command -v "cargo-$1" >/dev/null 2>&1; then
    say "installing $2 $3 (crates.io)"
    CARGO_PROFILE_RELEASE_OPT_LEVEL=1 CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
      CARGO_PROFILE_RELEASE_DEBUG=false \
      cargo install --locked --quiet --target-dir "$ROOT/target/cargo-tools" "$2" --version "$3"
  fi
}

say "tools"
if ! command -v objcopy >/dev/null || ! command -v dpkg-shlibdeps >/dev/null; then
  apt-get update -qq >/dev/null && apt-get install -y -qq binutils dpkg-dev >/dev/null
fi
cargo_tool zigbuild cargo-zigbuild "$CARGO_ZIGBUILD_VERSION"
cargo_tool deb cargo-deb "$CARGO_DEB_VERSION"
cargo_tool generate-rpm cargo-generate-rpm "$CARGO_GENERATE_RPM_VERSION"
if ! python3 -m ziglang version >/dev/null 2>&1; then
  say "installing ziglang $ZIGLANG_VERSION (PyPI)"
  python3 -m pip install --quiet "ziglang==$ZIGLANG_VERSION"
fi
echo "zig $(python3 -m ziglang version), $(cargo-zigbuild --version), $(cargo deb --version), $(cargo generate-rpm --version)"

say "build: cargo zigbuild --profile $PROFILE --target $TRIPLE.$GLIBC_FLOOR (agent, collector)"
start=$(date +%s)
# A GNU build ID in each binary: the -dbgsym packages file the symbols under
# /usr/lib/debug/.build-id/, where gdb and debuginfod look (zig's linker adds none by default).
export CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C link-arg=-Wl,--build-id=sha1"
cargo zigbuild --locked --profile "$PROFILE" --target "$TRIPLE.$GLIBC_FLOOR" \
  -p aiscout-agent -p aiscout-collector --bins
echo "build took $(( $(date +%s) - start )) s"

say "glibc floor: no GLIBC_ symbol version above $GLIBC_FLOOR"
for bin in aiscout-agent aiscout-collector; do
  file=$BIN_DIR/$bin
  [ -x "$file" ] || die "$file: not built"
  highest=$(objdump -T "$file" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n 1)
  [ -n "$highest" ] || die "$bin: no GLIBC_ symbol version found (is it dynamically linked against glibc?)"
  needed=$(readelf -d "$file" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p' | tr '\n' ' ')
  echo "$bin: highest GLIBC_$highest; needs: $needed"
  if [ "$(printf '%s\n%s\n' "$GLIBC_FLOOR" "$highest" | sort -V | tail -n 1)" != "$GLIBC_FLOOR" ]; then
    objdump -T "$file" | grep -E "GLIBC_$highest\b" | head -n 5 >&2
    die "$bin needs GLIBC_$highest, above the $GLIBC_FLOOR floor"
  fi
done

rm -rf "$OUT" "$RPM_STAGE"
mkdir -p "$OUT" "$RPM_STAGE"

say "deb: cargo deb (stripped binary; debug symbols in a -dbgsym .ddeb)"
for pkg in aiscout-agent aiscout-collector; do
  cargo deb --no-build --locked --target "$TRIPLE" --profile "$PROFILE" -p "$pkg" \
    --dbgsym --output "$OUT/"
done

say "rpm: strip into $RPM_STAGE (debug symbols in $OUT/*.debug), cargo generate-rpm"
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
for pkg in aiscout-agent aiscout-collector; do
  debug=$OUT/$pkg-$version.x86_64.debug
  objcopy --only-keep-debug --compress-debug-sections=zlib "$BIN_DIR/$pkg" "$debug"
  chmod 0644 "$debug"
  objcopy --strip-debug --strip-unneeded --add-gnu-debuglink="$debug" "$BIN_DIR/$pkg" "$RPM_STAGE/$pkg"
  # gzip, not the default zstd: every rpm 4 reads gzip payloads, zstd only an rpm built
  # with it (4.14 and later).
  cargo generate-rpm --target "$TRIPLE" --profile "$PROFILE" -p "${pkg#aiscout-}" \
    --payload-compress gzip --output "$OUT/"
done

say "packages ($OUT)"
for f in "$OUT"/*; do
  printf '%10s  %s\n' "$(du -b "$f" | cut -f1)" "$(basename "$f")"
done
agent_deb=$(ls "$OUT"/aiscout-agent_*.deb)
echo "agent .deb: $(( $(stat -c %s "$agent_deb") / 1024 )) KiB (aim: under 10 MiB); installed binary: $(( $(stat -c %s "$RPM_STAGE/aiscout-agent") / 1024 )) KiB"
