#!/bin/sh
# SPDX-License-Identifier: MIT
# README command 2: build and run the whole test suite three times -- plain,
# ASan+UBSan and TSan -- then print one line "N passed, N failed, N skipped"
# computed from meson's test logs. Exit status is non-zero if anything failed.
#
#   scripts/run-tests.sh            all three builds
#   scripts/run-tests.sh plain      only the plain build (faster while developing)
set -u
cd "$(dirname "$0")/.."
sh scripts/deps.sh || exit 1

configs=${*:-"plain asan tsan"}
status=0
logs=""

run_config() {
	name=$1; shift
	dir=build-ci-$name
	opts=$1; shift
	echo "=== $name build ($dir) ==="
	rm -rf "$dir"
	# shellcheck disable=SC2086
	if ! meson setup "$dir" $opts >"$dir.setup.log" 2>&1; then
		cat "$dir.setup.log"; status=1; return
	fi
	if ! ninja -C "$dir" >"$dir.build.log" 2>&1; then
		tail -50 "$dir.build.log"; status=1; return
	fi
	# shellcheck disable=SC2068
	meson test -C "$dir" --print-errorlogs --num-processes 2 $@ || status=1
	logs="$logs $dir/meson-logs/testlog.json"
}

for c in $configs; do
	case $c in
	plain)
		run_config plain "-Dwerror=true"
		echo "=== benchmark smoke run (not counted) ==="
		build-ci-plain/tools/hetmem bench fence -d 1 || status=1
		build-ci-plain/tools/hetmem bench mm -d 1 || status=1
		build-ci-plain/tools/hetmem bench migrate -d 1 || status=1
		;;
	asan)
		run_config asan "-Db_sanitize=address,undefined -Db_lundef=false" \
			--suite unit --suite stress --timeout-multiplier 3 ;;
	tsan)
		run_config tsan "-Db_sanitize=thread -Db_lundef=false" \
			--suite unit --suite stress --timeout-multiplier 4 ;;
	*)
		echo "unknown configuration '$c' (plain, asan, tsan)" >&2; exit 2 ;;
	esac
done

# shellcheck disable=SC2086
python3 scripts/test-summary.py $logs || status=1
exit $status
