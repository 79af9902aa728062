#!/usr/bin/env bash
# Runs the test suite and `clcnn bench` on every OpenCL device that is not a
# CPU, one device at a time (CLCNN_DEVICE=P:D), and writes a Markdown report:
# the first machine with a GPU tells where clcnn stands there.
#
#   bench/gpu_check.sh [REPORT.md]      (default: gpu-report.md)
#
# Uses the build in $BUILD_DIR (default build/), building it if absent. Each
# device gets its own tuning cache (XDG_CACHE_HOME), so no user's tuning
# file counts. Exits 0 when every device passed, 1 when one failed, and 0
# with a note in the report when there is no such device.
set -uo pipefail
cd "$(dirname "$0")/.."
report=$(realpath -m "${1:-gpu-report.md}")
build=${BUILD_DIR:-build}
[ -x "$build/clcnn" ] || scripts/build.sh >/dev/null || exit 1
clcnn=$(realpath "$build/clcnn")

# "P:D" of every device whose type is not CPU, from `clcnn devices`.
devices=$("$clcnn" devices | sed -n 's/^  device \([0-9]*:[0-9]*\): .*\[\(.*\)\]$/\1 \2/p' |
          awk '$2 != "CPU" { print $1 }')
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
{
    echo "# clcnn on the non-CPU OpenCL devices"
    echo
    echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo "- host: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) CPUs"
    echo
    echo '```'
    "$clcnn" devices
    echo '```'
} > "$report"
if [ -z "$devices" ]; then
    echo -e "\nNo OpenCL device other than CPUs: nothing to check." >> "$report"
    echo "gpu_check: no non-CPU OpenCL device; report in $report"
    exit 0
fi
failed=0
for device in $devices; do
    cache="$scratch/cache-${device/:/-}"
    mkdir -p "$cache"
    echo "gpu_check: device $device: tests"
    (cd "$build" && CLCNN_DEVICE=$device XDG_CACHE_HOME=$cache ctest --output-on-failure \
        > "$scratch/ctest.log" 2>&1)
    tests=$?
    echo "gpu_check: device $device: bench"
    CLCNN_DEVICE=$device XDG_CACHE_HOME=$cache "$clcnn" bench --device opencl \
        --json "$scratch/bench-${device/:/-}.json" > "$scratch/bench.md" 2>&1
    bench=$?
    [ $tests -eq 0 ] && [ $bench -eq 0 ] || failed=1
    {
        echo
        echo "## Device $device"
        echo
        echo "Tests: $([ $tests -eq 0 ] && echo passed || echo FAILED)"
        echo
        echo '```'
        tail -n 40 "$scratch/ctest.log"
        echo '```'
        echo
        echo "Bench: $([ $bench -eq 0 ] && echo done || echo FAILED)"
        echo
        sed 's/^# /### /; s/^## /#### /' "$scratch/bench.md"
    } >> "$report"
done
echo "gpu_check: report in $report"
exit $failed
