#!/bin/bash
# Builds scripts/lz4-wasm/lz4.wasm: liblz4's block compressors (lz4.c and
# lz4hc.c) from Debian bookworm's lz4 source package (1.9.4, the liblz4
# mksquashfs links here), compiled by Debian bookworm's Emscripten (3.1.6,
# clang 14) at -O3 with LTO, for src/codecs/lz4-wasm.ts: no imports, and the
# exports memory, LZ4_versionNumber, LZ4_compressBound, LZ4_sizeofState,
# LZ4_sizeofStateHC, LZ4_compress_fast_extState, LZ4_compress_HC_extStateHC,
# malloc and free, under those names.
#
# On a fresh Debian bookworm machine, as root:
#   bash scripts/lz4-wasm/build.sh
# OUT=path overrides the output (default: lz4.wasm beside this script).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${OUT:-$here/lz4.wasm}
work=$(mktemp -d /tmp/lz4-wasm.XXXXXX)
trap 'rm -rf "$work"' EXIT

# Debian's emscripten, and a deb-src line for bookworm.
if [ ! -e /etc/apt/sources.list.d/lz4-wasm-src-bookworm.sources ]; then
  cat > /etc/apt/sources.list.d/lz4-wasm-src-bookworm.sources <<SRC
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi
apt-get update -q
DEBIAN_FRONTEND=noninteractive apt-get install -y -q emscripten dpkg-dev
# Emscripten's JS tools need Debian's node-acorn, which Node outside Debian's nodejs does not find by itself.
export NODE_PATH=/usr/share/nodejs${NODE_PATH:+:$NODE_PATH}

cd "$work"
apt-get source --download-only lz4=1.9.4-1 >/dev/null
dpkg-source -x lz4_*.dsc src >/dev/null
version=$(dpkg-parsechangelog -l src/debian/changelog -S Version)
echo "lz4 $version"

# reg_t (the word lz4 compares and hashes by) 64-bit on wasm too, as on
# x86-64 and its x32 ABI (32-bit pointers, 64-bit registers, like wasm32):
# 8 bytes a step and hash5, where upstream leaves wasm32 with 4 bytes and
# hash4 (a quarter faster here). It changes speed and which matches are
# found, never what a block decodes to.
l=src/lib/lz4.c
perl -0pi -e 's/#if defined\(__x86_64__\)\n  typedef U64    reg_t;/#if defined(__x86_64__) || defined(__wasm__)\n  typedef U64    reg_t;/ or die "lz4.c: reg_t pattern not found\n"' "$l"
grep -q 'defined(__wasm__)' "$l"

# No memory growth (blocks are at most 1 MiB: input, output and the HC state
# fit in 8 MiB), hence no imports; plain export names (-O3 would minify
# them, --profiling-funcs keeps them without changing the code).
emcc -O3 -flto -mbulk-memory src/lib/lz4.c src/lib/lz4hc.c -o lz4.wasm --no-entry --profiling-funcs \
  -sSTANDALONE_WASM=1 -sINITIAL_MEMORY=8MB -sALLOW_MEMORY_GROWTH=0 -sTOTAL_STACK=256KB -sFILESYSTEM=0 \
  -sEXPORTED_FUNCTIONS=_LZ4_versionNumber,_LZ4_compressBound,_LZ4_sizeofState,_LZ4_sizeofStateHC,_LZ4_compress_fast_extState,_LZ4_compress_HC_extStateHC,_malloc,_free
cp lz4.wasm "$out"
echo "wrote $out ($(stat -c %s "$out") bytes) from lz4 $version"
