#!/bin/bash
# Builds scripts/xz-wasm/liblzma.wasm: liblzma from Debian's xz-utils source
# package, compiled by Debian bookworm's Emscripten (3.1.6, clang 14) at -O3
# with LTO, for src/codecs/xz-wasm.ts: one import (env.emscripten_resize_heap)
# and the exports memory, __wasm_call_ctors, lzma_version_string,
# lzma_stream_buffer_encode, malloc and free (rename.mjs names them).
#
# On a fresh Debian bookworm machine, as root:
#   bash scripts/xz-wasm/build.sh            # xz-utils 5.8.1 from trixie's source (default)
#   XZ_SUITE=bookworm bash scripts/xz-wasm/build.sh   # xz-utils 5.4.1 (same speed and output)
# OUT=path overrides the output (default: liblzma.wasm beside this script).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
suite=${XZ_SUITE:-trixie}
out=${OUT:-$here/liblzma.wasm}
work=$(mktemp -d /tmp/xz-wasm.XXXXXX)
trap 'rm -rf "$work"' EXIT

# Debian's emscripten, and a deb-src line for the suite whose xz-utils is built.
if [ ! -e /etc/apt/sources.list.d/xz-wasm-src-$suite.sources ]; then
  cat > /etc/apt/sources.list.d/xz-wasm-src-$suite.sources <<SRC
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: $suite
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi
apt-get update -q
DEBIAN_FRONTEND=noninteractive apt-get install -y -q emscripten dpkg-dev make
# Emscripten's JS tools need Debian's node-acorn, which Node outside Debian's nodejs does not find by itself.
export NODE_PATH=/usr/share/nodejs${NODE_PATH:+:$NODE_PATH}

cd "$work"
# The suite's newest xz-utils; should a mirror lack its files, the next version listed.
fetched=
for v in $(apt-cache showsrc xz-utils | awk '/^Version:/ {print $2}' | sort -rV | uniq); do
  if [ "$suite" = bookworm ] && [[ "$v" != 5.4.* ]]; then continue; fi
  if [ "$suite" = trixie ] && [[ "$v" != 5.8.* ]]; then continue; fi
  if apt-get source --download-only "xz-utils=$v" >/dev/null 2>&1; then fetched=$v; break; fi
  rm -f xz-utils_*
done
[ -n "$fetched" ] || { echo "cannot download xz-utils' source for $suite" >&2; exit 1; }
dpkg-source -x xz-utils_*.dsc src >/dev/null
version=$(dpkg-parsechangelog -l src/debian/changelog -S Version)
echo "xz-utils $version"

# lzma_memcmplen (the match finders' inner loop): take the 8-bytes-at-a-time
# path on wasm too (wasm32 has native 64-bit loads and i64.ctz); upstream
# keeps it for 64-bit size_t (5.8) or x86-64 (5.4), leaving wasm32 with 4
# bytes at a time. This changes speed only, never the output.
m=src/src/liblzma/common/memcmplen.h
perl -0pi -e 's/SIZE_MAX == UINT64_MAX\)/(SIZE_MAX == UINT64_MAX || defined(__wasm__)))/ or s/&& defined\(__x86_64__\)\) \\/&& (defined(__x86_64__) || defined(__wasm__))) \\/ or die "memcmplen.h: pattern not found\n"' "$m"
grep -q '__wasm__' "$m"

flags="-O3 -flto -mbulk-memory"
mkdir build && cd build
extra=()
if ../src/configure --help | grep -q -- --disable-arm64-crc32; then extra+=(--disable-arm64-crc32); fi
if ../src/configure --help | grep -q -- --disable-loongarch-crc32; then extra+=(--disable-loongarch-crc32); fi
emconfigure ../src/configure --host=wasm32-unknown-emscripten \
  --disable-shared --enable-static --disable-threads \
  --disable-xz --disable-xzdec --disable-lzmadec --disable-lzmainfo --disable-lzma-links \
  --disable-scripts --disable-doc --disable-nls --disable-microlzma --disable-lzip-decoder \
  --disable-symbol-versions --disable-assembler --disable-clmul-crc "${extra[@]}" \
  --enable-encoders=lzma1,lzma2,x86,powerpc,ia64,arm,armthumb,arm64,sparc \
  --enable-decoders=lzma1,lzma2 --enable-match-finders=hc3,hc4,bt4 --enable-checks=crc32 \
  --enable-unaligned-access \
  CFLAGS="$flags" > configure.log 2>&1 || { tail -30 configure.log; exit 1; }
grep -q '^#define TUKLIB_FAST_UNALIGNED_ACCESS 1' config.h
emmake make -j"$(nproc)" -C src/liblzma > make.log 2>&1 || { tail -30 make.log; exit 1; }

# Large memcpy as one memory.copy instead of Emscripten's JS helper, so the
# module's one import is emscripten_resize_heap.
cat > glue.c <<'C'
#include <stddef.h>
void *emscripten_memcpy_big(void *dest, const void *src, size_t n) {
  __builtin_memcpy(dest, src, n);
  return dest;
}
C
emcc $flags glue.c src/liblzma/.libs/liblzma.a -o liblzma.js --no-entry \
  -sALLOW_MEMORY_GROWTH=1 -sMAXIMUM_MEMORY=256MB -sINITIAL_MEMORY=1MB -sTOTAL_STACK=64KB -sFILESYSTEM=0 \
  -sEXPORTED_FUNCTIONS=_lzma_stream_buffer_encode,_lzma_version_string,_malloc,_free
node "$here/rename.mjs" liblzma.wasm liblzma.js "$out"
echo "wrote $out ($(stat -c %s "$out") bytes) from xz-utils $version"
