#!/bin/sh
# Runs every fuzz target of msdav (func FuzzXxx in a _test.go file) for a
# bounded time each: FUZZTIME per target (default 3s; 21 targets, about
# 3 minutes with compiling on an idle 2-core box). A failure stops
# the run; the input it found is kept in testdata/fuzz/<target>/ of its
# package, where a plain go test replays it from then on.
# Usage: deploy/fuzz.sh [package-dir ...]   (default: every package)
set -eu
cd "$(dirname "$0")/.."
t=${FUZZTIME:-3s}
dirs=${*:-$(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u)}
for d in $dirs; do
	for f in $(cat "$d"/*_test.go | grep -o '^func Fuzz[A-Za-z0-9_]*' | sed 's/^func //' | sort -u); do
		echo "fuzz: $d $f ($t)"
		go test -run '^$' -fuzz "^$f\$" -fuzztime "$t" "./${d#./}"
	done
done
