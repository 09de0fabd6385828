#!/bin/sh
# SPDX-License-Identifier: MIT
#
# layering-check.sh SRCROOT      - check the include layering of the tree
# layering-check.sh --selftest   - check that the checker catches violations
#
# What it enforces (on *.c *.h *.cc *.cpp *.hpp *.inc under src/, include/,
# tools/ and bench/ of SRCROOT):
#
#   1. Layer order: core < fence < resv < buf < mm < dev < tools.
#      A file in src/L/ or include/hetmem/L/ must not include a header of
#      a higher layer. The layer of an #include is taken from its path:
#      hetmem/<layer>/..., "<layer>/..." or <layer>/... (src/ is on the
#      private include path), or a relative "../<layer>/..." (resolved
#      against the including file's directory). tools/ and bench/ are the
#      top layer. Files outside a layer directory (the umbrella
#      include/hetmem.h, the kernel-name compat headers in
#      include/hetmem/linux/) are not ranked.
#   2. Nothing under src/dev/ may include an internal.h (any *internal.h)
#      or any other private header of src/: the reference devices are
#      written against the public API only, like an out-of-tree driver.
#   3. Nothing under include/ may include a src/ header or any internal.h:
#      installed headers cannot see src/.
#   4. tools/ and bench/ may include any public header, but no src/ header
#      (in particular no src/**/internal.h).
#
# Why: the layers are the kernel's dependency order (a fence knows nothing
# of reservation objects, dma-buf builds on both, HMM/mm on dma-buf, devices
# on everything). Keeping the order makes each layer testable and
# reviewable on its own and stops include cycles before they start; rules
# 2-4 keep the public API sufficient for real users.
#
# Every violation is printed as FILE:LINE: message; the exit status is 1 if
# there is any, 0 otherwise, 2 on usage errors.

set -u
LC_ALL=C
export LC_ALL

