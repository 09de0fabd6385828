#!/bin/sh
# SPDX-License-Identifier: MIT
#
# cli-check.sh [-e REGEX]... -- COMMAND [ARGS]
#
# Runs COMMAND (a "hetmem" subcommand in the cli-* tests), copies its
# standard output to ours so that the test log shows it, and fails if
# COMMAND fails or if its output has no line matching one of the REGEXes
# (grep -E; "A|B" accepts either, e.g. a section or its skip line).
#
# Exit status: COMMAND's when it fails, 1 when a REGEX is missing, 2 on
# usage errors, 0 otherwise.
set -u

usage() {
	echo "usage: cli-check.sh [-e REGEX]... -- COMMAND [ARGS]" >&2
	exit 2
}

patterns=$(mktemp) || exit 1
out=$(mktemp) || { rm -f "$patterns"; exit 1; }
trap 'rm -f "$patterns" "$out"' EXIT

while [ $# -gt 0 ]; do
	case $1 in
	-e)	[ $# -ge 2 ] || usage
		printf '%s\n' "$2" >>"$patterns"
		shift 2 ;;
	--)	shift
		break ;;
	*)	usage ;;
	esac
done
[ $# -ge 1 ] || usage

"$@" >"$out"
status=$?
cat "$out"
[ "$status" -eq 0 ] || exit "$status"

missing=0
while IFS= read -r re; do
	if ! grep -Eq -- "$re" "$out"; then
		echo "cli-check.sh: no line of '$*' matches: $re" >&2
		missing=1
	fi
done <"$patterns"
exit "$missing"
