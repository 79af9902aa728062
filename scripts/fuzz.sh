#!/usr/bin/env bash
# Builds the libFuzzer targets of the parsers with clang (ASan + UBSan +
# coverage, in build-fuzz/ or $FUZZ_BUILD_DIR) and runs each for
# $FUZZ_SECONDS seconds (default 60), starting from its committed seed corpus
# (tests/fuzz/corpus/<parser>/). New inputs go to a scratch corpus under the
# build directory, not into the repository; a crash leaves its reproducer in
# the build directory (copy it to tests/fuzz/crashes/<parser>/ with the fix, so
# CTest replays it from then on).
#   scripts/fuzz.sh                 every parser
#   scripts/fuzz.sh npy idx         some
# Prints each parser's executions. Needs clang with libFuzzer (Debian:
# clang, libclang-rt-14-dev; scripts/deps.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${FUZZ_BUILD_DIR:-build-fuzz}
seconds=${FUZZ_SECONDS:-60}
parsers=("$@")
if [ ${#parsers[@]} -eq 0 ]; then
  parsers=(netfile npy idx model images cifar folders onnx)
fi
scripts/deps.sh fuzz
CC=${FUZZ_CC:-clang} cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Debug -DCLCNN_FUZZ=ON >/dev/null
targets=()
for p in "${parsers[@]}"; do targets+=("fuzz_$p"); done
cmake --build "$build" -j"$(nproc)" --target "${targets[@]}" >/dev/null
# The harnesses write each input to a scratch file: keep that in memory.
if [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then
  export TMPDIR=/dev/shm
fi
status=0
for p in "${parsers[@]}"; do
  corpus="$build/fuzz-corpus/$p"
  artifacts="$build/fuzz-artifacts/$p"
  mkdir -p "$corpus" "$artifacts"
  # CIFAR inputs hold 3073-byte records; the others stay small.
  max_len=4096
  if [ "$p" = cifar ]; then max_len=16384; fi
  log="$build/fuzz-$p.log"
  if nice -n 10 "$build/tests/fuzz/fuzz_$p" -max_total_time="$seconds" -max_len="$max_len" \
      -print_final_stats=1 -artifact_prefix="$artifacts/" "$corpus" "tests/fuzz/corpus/$p" \
      >"$log" 2>&1; then
    result=ok
  else
    result="FAILED (reproducer in $artifacts/, log $log)"
    status=1
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  echo "fuzz $p: ${runs:-?} executions in ${seconds}s, $result"
done
exit $status
