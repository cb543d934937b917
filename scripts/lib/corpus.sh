#!/usr/bin/env bash
# Where the kernel-module corpora live, for the other scripts and for people.
#
# Source it:   . scripts/lib/corpus.sh; corpus_modules 6.12
# Or call it:  scripts/lib/corpus.sh modules 6.12      (any corpus_* function without the prefix)
#
# Layout (made by scripts/fetch-corpus.sh), under $ORCTOOL_CACHE (default $HOME/.cache/orctool):
#   debs/                       downloaded .deb files
#   corpus/<K>/corpus.env       written last: the corpus is complete iff this exists (sourceable)
#   corpus/<K>/modules/         plain .ko tree (lib/modules/<kver>/kernel/ of the image package)
#   corpus/<K>/modules.list     every module, path relative to modules/, LC_ALL=C sorted
#   corpus/<K>/no-orc.list      the modules without an .orc_unwind section (same form)
#   corpus/<K>/objtool          the real objtool of that kernel's kbuild package: a symlink (6.12, 6.1),
#                               or a wrapper script (7.2) that starts it through sid's own ld.so
#   corpus/<K>/kbuild/          the extracted linux-kbuild package
#   corpus/<K>/boot/            config, System.map and vmlinuz of the image package (7.2: config only)
#   corpus/<K>/sidlibs/         7.2 only: sid's libc6, libelf1t64, zlib1g, libzstd1, liblzma5, libbz2-1.0
#   corpus/<K>/orc_types.h      7.2 only: the kernel's ORC definitions (linux-headers-*-common)
# <K> is 6.12, 6.1 or 7.2 (Debian unstable's kernel, fetched with a private apt configuration under
# apt-sid/, never the system's sources).

CORPUS_KERNELS="6.12 6.1 7.2"

corpus_cache() { printf '%s\n' "${ORCTOOL_CACHE:-$HOME/.cache/orctool}"; }

# corpus_check_kernel K: fail (return 2) unless K is a known corpus name.
corpus_check_kernel() {
    case "${1-}" in
        6.12|6.1|7.2) return 0 ;;
        *) echo "corpus: unknown kernel '${1-}' (expected one of: $CORPUS_KERNELS)" >&2; return 2 ;;
    esac
}

corpus_dir()         { corpus_check_kernel "$1" || return; printf '%s/corpus/%s\n' "$(corpus_cache)" "$1"; }
corpus_modules()     { local d; d=$(corpus_dir "$1") || return; printf '%s/modules\n' "$d"; }
corpus_objtool()     { local d; d=$(corpus_dir "$1") || return; printf '%s/objtool\n' "$d"; }
corpus_list()        { local d; d=$(corpus_dir "$1") || return; printf '%s/modules.list\n' "$d"; }
corpus_no_orc_list() { local d; d=$(corpus_dir "$1") || return; printf '%s/no-orc.list\n' "$d"; }
corpus_env()         { local d; d=$(corpus_dir "$1") || return; printf '%s/corpus.env\n' "$d"; }

# corpus_ready K: true if the corpus has been fetched completely.
corpus_ready() { local e; e=$(corpus_env "$1") || return; [[ -f $e ]]; }

# corpus_require K: like corpus_ready, but explains what to run when it is missing.
corpus_require() {
    corpus_ready "$1" && return 0
    corpus_check_kernel "$1" || return
    echo "corpus $1 is not fetched yet (looked in $(corpus_dir "$1")); run: scripts/fetch-corpus.sh $1" >&2
    return 1
}

# corpus_get K VAR: one value from corpus.env, e.g. corpus_get 6.12 CORPUS_VERSION
corpus_get() {
    corpus_require "$1" || return
    # shellcheck disable=SC1090
    ( . "$(corpus_env "$1")"; printf '%s\n' "${!2-}" )
}

# corpus_summary K: the one-line summary fetch-corpus.sh prints.
corpus_summary() {
    corpus_require "$1" || return
    (
        # shellcheck disable=SC1090
        . "$(corpus_env "$1")"
        printf 'corpus %s: version %s (%s), %s modules (%s without ORC) in %s, objtool %s\n' \
            "$1" "$CORPUS_VERSION" "$CORPUS_KVER" "$CORPUS_MODULE_COUNT" "$CORPUS_NO_ORC_COUNT" \
            "$(corpus_modules "$1")" "$(corpus_objtool "$1")"
    )
}

# corpus_vars K: shell assignments for the paths, for eval or for pasting into a shell.
corpus_vars() {
    corpus_require "$1" || return
    local v=${1//./_}
    printf 'ORCTOOL_CORPUS_%s=%q\n' "$v" "$(corpus_modules "$1")"
    printf 'ORCTOOL_OBJTOOL_%s=%q\n' "$v" "$(corpus_objtool "$1")"
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    set -euo pipefail
    if [[ $# -lt 1 ]] || ! declare -F "corpus_$1" >/dev/null; then
        echo "usage: $0 {cache|dir|modules|objtool|list|no_orc_list|env|ready|require|get|summary|vars} [6.12|6.1|7.2] [VAR]" >&2
        exit 2
    fi
    f=corpus_$1; shift
    "$f" "$@"
fi
