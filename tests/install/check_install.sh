#!/usr/bin/env bash
# check_install.sh: install this build into a temporary prefix, then build
# and run the consumer in consumer/ against it twice: once with
# find_package(axon) (shared and static), once with pkg-config.
#
# Registered as a CTest test by tests/install/CMakeLists.txt:
#   check_install.sh build-dir=DIR lib-dir=DIR consumer=DIR cmake=PATH \
#                    cc=PATH pkg-config=PATH [sanitize=LIST]
# sanitize: the build's -fsanitize list; the consumer is built with it
# too, since an instrumented libaxon needs an instrumented program.
set -euo pipefail

build_dir="" lib_dir="" consumer="" cmake="" cc="" pkg_config="" sanitize=""
for arg in "$@"; do
  case $arg in
    build-dir=*)  build_dir=${arg#*=} ;;
    lib-dir=*)    lib_dir=${arg#*=} ;;
    consumer=*)   consumer=${arg#*=} ;;
    cmake=*)      cmake=${arg#*=} ;;
    cc=*)         cc=${arg#*=} ;;
    pkg-config=*) pkg_config=${arg#*=} ;;
    sanitize=*)   sanitize=${arg#*=} ;;
    *) echo "check_install: unknown argument '$arg'" >&2; exit 2 ;;
  esac
done
for v in build_dir lib_dir consumer cmake cc pkg_config; do
  [[ -n "${!v}" ]] || { echo "check_install: missing ${v//_/-}=" >&2; exit 2; }
done

step() { printf -- '-- %s\n' "$*"; }
fail() { printf 'check_install: FAILED: %s\n' "$*" >&2; exit 1; }
# Run a command quietly; show its output only when it fails.
quiet() {
  local log="$work/last.log"
  if ! "$@" >"$log" 2>&1; then
    cat "$log" >&2
    fail "$*"
  fi
}

[[ -f "$lib_dir/libaxon.so" && -f "$lib_dir/libaxon.a" ]] ||
  fail "libaxon.so and libaxon.a not found in $lib_dir: build the project first"

work="$(mktemp -d "${TMPDIR:-/tmp}/axon-install.XXXXXX")"
trap 'rm -rf "$work"' EXIT
prefix="$work/prefix"

flags=()
if [[ -n "$sanitize" ]]; then
  flags=("-fsanitize=$sanitize" -fno-omit-frame-pointer)
  step "the build uses -fsanitize=$sanitize: so do the consumers"
fi

# ---- install ---------------------------------------------------------------
step "cmake --install $build_dir --prefix $prefix"
quiet "$cmake" --install "$build_dir" --prefix "$prefix"

for h in axon/status.h axon/buffers.h axon/metrics.h; do
  [[ -f "$prefix/include/$h" ]] || fail "header $h not installed under $prefix/include"
done
[[ -x "$prefix/bin/axon-top" ]] || fail "tools/axon-top not installed under $prefix/bin"
config="$(find "$prefix" -name axon-config.cmake -print -quit)"
pc="$(find "$prefix" -name axon.pc -print -quit)"
[[ -n "$config" ]] || fail "axon-config.cmake not installed"
[[ -n "$pc" ]] || fail "axon.pc not installed"
libdir="$(dirname "$(dirname "$pc")")"
for f in libaxon.so libaxon.a; do
  [[ -e "$libdir/$f" ]] || fail "$f not installed in $libdir"
done

# ---- the exported symbol set ------------------------------------------------
# Only the public API (ax_ names marked AX_API in include/axon/) is exported;
# ax__ internals are hidden (-fvisibility=hidden). Besides ax_ names, only
# the linker's own markers and sanitizer instrumentation may appear.
step "libaxon.so exports the public API only (nm -D)"
syms="$(nm -D --defined-only "$libdir/libaxon.so" | awk '{print $3}')"
internal="$(grep '^ax__' <<<"$syms" || true)"
[[ -z "$internal" ]] || fail "libaxon.so exports internal symbols: $(tr '\n' ' ' <<<"$internal")"
other="$(grep -v -E '^(ax_[a-z0-9]|_edata$|_end$|__bss_start$|_init$|_fini$|__(asan|ubsan|tsan|sanitizer|odr_asan)|___asan)' <<<"$syms" || true)"
[[ -z "$other" ]] || fail "libaxon.so exports names outside the API: $(tr '\n' ' ' <<<"$other")"
public="$(grep -c '^ax_[a-z0-9]' <<<"$syms" || true)"
[[ "$public" -ge 100 ]] || fail "libaxon.so exports only $public ax_ symbols: the API is missing"
step "  $public public symbols, no ax__"

# ---- 1. find_package(axon) -------------------------------------------------
cbuild="$work/cmake-consumer"
step "configure the consumer with find_package(axon) against the prefix"
quiet "$cmake" -S "$consumer" -B "$cbuild" \
  -DCMAKE_C_COMPILER="$cc" \
  -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF \
  -DCMAKE_C_FLAGS="${flags[*]}" \
  -DCMAKE_EXE_LINKER_FLAGS="${flags[*]}"
found="$(sed -n 's/^axon_DIR:PATH=//p' "$cbuild/CMakeCache.txt")"
[[ "$found" == "$prefix"/* ]] || fail "find_package(axon) found '$found', not the prefix"
step "build it"
quiet "$cmake" --build "$cbuild"

step "run the consumer linked with axon::axon (shared)"
# Capture ldd's output first: grep -q closing the pipe early would make
# ldd fail under pipefail.
deps="$(ldd "$cbuild/consumer")"
[[ "$deps" == *"libaxon.so"*" => $prefix/"* ]] ||
  fail "consumer does not load libaxon.so from the prefix: $deps"
"$cbuild/consumer"
step "run the consumer linked with axon::axon_static"
deps="$(ldd "$cbuild/consumer_static")"
[[ "$deps" != *libaxon* ]] || fail "consumer_static depends on libaxon.so: $deps"
"$cbuild/consumer_static"

# ---- 2. pkg-config ---------------------------------------------------------
PKG_CONFIG_PATH="$(dirname "$pc")"
export PKG_CONFIG_PATH
step "pkg-config --cflags --libs axon (PKG_CONFIG_PATH=$PKG_CONFIG_PATH)"
pkg_flags="$("$pkg_config" --cflags --libs axon)" || fail "pkg-config axon failed"
step "  $pkg_flags"
pkg_libdir="$("$pkg_config" --variable=libdir axon)"
[[ "$(realpath "$pkg_libdir")" == "$(realpath "$libdir")" ]] ||
  fail "axon.pc says libdir=$pkg_libdir, the library is in $libdir"
# shellcheck disable=SC2086 # pkg-config output is a list of words
quiet "$cc" -std=c11 -Wall -Wextra -Wpedantic -Werror "${flags[@]}" \
  -o "$work/consumer-pc" "$consumer/consumer.c" $pkg_flags
step "run the pkg-config consumer"
LD_LIBRARY_PATH="$pkg_libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$work/consumer-pc"

step "install check passed"