# The checker proper, as an awk program run on one file at a time with
# -v root=SRCROOT -v rel=PATH-RELATIVE-TO-ROOT.
# shellcheck disable=SC2016 # an awk program, not shell expansions
awk_prog='
function layer_rank(l) {
    return (l in rank) ? rank[l] : 0
}
# Normalise a relative path ("a/b/../c" -> "a/c"); "" if it leaves the root.
function normalise(p,    n, parts, out, k, i) {
    n = split(p, parts, "/")
    k = 0
    for (i = 1; i <= n; i++) {
        if (parts[i] == "" || parts[i] == ".")
            continue
        if (parts[i] == "..") {
            if (k == 0)
                return ""
            k--
            continue
        }
        out[++k] = parts[i]
    }
    p = ""
    for (i = 1; i <= k; i++)
        p = p (i > 1 ? "/" : "") out[i]
    return p
}
function exists(p,    line, r) {
    r = (getline line < (root "/" p))
    close(root "/" p)
    return r >= 0
}
# Classify a path relative to SRCROOT: sets T_kind (public, private,
# other) and T_layer.
function classify(p,    parts) {
    T_kind = "other"; T_layer = ""
    split(p, parts, "/")
    if (parts[1] == "include") {
        T_kind = "public"
        if (parts[2] == "hetmem" && (parts[3] in rank) && p ~ /^include\/hetmem\/[^\/]+\//)
            T_layer = parts[3]
    } else if (parts[1] == "src") {
        T_kind = "private"
        if ((parts[2] in rank) && p ~ /^src\/[^\/]+\//)
            T_layer = parts[2]
    } else if ((parts[1] == "tools" || parts[1] == "bench") && p ~ /\//) {
        T_layer = "tools"
    }
}
function report(msg) {
    printf "%s/%s:%d: %s\n", root, rel, FNR, msg
    bad++
}
BEGIN {
    n = split("core fence resv buf mm dev tools", order, " ")
    for (i = 1; i <= n; i++)
        rank[order[i]] = i
    classify(rel)
    F_layer = T_layer
    split(rel, fp, "/")
    F_area = fp[1]
    F_dev = (rel ~ /^src\/dev\//)
    F_dir = rel
    sub(/\/[^\/]*$/, "", F_dir)
    bad = 0
}
/^[ \t]*#[ \t]*include[ \t]*[<"]/ {
    line = $0
    sub(/^[ \t]*#[ \t]*include[ \t]*/, "", line)
    quote = substr(line, 1, 1)
    line = substr(line, 2)
    end = index(line, quote == "<" ? ">" : "\"")
    if (end == 0)
        next
    target = substr(line, 1, end - 1)
    shown = (quote == "<") ? "<" target ">" : "\"" target "\""

    # Resolve the include to a path relative to SRCROOT, if it is ours.
    resolved = ""
    if (quote == "\"" && target ~ /^\.\.?\//) {
        resolved = normalise(F_dir "/" target)
    } else if (quote == "\"" && exists(F_dir "/" target)) {
        resolved = normalise(F_dir "/" target)
    } else if (target ~ /^hetmem\//) {
        resolved = "include/" target
    } else {
        split(target, tp, "/")
        if ((tp[1] in rank) && target ~ /\//)
            resolved = "src/" target   # via the private -I src
    }
    if (resolved != "")
        classify(resolved)
    else
        classify("")
    # A "../<layer>/" that escapes the tree still names a layer.
    if (T_layer == "" && match(target, /(^|\/)\.\.\/[a-z]+\//)) {
        seg = substr(target, RSTART, RLENGTH)
        sub(/^\/?\.\.\//, "", seg); sub(/\/$/, "", seg)
        if (seg in rank)
            T_layer = seg
    }
    is_internal = (target ~ /(^|\/)[^\/]*internal\.h$/)

    if (F_layer != "" && T_layer != "" && layer_rank(T_layer) > layer_rank(F_layer))
        report(F_layer " must not include " shown ": " T_layer \
               " is a higher layer (core < fence < resv < buf < mm < dev < tools)")
    else if (F_dev && is_internal)
        report("src/dev/ must not include " shown \
               ": reference devices use only the public API")
    else if (F_dev && T_kind == "private" && resolved !~ /^src\/dev\//)
        report("src/dev/ must not include the private header " shown \
               ": reference devices use only the public API")
    else if (F_area == "include" && (is_internal || T_kind == "private"))
        report("public header must not include " shown \
               ": src/ headers are not installed")
    else if ((F_area == "tools" || F_area == "bench") && T_kind == "private")
        report(F_area "/ must not include the private header " shown \
               ": use the public API")
    else if ((F_area == "tools" || F_area == "bench") && is_internal && \
             resolved !~ /^(tools|bench)\//)
        report(F_area "/ must not include " shown ": use the public API")
}
END { exit bad ? 1 : 0 }
'

check_tree() { # ROOT -> prints violations, returns 1 if any
    root=$1
    status=0
    files=$( (cd "$root" && find src include tools bench -type f \
        \( -name '*.c' -o -name '*.h' -o -name '*.cc' -o -name '*.cpp' \
           -o -name '*.hpp' -o -name '*.inc' \) 2>/dev/null) | sort)
    # Paths in this tree contain no newlines; split on them only.
    old_ifs=$IFS
    IFS='
'
    for rel in $files; do
        awk -v root="$root" -v rel="$rel" "$awk_prog" "$root/$rel" ||
            status=1
    done
    IFS=$old_ifs
    return "$status"
}

selftest() {
    st=$(mktemp -d "${TMPDIR:-/tmp}/layering-selftest.XXXXXX") || exit 2
    trap 'rm -rf "$st"' EXIT
    trap 'exit 2' HUP INT TERM
    fails=0

    # A clean tree exercising every allowed pattern.
    mk() { mkdir -p "$(dirname "$1")" && printf '%s\n' "$2" >>"$1"; }
    clean=$st/clean
    mk "$clean/include/hetmem/core/kref.h" '#include <stdbool.h>'
    mk "$clean/include/hetmem/fence/dma-fence.h" '#include <hetmem/core/kref.h>'
    mk "$clean/include/hetmem/fence/dma-fence.h" '#include "../core/kref.h"'
    mk "$clean/include/hetmem/mm/hmm.h" '#include <hetmem/buf/dma-buf.h>'
    mk "$clean/include/hetmem/linux/dma-fence.h" '#include <hetmem/fence/dma-fence.h>'
    mk "$clean/include/hetmem/buf/dma-buf.h" '#include <hetmem/resv/dma-resv.h>'
    mk "$clean/include/hetmem/resv/dma-resv.h" '#include "dma-resv-types.h"'
    mk "$clean/include/hetmem/resv/dma-resv-types.h" '#include <stddef.h>'
    mk "$clean/include/hetmem.h" '#include <hetmem/mm/hmm.h>'
    mk "$clean/src/core/internal.h" '#include <hetmem/core/kref.h>'
    mk "$clean/src/core/lock.c" '#include "internal.h"'
    mk "$clean/src/core/lock.c" '#include <linux/futex.h>'
    mk "$clean/src/fence/internal.h" '#include "../core/internal.h"'
    mk "$clean/src/fence/dma-fence.c" '#include "internal.h"'
    mk "$clean/src/fence/dma-fence.c" '#include "core/internal.h"'
    mk "$clean/src/fence/dma-fence.c" '  #  include <hetmem/fence/dma-fence.h>'
    mk "$clean/src/fence/dma-fence.c" '#include <hetmem/linux/dma-fence.h>'
    mk "$clean/src/fence/dma-fence.c" '/* #include <hetmem/mm/hmm.h> */'
    mk "$clean/src/mm/hmm.c" '#include "../fence/internal.h"'
    mk "$clean/src/mm/hmm.c" '#include <hetmem/buf/dma-buf.h>'
    mk "$clean/src/dev/dev.h" '#include <hetmem/mm/hmm.h>'
    mk "$clean/src/dev/vdev.c" '#include "dev.h"'
    mk "$clean/src/dev/vdev.c" '#include <hetmem/dev/device.h>'
    mk "$clean/src/dev/vdev.c" '#include <hetmem.h>'
    mk "$clean/tools/hetmem/internal.h" '#include <hetmem.h>'
    mk "$clean/tools/hetmem/main.c" '#include "internal.h"'
    mk "$clean/tools/hetmem/main.c" '#include <hetmem/dev/device.h>'
    mk "$clean/bench/bench.c" '#include <hetmem/version.h>'

    out=$(check_tree "$clean")
    rc=$?
    if [ "$rc" -ne 0 ] || [ -n "$out" ]; then
        echo "not ok - clean tree reported violations (rc=$rc):"
        printf '%s\n' "$out" | sed 's/^/#   /'
        fails=$((fails + 1))
    else
        echo "ok - clean tree passes"
    fi

    # Each case: FILE, the violating line; it is appended to the file (which
    # may already exist) of a copy of the clean tree and must be the only
    # thing reported, at the right line.
    i=0
    while IFS='|' read -r file text; do
        [ -n "$file" ] || continue
        i=$((i + 1))
        t=$st/case$i
        cp -R "$clean" "$t"
        mk "$t/$file" "$text"
        line=$(wc -l <"$t/$file" | tr -d ' ')
        out=$(check_tree "$t")
        rc=$?
        n=$(printf '%s\n' "$out" | grep -c .)
        case $out in
        "$t/$file:$line: "*) where=ok ;;
        *) where=bad ;;
        esac
        if [ "$rc" -eq 1 ] && [ "$n" -eq 1 ] && [ "$where" = ok ]; then
            echo "ok - caught: $file: $text"
            echo "#   ${out#"$t"/}"
        else
            echo "not ok - missed: $file: $text (rc=$rc, $n reports)"
            printf '%s\n' "$out" | sed 's/^/#   /'
            fails=$((fails + 1))
        fi
    done <<'EOF'
src/core/lock.c|#include <hetmem/fence/dma-fence.h>
src/core/lock.c|#include "fence/internal.h"
src/fence/dma-fence.c|#include "../resv/internal.h"
src/fence/dma-fence.c|# include <mm/hmm-internal.h>
src/mm/hmm.c|#include <hetmem/dev/device.h>
include/hetmem/core/kref.h|#include <hetmem/fence/dma-fence.h>
include/hetmem/resv/dma-resv.h|#include "../buf/dma-buf.h"
include/hetmem/fence/dma-fence.h|#include "core/internal.h"
include/hetmem/fence/dma-fence.h|#include "internal.h"
src/dev/vdev.c|#include "../core/internal.h"
src/dev/vdev.c|#include "internal.h"
src/dev/vdev.c|#include "fence/dma-fence-priv.h"
tools/hetmem/main.c|#include "../../src/fence/internal.h"
bench/bench.c|#include <core/internal.h>
bench/bench.c|#include "../src/core/lock.h"
EOF

    if [ "$fails" -ne 0 ]; then
        echo "layering-check selftest: $fails case(s) FAILED"
        return 1
    fi
    echo "layering-check selftest: all $((i + 1)) cases passed"
    return 0
}

case ${1-} in
--selftest)
    [ $# -eq 1 ] || { echo "usage: $0 --selftest" >&2; exit 2; }
    selftest
    exit $?
    ;;
-*|'')
    echo "usage: $0 SRCROOT | $0 --selftest" >&2
    exit 2
    ;;
esac
[ $# -eq 1 ] || { echo "usage: $0 SRCROOT | $0 --selftest" >&2; exit 2; }
[ -d "$1/src" ] || { echo "layering-check: $1/src: no such directory" >&2; exit 2; }

out=$(check_tree "${1%/}")
status=$?
[ -n "$out" ] && printf '%s\n' "$out"
if [ "$status" -ne 0 ]; then
    echo "layering-check: $(printf '%s\n' "$out" | grep -c .) violation(s)"
else
    echo "layering-check: OK"
fi
exit "$status"
