#!/bin/sh
# Instructions per frame for each unwinder, counted by callgrind: the difference between
# 3000 and 1000 walks of the 64-frame stack, divided by 2000 x 64. Deterministic, so it is
# a fair second opinion when the machine is too busy for wall-clock numbers.
# Usage: crates/unwind-bench/instructions.sh   (from the workspace root; needs valgrind)
set -eu
cargo build --release -q -p orc-unwind-bench --example walk_loop
bin="${CARGO_TARGET_DIR:-target}/release/examples/walk_loop"
for which in orc orc-cached framehop framehop-cold dwarf; do
    a=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" 1000 "$which" 2>&1 | sed -n 's/.*Collected : //p' | tr -d ,)
    b=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" 3000 "$which" 2>&1 | sed -n 's/.*Collected : //p' | tr -d ,)
    echo "$which: $(( (b - a) / 128000 )) instructions/frame"
done
