#!/usr/bin/env bash
# The project's test command (the README's second command; .ci/run runs it too).
#   1. fetch Debian's kernel modules and objtool (cached in ~/.cache/orctool; see docs/corpus.md);
#   2. every unit, integration and property test of the workspace, the real-module ones fed
#      with the 6.12 corpus through ORCTOOL_REAL_MODULES;
#   3. `orctool dump` against `objtool --dump=orc` on a fixed sample of 200 modules of each of
#      the 6.12, 6.1 and 7.2 kernels (7.2: Debian unstable's, fetched through a private apt
#      configuration), and check and verify-patching on 7.2 too;
#   4. `orctool check` against objtool on a fixed sample of 120 stripped 6.12 modules: ORC
#      dumps, entries and warnings must agree (at least 99%, 99.9% and 95%, the issue's bar),
#      and the two outputs must be the same object to a linker (99%: `compare-objects`);
#   5. `orctool verify-patching` over every 6.12 module: Debian's shipped tables must be right
#      at every patch site (the 6.1 corpus has one known hazard, docs/findings.md); and, when
#      scripts/build-gold.sh has built the gold set, whole objects against objtool on it; with
#      ORCTOOL_KERNEL=1 (CI), a small 6.12 kernel built with orctool as its objtool, compared
#      object by object with objtool's and booted under QEMU (scripts/kernel-build.sh); crash
#      dumps of Debian's 6.12 and 6.1 kernels (scripts/make-vmcore.sh, made before step 2, whose
#      vmcore tests read them): every task's stack against drgn's (scripts/compare-drgn.py);
#   6. user space: `orctool unwind --pid` against gdb's backtrace on every C test program
#      (scripts/compare-gdb.sh, must match frame for frame), and the analysis of linked code
#      against the converted .eh_frame over /usr/bin (scripts/cfi-compare.sh: a report; it
#      fails only if orctool cannot read a file). verify-exec on the test programs is part of
#      step 2 (crates/orctool/tests/verify_exec_cli.rs), and so is SFrame v3 against sid's
#      objdump --sframe on them (crates/orctool/tests/sframe_cli.rs, docs/sframe.md).
#   7. a fuzz smoke: every fuzz target of fuzz/ built with libFuzzer and run 2,000 inputs from
#      a fixed seed (scripts/fuzz.sh --smoke: the same inputs on every run).
# Set ORCTOOL_SKIP_CORPUS=1 to skip steps 1 and 3 (no network); the real-module tests then say
# they were skipped. Ends with one line, `tests: N passed, M failed (...)`, counting every test of
# every test binary of step 2 (a binary that crashed counts as one failure) and each script
# check of steps 3 to 6 as one.
set -euo pipefail
cd "$(dirname "$0")/.."

log=$(mktemp)
trap 'rm -f "$log"' EXIT

corpus=1
vmcore_failures=0
[ "${ORCTOOL_SKIP_CORPUS:-0}" = 1 ] && corpus=0
if [ "$corpus" = 1 ]; then
    bash scripts/fetch-corpus.sh all
    ORCTOOL_REAL_MODULES=$(bash scripts/lib/corpus.sh modules 6.12)
    export ORCTOOL_REAL_MODULES
    # Debian's 6.12 and 6.1 kernel images (-dbg packages, ~1.9 GB of download, cached; the .deb
    # is deleted): the image tests of orc-patch and orctool read them (they skip, and say so,
    # only when ORCTOOL_SKIP_IMAGES=1 left them out).
    if [ "${ORCTOOL_SKIP_IMAGES:-0}" != 1 ]; then
        bash scripts/fetch-images.sh 6.12 && bash scripts/fetch-images.sh 6.1
        # Crash dumps of both kernels under QEMU (TCG, 256 MB, about 30 s each, cached): the
        # vmcore tests of step 2 read them (crates/orctool/tests/vmcore_cli.rs), step 5 compares
        # them with drgn. Without QEMU they are skipped, and the tests say so.
        # A dump that could not be made with QEMU present is a failure (counted below).
        if command -v qemu-system-x86_64 > /dev/null; then
            for k in 6.12 6.1; do
                if dump=$(bash scripts/make-vmcore.sh "$k"); then
                    export "ORCTOOL_VMCORE_${k//./}=$dump"
                else
                    echo "vmcore $k: scripts/make-vmcore.sh failed" >&2
                    vmcore_failures=$((vmcore_failures + 1))
                fi
            done
        fi
    fi
    # Debian unstable's binutils (objdump --sframe, about 7 MB, cached): the SFrame tests compare
    # orctool's SFrame v3 with it (they say SKIP for that part without it).
    ORCTOOL_SID_BINUTILS=$(bash scripts/fetch-sid-binutils.sh) || ORCTOOL_SID_BINUTILS=
    export ORCTOOL_SID_BINUTILS
fi

