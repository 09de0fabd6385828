#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Sum meson test logs into the one closing line CI reads.

Each argument is a meson-logs/testlog.json (one JSON object per line, one
line per test). A meson test counts once: OK and EXPECTEDFAIL are passes,
SKIP is a skip, everything else (FAIL, TIMEOUT, ERROR, UNEXPECTEDPASS) is a
failure. A log that is missing means its build failed: counted as a failure.
Exit status 1 if anything failed.
"""
import json
import sys


def main(paths):
    passed = failed = skipped = 0
    for path in paths:
        try:
            with open(path) as f:
                lines = [json.loads(l) for l in f if l.strip()]
        except OSError:
            print(f"missing test log {path}: counted as one failure")
            failed += 1
            continue
        for entry in lines:
            result = entry.get("result", "ERROR")
            if result in ("OK", "EXPECTEDFAIL"):
                passed += 1
            elif result == "SKIP":
                skipped += 1
            else:
                failed += 1
                print(f"FAILED: {path}: {entry.get('name')} ({result})")
    if not paths:
        failed += 1
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
