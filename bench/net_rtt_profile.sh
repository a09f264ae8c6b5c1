#!/usr/bin/env bash
# net_rtt_profile.sh: where one network round trip's time goes, between two
# processes (bench_net_procs' pingpong: 8-byte u64 out and back, one in
# flight), for the bare TCP pair and for Axon lazy and eager.
#
#   [AXON_BENCH_CONFIG=text] bench/net_rtt_profile.sh [BUILD_DIR] [SCALE] [KINDS]
#
# KINDS: which of "bare lazy eager" to profile (all three by default; the
# perf record pass runs only when lazy is among them). AXON_BENCH_CONFIG
# (libconfig text, loaded by both processes over the bench's config)
# profiles a variant, such as spinning turned off:
#   AXON_BENCH_CONFIG='axon = { spin_us = 0; network = { spin_us = 0; }; };'
#
# For each kind it runs `bench_net_procs SCALE pingpong KIND` (both
# processes, client and server) three ways and divides by the number of
# round trips:
#   1. perf stat (software counters: task-clock, context switches, CPU
#      migrations, page faults): CPU time and switches per round trip,
#      summed over both processes and all their threads;
#   2. strace -c -f: system calls per round trip, by name (strace slows
#      the run down several times, so its timings are not used, only its
#      counts);
#   3. perf record -g (Axon lazy only): the hottest symbols, both processes.
# The round trips counted include the warm-up and the Axon setup (a
# handful of frames), so the per-round-trip figures are upper bounds by a
# few percent. Hardware counters (cycles, instructions) are often missing
# on VMs; the script uses only software events. Needs perf and strace.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD=${1:-$ROOT/build}
SCALE=${2:-0.2}
KINDS=${3:-bare lazy eager}
BIN="$BUILD/bench/bench_net_procs"
OUT=$(mktemp -d /tmp/net_rtt_profile.XXXXXX)
trap 'rm -rf "$OUT"' EXIT

[[ -x "$BIN" ]] || { echo "net_rtt_profile: $BIN not built (cmake --build $BUILD)" >&2; exit 1; }
command -v perf >/dev/null || { echo "net_rtt_profile: perf not found" >&2; exit 1; }
command -v strace >/dev/null || { echo "net_rtt_profile: strace not found" >&2; exit 1; }

# Round trips one `pingpong KIND` run makes: TRIALS * (warm-up + rounds),
# scaled as bench_net_procs scales them. The three counts are read from
# its source, so that they cannot drift from it (they once did: a
# warm-up of 3000 counted as 500 made every figure 24% too high).
SRC="$ROOT/bench/net_procs.c"
count_of() {
  local v
  v=$(sed -n "s/^#define $1 \([0-9][0-9]*\).*/\1/p" "$SRC")
  [[ -n "$v" ]] || { echo "net_rtt_profile: no #define $1 in $SRC" >&2; exit 1; }
  echo "$v"
}
trials=$(count_of TRIALS)
warmup=$(count_of PP_WARMUP)
rounds=$(count_of PP_ROUNDS)
trips=$(awk -v s="$SCALE" -v t="$trials" -v w="$warmup" -v r="$rounds" \
          'function sc(n) { n = int(n * s); return n > 0 ? n : 1 }
           BEGIN { print t * (sc(w) + sc(r)) }')
echo "net_rtt_profile: scale $SCALE, $trips round trips per kind (both processes counted)"

for kind in $KINDS; do
  echo
  echo "== $kind"
  "$BIN" "$SCALE" pingpong "$kind" | sed -n 's/.*"median_rtt_us":\([0-9.]*\).*/   median RTT (unprofiled run): \1 us/p'
  if perf stat -x, -e task-clock,context-switches,cpu-migrations,page-faults \
       -o "$OUT/stat.$kind" "$BIN" "$SCALE" pingpong "$kind" > /dev/null 2>&1; then
    awk -F, -v n="$trips" '
      $3 == "task-clock" { printf "   CPU time per round trip: %.1f us (both processes)\n", $1 * 1000 / n }
      $3 == "context-switches" { printf "   context switches per round trip: %.2f\n", $1 / n }
      $3 == "cpu-migrations" { printf "   CPU migrations per round trip: %.3f\n", $1 / n }
      $3 == "page-faults" { printf "   page faults per round trip: %.3f\n", $1 / n }' "$OUT/stat.$kind"
  else
    echo "   perf stat is not supported here"
  fi
  strace -f -c -o "$OUT/strace.$kind" "$BIN" "$SCALE" pingpong "$kind" > /dev/null 2>&1 || true
  echo "   system calls per round trip (strace -c -f, calls >= 0.05 per round trip):"
  awk -v n="$trips" '
    /^[ ]*[0-9.]+[ ]+[0-9.]+/ && $NF != "total" {
      # % time, seconds, usecs/call, calls, [errors,] syscall
      if ($4 / n >= 0.05) printf "     %-16s %6.2f\n", $NF, $4 / n
      total += $4
    }
    END { printf "     %-16s %6.2f\n", "(all)", total / n }' "$OUT/strace.$kind"
done

[[ " $KINDS " == *" lazy "* && -z "${NO_PERF_RECORD:-}" ]] || exit 0
echo
echo "== lazy: hottest symbols (perf record -g, cpu-clock, both processes)"
if perf record -q -g -o "$OUT/perf.data" "$BIN" "$SCALE" pingpong lazy > /dev/null 2>&1; then
  perf report -i "$OUT/perf.data" --no-children --sort comm,sym --stdio 2>/dev/null |
    grep -E '^ +[0-9.]+%' | head -30
else
  echo "   perf record is not supported here"
fi
