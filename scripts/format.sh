#!/usr/bin/env bash
# Formats every C file with the tree's .clang-format, or with --check lists those that differ.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
mapfile -t files < <(find src include tests -name '*.[ch]' | sort)
[[ ${#files[@]} -eq 0 ]] && exit 0
if [[ ${1:-} == --check ]]; then
    # One clang-format for the whole tree; only when it objects, one per file to name them.
    clang-format --dry-run -Werror "${files[@]}" >/dev/null 2>&1 && exit 0
    bad=()
    for f in "${files[@]}"; do
        clang-format --dry-run -Werror "$f" >/dev/null 2>&1 || bad+=("$f")
    done
    if [[ ${#bad[@]} -gt 0 ]]; then
        echo "not formatted (run scripts/format.sh): ${bad[*]}" >&2
        exit 1
    fi
else
    clang-format -i "${files[@]}"
fi
