#!/usr/bin/env bash
# The project's test command (the README's second command; .ci/run runs it too).
#   1. every unit, integration and property test of the workspace;
#   2. the real-kernel check: fetch Debian's kernel modules and objtool (cached), and compare
#      `orctool dump` with `objtool --dump=orc` on a fixed sample of modules of both kernels.
# Set ORCTOOL_SKIP_CORPUS=1 to run only step 1 (no network).
# Ends with one line, `tests: N passed, M failed`, counting both steps.
set -euo pipefail
cd "$(dirname "$0")/.."

log=$(mktemp)
trap 'rm -f "$log"' EXIT

cargo build --release --workspace --all-targets
status=0
cargo test --release --workspace 2>&1 | tee "$log" || status=$?
passed=$(grep -Eo 'test result: [a-zA-Z]+\. [0-9]+ passed' "$log" | awk '{s += $4} END {print s + 0}')
failed=$(grep -Eo '[0-9]+ failed;' "$log" | awk '{s += $1} END {print s + 0}')
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi

if [ "${ORCTOOL_SKIP_CORPUS:-0}" = 1 ]; then
    echo "corpus checks skipped (ORCTOOL_SKIP_CORPUS=1)"
else
    bash scripts/fetch-corpus.sh all
    for kernel in 6.12 6.1; do
        if bash scripts/compat-dump.sh --kernel "$kernel" --sample 200 --orctool target/release/orctool; then
            passed=$((passed + 1))
        else
            failed=$((failed + 1))
        fi
    done
fi

echo "tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
