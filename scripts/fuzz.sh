#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ and runs each for a bounded time.
#
#   scripts/fuzz.sh [seconds-per-target]       (default 45; FUZZ_TARGETS="FuzzScene FuzzRange" picks some)
#
# For each target: first replays every input in fuzz/regressions/<target>/ (inputs that once crashed
# it; they must pass now), then fuzzes for the given time starting from fuzz/corpus/<target>/ (read
# only; new inputs go to .build-fuzz/corpus/<target>/) with fuzz/dict/<target>.dict. A crash, timeout or out-of-memory fails the
# run; its input is copied to fuzz/regressions/<target>/ so that, once fixed, it is replayed forever
# (commit it with the fix). Exits non-zero when any target failed.
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"

SECONDS_PER_TARGET="${1:-${FUZZ_SECONDS:-45}}"
SCRATCH="${FUZZ_SCRATCH:-.build-fuzz}"
SWIFT="${SWIFT:-swift}"
# A regression input taking longer than this fails the run (sanitized debug code; normal inputs take < 50 ms).
REPLAY_LIMIT_MS="${FUZZ_REPLAY_LIMIT_MS:-5000}"
# LeakSanitizer off: the Swift runtime's metadata caches look like leaks at exit. Memory growth is
# still bounded by -rss_limit_mb and -malloc_limit_mb.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0:allocator_may_return_null=1}"
# The Swift backtracer trips over ASan (it reads the stack through a helper thread); libFuzzer prints the stack.
export SWIFT_BACKTRACE="${SWIFT_BACKTRACE:-enable=no}"

echo "== building fuzz targets (scratch $SCRATCH)"
build_log="$(mktemp)"
trap 'rm -f "$build_log"' EXIT
if ! "$SWIFT" build --package-path fuzz --scratch-path "$SCRATCH" -c debug \
        -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library >"$build_log" 2>&1; then
    # gold warns about every ASan thunk it cannot export from a shared library; only the rest matters.
    grep -v "Cannot export local symbol" "$build_log" | tail -60
    echo "fuzz: build failed" >&2
    exit 2
fi
bin="$("$SWIFT" build --package-path fuzz --scratch-path "$SCRATCH" -c debug -Xswiftc -sanitize=fuzzer,address \
        -Xswiftc -parse-as-library --show-bin-path)"

targets="${FUZZ_TARGETS:-$(cd fuzz/Sources && ls -d Fuzz* | grep -v '^FuzzSupport$')}"
failed=()
summary=()
for target in $targets; do
    exe="$bin/$target"
    [ -x "$exe" ] || { echo "fuzz: $exe was not built" >&2; failed+=("$target(missing)"); continue; }
    work="$SCRATCH/corpus/$target"
    artifacts="$SCRATCH/artifacts/$target/"
    mkdir -p "$work" "$artifacts" "fuzz/corpus/$target"

    regressions=(fuzz/regressions/"$target"/*)
    if [ -e "${regressions[0]}" ]; then
        echo "== $target: replaying ${#regressions[@]} regression input(s)"
        if ! "$exe" -runs=1 -timeout=20 -rss_limit_mb=2048 -artifact_prefix="$artifacts" "${regressions[@]}" \
                >"$SCRATCH/$target.replay.log" 2>&1; then
            tail -80 "$SCRATCH/$target.replay.log"
            echo "fuzz: $target fails on a regression input (log: $SCRATCH/$target.replay.log)" >&2
            failed+=("$target(regression)")
            # Fuzz it all the same: other bugs may hide behind the known one.
        fi
        # libFuzzer does not apply -timeout to inputs given as files: a once-slow input must stay fast.
        slow=$(awk -v limit="$REPLAY_LIMIT_MS" '/^Executed .* in [0-9]+ ms$/ && $(NF-1) > limit { print $2 " (" $(NF-1) " ms)" }' \
                "$SCRATCH/$target.replay.log")
        if [ -n "$slow" ]; then
            echo "fuzz: $target: regression input(s) slower than ${REPLAY_LIMIT_MS} ms: $slow" >&2
            failed+=("$target(slow regression)")
        fi
    fi

    echo "== $target: fuzzing for ${SECONDS_PER_TARGET}s"
    log="$SCRATCH/$target.log"
    before=$(ls "$artifacts" | wc -l)
    dict=()
    [ -f "fuzz/dict/$target.dict" ] && dict=(-dict="fuzz/dict/$target.dict")
    "$exe" "$work" "fuzz/corpus/$target" "${dict[@]}" -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 \
        -malloc_limit_mb=1024 -max_len=16384 -print_final_stats=1 -artifact_prefix="$artifacts" >"$log" 2>&1
    status=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
    if [ "$status" -ne 0 ]; then
        grep -v "^#\|^INFO:" "$log" | head -120
        mkdir -p "fuzz/regressions/$target"
        for artifact in $(ls -t "$artifacts" | head -n $(( $(ls "$artifacts" | wc -l) - before ))); do
            cp "$artifacts/$artifact" "fuzz/regressions/$target/$artifact"
            echo "fuzz: $target: saved fuzz/regressions/$target/$artifact (replay: $exe fuzz/regressions/$target/$artifact)" >&2
        done
        echo "fuzz: $target FAILED (exit $status; log: $log)" >&2
        failed+=("$target")
        summary+=("$target: FAILED after ${execs:-?} runs")
    else
        summary+=("$target: ok, ${execs:-?} runs, ${rate:-?} exec/s, ${cov:-cov ?}")
    fi
done

echo "== fuzz summary (${SECONDS_PER_TARGET}s per target)"
printf '  %s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: failed: ${failed[*]}" >&2
    exit 1
fi
