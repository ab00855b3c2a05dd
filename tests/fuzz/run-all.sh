#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 60) from its committed seeds
# (tests/fuzz/seeds/TARGET, plus regressions/TARGET) and prints a table of
# executions and crashes. New inputs go to tests/fuzz/corpus/TARGET,
# crashing ones to tests/fuzz/artifacts/TARGET (both ignored by git); the
# full libFuzzer output of each run to tests/fuzz/logs/TARGET.log.
#
#   tests/fuzz/run-all.sh [SECONDS]
#
# Needs nightly and cargo-fuzz (`cargo install cargo-fuzz --locked`).
set -u
seconds="${1:-60}"
fuzz_dir="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$fuzz_dir/../.." && pwd)"
cd "$root" || exit 1
mkdir -p "$fuzz_dir/logs"

cargo +nightly fuzz build --fuzz-dir "$fuzz_dir" || exit 1
targets=$(cargo +nightly fuzz list --fuzz-dir "$fuzz_dir")

rows=()
status=0
for target in $targets; do
    corpus="$fuzz_dir/corpus/$target"
    mkdir -p "$corpus" "$fuzz_dir/artifacts/$target"
    dirs=("$corpus" "$fuzz_dir/seeds/$target")
    [ -d "$fuzz_dir/regressions/$target" ] && dirs+=("$fuzz_dir/regressions/$target")
    log="$fuzz_dir/logs/$target.log"
    before=$(ls "$fuzz_dir/artifacts/$target" | wc -l)
    cargo +nightly fuzz run --fuzz-dir "$fuzz_dir" "$target" "${dirs[@]}" -- \
        -max_total_time="$seconds" -timeout=10 -print_final_stats=1 >"$log" 2>&1
    code=$?
    after=$(ls "$fuzz_dir/artifacts/$target" | wc -l)
    # libFuzzer's final stats, else its "Done N runs", else its last "#N" line.
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$')
    [ -z "$execs" ] && execs=$(grep -o '^Done [0-9]* runs' "$log" | tail -1 | grep -o '[0-9]*')
    [ -z "$execs" ] && execs=$(grep -o '^#[0-9]*' "$log" | tail -1 | tr -d '#')
    crashes=$((after - before))
    if [ "$code" -ne 0 ] && [ "$crashes" -eq 0 ]; then
        crashes="? (exit $code, see $log)"
    fi
    [ "$code" -ne 0 ] && status=1
    rows+=("$(printf '%-15s %8s %12s  %s' "$target" "$seconds" "${execs:-0}" "$crashes")")
done

printf '%-15s %8s %12s  %s\n' target seconds executions crashes
printf '%s\n' "${rows[@]}"
exit "$status"
