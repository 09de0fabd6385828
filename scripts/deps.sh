#!/bin/sh
# SPDX-License-Identifier: MIT
# Install what building and testing hetmem needs, if it is missing.
# Debian/Ubuntu packages; runs apt-get only when something is absent.
set -eu
need=""
command -v meson >/dev/null 2>&1 || need="$need meson"
command -v ninja >/dev/null 2>&1 || need="$need ninja-build"
command -v pkg-config >/dev/null 2>&1 || need="$need pkg-config"
command -v cc >/dev/null 2>&1 || need="$need gcc"
command -v c++ >/dev/null 2>&1 || need="$need g++"
command -v python3 >/dev/null 2>&1 || need="$need python3"
pkg-config --exists liburcu-bp 2>/dev/null || need="$need liburcu-dev"
[ -z "$need" ] && exit 0
echo "deps: installing$need" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq $need >/dev/null
