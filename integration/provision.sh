#!/bin/sh
# Install missing system packages the test suites need.
# Arguments: package:probe pairs; a probe is a command name or an absolute path that exists once the
# package is installed. As root on Debian the missing packages are installed with apt (after one
# `apt-get update`); elsewhere the missing packages are named and the suites that need them skip,
# saying what is missing.
missing=""
for spec in "$@"; do
    pkg=${spec%%:*}; probe=${spec#*:}
    case "$probe" in
        /*) [ -e "$probe" ] || missing="$missing $pkg" ;;
        *) command -v "$probe" >/dev/null 2>&1 || missing="$missing $pkg" ;;
    esac
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "provision: installing$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq --no-install-recommends $missing >/dev/null || {
        echo "provision: apt-get install$missing failed" >&2; exit 1; }
else
    echo "provision: missing system packages:$missing (not root on Debian, not installing);" \
         "the suites that need them will be skipped and say so" >&2
fi
