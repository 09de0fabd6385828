#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# header-check.sh INCLUDEDIR BUILDROOT CC CXX - every public header must
# compile on its own, as C and as C++.
#
# What it enforces:
#   For every *.h below INCLUDEDIR (recursively) and the generated
#   BUILDROOT/include/hetmem/version.h, a translation unit holding nothing
#   but `#include <path/relative/to/INCLUDEDIR>` must pass
#     CC  -std=gnu11 -fsyntax-only -Wall -Wextra -Werror -x c
#     CXX -std=c++17 -fsyntax-only -Wall -Wextra -Werror -x c++
#   with -I INCLUDEDIR -I BUILDROOT/include. Finally one TU including every
#   header together must pass both compilers too (catches clashing
#   definitions and macros between headers).
#
# Why:
#   Public headers are the API. A header that only compiles when something
#   else was included first, that triggers warnings in consumers built with
#   -Werror, or that is not valid C++ (struct dma_fence is meant to be usable
#   from C++ drivers and tools) is a bug for every user, and the library's
#   own build never notices because its .c files include headers in a
#   fortunate order.
#
# CC and CXX may be a command with arguments ("ccache gcc"); they are split
# on blanks. Output is TAP; the exit status is 0 when every TU compiled, 1
# otherwise, 2 on usage errors. Set HEADER_CHECK_JOBS to limit parallelism.

set -u

if [ $# -ne 4 ]; then
    echo "usage: $0 INCLUDEDIR BUILDROOT CC CXX" >&2
    exit 2
fi
incdir=$1
buildroot=$2
read -r -a cc <<<"$3"
read -r -a cxx <<<"$4"
export LC_ALL=C

if [ ! -d "$incdir" ]; then
    echo "header-check: $incdir: no such directory" >&2
    exit 2
fi
if [ ${#cc[@]} -eq 0 ] || [ ${#cxx[@]} -eq 0 ]; then
    echo "header-check: empty CC or CXX" >&2
    exit 2
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/header-check.XXXXXX") || exit 2
trap 'rm -rf "$tmp"' EXIT
trap 'exit 2' HUP INT TERM

# Header list, as include paths relative to INCLUDEDIR.
mapfile -t headers < <(cd "$incdir" && find . -type f -name '*.h' |
                       sed 's|^\./||' | sort)
gen=hetmem/version.h
have_gen=0
[ -f "$buildroot/include/$gen" ] && have_gen=1
found=0
for h in "${headers[@]}"; do
    [ "$h" = "$gen" ] && found=1
done
[ "$found" -eq 0 ] && headers+=("$gen")

if [ ${#headers[@]} -eq 0 ]; then
    echo "1..0 # SKIP no headers below $incdir"
    exit 0
fi

cflags=(-std=gnu11 -fsyntax-only -Wall -Wextra -Werror
        -I "$incdir" -I "$buildroot/include")
cxxflags=(-std=c++17 -fsyntax-only -Wall -Wextra -Werror
          -I "$incdir" -I "$buildroot/include")

# Test i is described by desc[i]; its TU is $tmp/i.tu and its language
# lang[i]; results land in $tmp/i.rc and $tmp/i.log.
desc=()
lang=()
n=0
add_test() { # LANG DESCRIPTION TU-TEXT
    n=$((n + 1))
    lang[n]=$1
    desc[n]="$1: $2"
    printf '%s' "$3" >"$tmp/$n.tu"
}

for h in "${headers[@]}"; do
    tu="#include <$h>"$'\n'
    add_test c "$h" "$tu"
    add_test c++ "$h" "$tu"
done
all=""
for h in "${headers[@]}"; do
    all+="#include <$h>"$'\n'
done
add_test c "all headers together" "$all"
add_test c++ "all headers together" "$all"

run_one() { # INDEX
    local i=$1 rc
    if [ "${lang[i]}" = c ]; then
        "${cc[@]}" "${cflags[@]}" -x c "$tmp/$i.tu" >"$tmp/$i.log" 2>&1
    else
        "${cxx[@]}" "${cxxflags[@]}" -x c++ "$tmp/$i.tu" >"$tmp/$i.log" 2>&1
    fi
    rc=$?
    echo "$rc" >"$tmp/$i.rc"
}

jobs=${HEADER_CHECK_JOBS:-$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)}
[ "$jobs" -gt 8 ] 2>/dev/null && jobs=8
[ "$jobs" -ge 1 ] 2>/dev/null || jobs=1
running=0
for ((i = 1; i <= n; i++)); do
    run_one "$i" &
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then
        wait -n
        running=$((running - 1))
    fi
done
wait

echo "1..$n"
failed=0
for ((i = 1; i <= n; i++)); do
    rc=$(cat "$tmp/$i.rc" 2>/dev/null || echo 127)
    if [ "$rc" = 0 ]; then
        echo "ok $i - ${desc[i]}"
        continue
    fi
    failed=$((failed + 1))
    echo "not ok $i - ${desc[i]}"
    if [ "$have_gen" -eq 0 ] && [ "${desc[i]#*: }" = "$gen" ]; then
        echo "# $buildroot/include/$gen does not exist (not a configured" \
            "build directory?)"
    fi
    if [ "${lang[i]}" = c ]; then
        echo "# ${cc[*]} ${cflags[*]} -x c <tu>"
    else
        echo "# ${cxx[*]} ${cxxflags[*]} -x c++ <tu>"
    fi
    sed -e "s|$tmp/$i.tu|<tu>|g" -e 's/^/#   /' "$tmp/$i.log" | head -n 40
done

if [ "$failed" -ne 0 ]; then
    echo "# header-check: $failed of $n compilations failed"
    exit 1
fi
echo "# header-check: all ${#headers[@]} headers compile alone as C and C++"
exit 0
