#!/bin/sh
# SPDX-License-Identifier: MIT
# README command 1: build hetmem and run the main job, "hetmem demo".
set -eu
cd "$(dirname "$0")/.."
sh scripts/deps.sh
[ -d build ] || meson setup build >/dev/null
ninja -C build >/dev/null
exec build/tools/hetmem demo "$@"
