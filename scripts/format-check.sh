#!/usr/bin/env bash
# Checks that the Swift sources follow .swift-format (swift-nio's house style).
# With --fix, rewrites them in place instead.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
mapfile -t files < <(git ls-files -co --exclude-standard '*.swift' ':!:Package.swift')
if [[ "${1:-}" == "--fix" ]]; then
    swift format format --in-place --parallel "${files[@]}"
    exit 0
fi
swift format lint --strict --parallel "${files[@]}"
echo "format-check: ${#files[@]} files follow .swift-format"