cargo build --release --workspace --all-targets
# Where cargo put it: CARGO_TARGET_DIR is honoured (relative to the repository, as for cargo).
orctool=${CARGO_TARGET_DIR:-target}/release/orctool
status=0
# --no-fail-fast: every test binary runs, even after one has failed.
cargo test --release --workspace --no-fail-fast 2>&1 | tee "$log" || status=$?
# Every test binary cargo starts is announced by a "Running" (or "Doc-tests") line and ends with
# one "test result:" line. A binary that crashed (a signal, an abort) has no result line: it
# counts as one failure, and is named.
read -r binaries passed failed crashed < <(awk '
    function finish() { if (current != "" && !result) { crashed++; names = names "; " current } }
    /^ +Running .*\(.*\)$/ || /^ +Doc-tests [^ ]+$/ {
        finish(); binaries++; current = $0; sub(/^ +/, "", current); result = 0; next
    }
    /^test result: [A-Za-z]+\. [0-9]+ passed; [0-9]+ failed;/ {
        result = 1; passed += $4; f = $6; sub(/;/, "", f); failed += f
    }
    END { finish(); print binaries + 0, passed + 0, failed + crashed, crashed + 0; if (crashed) print "crashed without a result" names > "/dev/stderr" }
' "$log")
# cargo itself failed without any failing test (a build error, say): one failure.
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
cargo_binaries=$binaries

if [ "$corpus" = 1 ]; then
    for kernel in 6.12 6.1 7.2; do
        if bash scripts/compat-dump.sh --kernel "$kernel" --sample 200 --orctool "$orctool"; then
            passed=$((passed + 1))
        else
            failed=$((failed + 1))
        fi
    done
    if python3 scripts/compat-check.py --kernel 6.12 --sample 120 --orctool "$orctool" \
        --min-dumps 99 --min-entries 99.9 --min-warnings 95 --min-whole 99; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
    fi
    # The current kernel (Debian unstable's 7.2): objtool 7.2's module flags and wording.
    if python3 scripts/compat-check.py --kernel 7.2 --sample 120 --orctool "$orctool" \
        --min-dumps 99 --min-entries 99.9 --min-warnings 95 --min-whole 99; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
    fi
    if "$orctool" verify-patching "$(bash scripts/lib/corpus.sh modules 7.2)" | tail -3; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
    fi
    if "$orctool" verify-patching "$(bash scripts/lib/corpus.sh modules 6.12)" | tail -3; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
    fi
    # Whole objects against objtool on the gold set (module objects rebuilt from Debian's source
    # as kbuild hands them to objtool), when scripts/build-gold.sh has built it: it takes most of
    # an hour on 2 cores, too long for every run.
    if [ -f "$(bash scripts/lib/corpus.sh cache)/gold/gold.tsv" ]; then
        if python3 scripts/compat-gold.py --orctool "$orctool" | tail -5; then
            passed=$((passed + 1))
        else
            failed=$((failed + 1))
        fi
    else
        echo "gold set not built (scripts/build-gold.sh): compat-gold skipped"
    fi
    # Crash dumps: every task's stack against drgn's, frame for frame, and the time both take.
    failed=$((failed + vmcore_failures))
    for k in 6.12 6.1; do
        var=ORCTOOL_VMCORE_${k//./}
        [ -n "${!var-}" ] || { echo "vmcore $k: no dump (QEMU missing?): drgn comparison skipped"; continue; }
        if python3 scripts/compare-drgn.py --vmcore "${!var}" --vmlinux "$(bash scripts/lib/corpus.sh cache)/images/$k/vmlinux" \
            --orctool "$orctool"; then
            passed=$((passed + 1))
        else
            failed=$((failed + 1))
        fi
    done
    # A kernel built with orctool as its objtool: every object compared with objtool's, both
    # kernels booted under QEMU with in-guest unwinder checks (docs/kernel-build.md). About 20
    # minutes on a fresh machine (cached afterwards: a new orctool binary reruns the objtool steps,
    # the links and the boots); .ci/run sets ORCTOOL_KERNEL=1.
    if [ "${ORCTOOL_KERNEL:-0}" = 1 ]; then
        if bash scripts/kernel-build.sh --orctool "$orctool"; then
            passed=$((passed + 1))
        else
            failed=$((failed + 1))
        fi
    else
        echo "kernel build skipped (ORCTOOL_KERNEL=1 runs it)"
    fi
else
    echo "corpus checks skipped (ORCTOOL_SKIP_CORPUS=1)"
fi

# Fuzz smoke (docs/fuzzing.md): every fuzz target builds and runs 5 s from its seeds alone, so that a
# target that rots is seen. The instrumented build is its own (fuzz/target); the campaigns are
# scripts/fuzz.sh with a longer time.
if ORCTOOL=$orctool bash scripts/fuzz.sh 5 --smoke >"$log" 2>&1; then
    tail -1 "$log"
    passed=$((passed + 1))
else
    grep -E "^(FAIL|ok) " "$log" || tail -20 "$log"
    failed=$((failed + 1))
fi

if bash scripts/compare-gdb.sh; then
    passed=$((passed + 1))
else
    failed=$((failed + 1))
fi
if ORCTOOL=$orctool bash scripts/cfi-compare.sh /usr/bin >"$log" 2>&1; then
    tail -1 "$log"
    passed=$((passed + 1))
else
    tail -5 "$log"
    failed=$((failed + 1))
fi

echo "tests: $passed passed, $failed failed ($cargo_binaries test binaries, $crashed of them crashed without a result; the rest are script checks)"
[ "$failed" -eq 0 ]
