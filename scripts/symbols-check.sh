#!/bin/sh
# SPDX-License-Identifier: MIT
#
# symbols-check.sh LIBRARY SRCDIR - pin the exported ABI of libhetmem.
#
# What it enforces:
#   The set of symbols the shared library LIBRARY exports (code or data,
#   i.e. `nm -D --defined-only` entries of type T D B R W V i, names only,
#   symbol-version suffixes such as @@HETMEM_0.1 stripped) must be exactly
#   the set of names listed in the SRCDIR/**/*.symbols files.
#
#   A .symbols file holds one symbol per line; `#` starts a comment (whole
#   line or trailing) and blank lines are ignored. A name listed twice
#   (in one file or across files) is an error too.
#
# Why:
#   The version script (src/libhetmem.map) exports by wildcard, so a new
#   helper named dma_fence_foo silently becomes ABI. This test turns every
#   change of the exported set into a reviewed edit of a .symbols file, and
#   catches a documented function that was never exported (missing
#   HETMEM_API). The lists are split per source area (src/core/core.symbols,
#   src/fence/dma-fence.symbols, ...) so that people working on different
#   files do not all edit one shared list.
#
# Exit status: 0 when the sets match, 1 on any difference, 2 on usage or
# tool errors.

set -u

if [ $# -ne 2 ]; then
    echo "usage: $0 LIBRARY SRCDIR" >&2
    exit 2
fi
lib=$1
srcdir=$2
NM=${NM:-nm}
LC_ALL=C
export LC_ALL

if [ ! -f "$lib" ]; then
    echo "symbols-check: $lib: no such library" >&2
    exit 2
fi
if [ ! -d "$srcdir" ]; then
    echo "symbols-check: $srcdir: no such directory" >&2
    exit 2
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/symbols-check.XXXXXX") || exit 2
trap 'rm -rf "$tmp"' EXIT
trap 'exit 2' HUP INT TERM

# Exported: defined dynamic symbols of a code or data type.
if ! "$NM" -D --defined-only "$lib" >"$tmp/nm.out" 2>"$tmp/nm.err"; then
    echo "symbols-check: $NM -D --defined-only $lib failed:" >&2
    cat "$tmp/nm.err" >&2
    exit 2
fi
awk 'NF >= 2 {
        type = $(NF - 1); name = $NF
        if (type !~ /^[TDBRWVi]$/)
            next
        sub(/@.*/, "", name)      # strip @VERSION / @@VERSION
        if (name != "")
            print name
    }' "$tmp/nm.out" | sort -u >"$tmp/exported"

# Listed: every *.symbols file below SRCDIR, as "name<TAB>file:line".
find "$srcdir" -type f -name '*.symbols' | sort >"$tmp/files"
: >"$tmp/listed.raw"
: >"$tmp/syntax"
while IFS= read -r f; do
    awk -v file="$f" -v errfile="$tmp/syntax" '{
            sub(/#.*/, "")
            gsub(/^[ \t\r]+|[ \t\r]+$/, "")
            if ($0 == "")
                next
            if (NF != 1 || $0 !~ /^[A-Za-z_][A-Za-z0-9_.]*$/) {
                printf "    %s:%d: not a symbol name: \"%s\"\n", file, FNR, $0 \
                    >> errfile
                next
            }
            printf "%s\t%s:%d\n", $0, file, FNR
        }
        ' "$f" >>"$tmp/listed.raw"
done <"$tmp/files"

nfiles=$(wc -l <"$tmp/files")
cut -f1 "$tmp/listed.raw" | sort -u >"$tmp/listed"
status=0

if [ -s "$tmp/syntax" ]; then
    echo "symbols-check: malformed lines in .symbols files:"
    cat "$tmp/syntax"
    status=1
fi

# Duplicates.
cut -f1 "$tmp/listed.raw" | sort | uniq -d >"$tmp/dups"
if [ -s "$tmp/dups" ]; then
    echo "symbols-check: listed more than once:"
    sort -k1,1 "$tmp/listed.raw" | awk -F '\t' '
        NR == FNR { dup[$1] = 1; next }
        ($1 in dup) { printf "    %s (%s)\n", $1, $2 }' "$tmp/dups" -
    status=1
fi

comm -23 "$tmp/exported" "$tmp/listed" >"$tmp/unlisted"
comm -13 "$tmp/exported" "$tmp/listed" >"$tmp/unexported"

if [ -s "$tmp/unlisted" ]; then
    echo "symbols-check: exported but not listed in any .symbols file:"
    sed 's/^/    + /' "$tmp/unlisted"
    echo "  (add them to the .symbols file of their source area, or stop"
    echo "   exporting them: drop HETMEM_API / make them static)"
    status=1
fi
if [ -s "$tmp/unexported" ]; then
    echo "symbols-check: listed but not exported by $lib:"
    sort -k1,1 "$tmp/listed.raw" | awk -F '\t' '
        NR == FNR { want[$1] = 1; next }
        ($1 in want) { printf "    - %s (%s)\n", $1, $2 }' \
        "$tmp/unexported" -
    echo "  (mark the declaration HETMEM_API and check the version script,"
    echo "   or remove the name from the .symbols file)"
    status=1
fi

nexp=$(wc -l <"$tmp/exported")
nlist=$(wc -l <"$tmp/listed")
if [ "$status" -eq 0 ]; then
    echo "symbols-check: OK, $nexp exported symbols match $nlist listed in" \
        "$nfiles .symbols file(s)"
else
    echo "symbols-check: FAILED ($nexp exported, $nlist listed in" \
        "$nfiles .symbols file(s))"
fi
exit "$status"
