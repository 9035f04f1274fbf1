#!/usr/bin/env bash
# Runs the integration suites (arguments: go test flags and packages) with
# their output streamed as usual, and on failure repeats at the very end
# why each failed test failed: its last file:line messages. A CI log shows
# only a run's tail, and a failed suite's tail is otherwise the service
# logs its cleanups dump.
set -uo pipefail
GO=${GO:-go}
log=$(mktemp "${TMPDIR:-/tmp}/edgeid-integration.XXXXXX")
trap 'rm -f "$log"' EXIT
"$GO" test "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
if [ "$rc" -ne 0 ]; then
	echo
	echo "==== integration: why each failed test failed (its last messages, repeated) ===="
	awk '
		# go test -v names the test whose output follows.
		/^=== (RUN|CONT|NAME|PAUSE) / { cur = $3; next }
		/^ *--- FAIL: / { failed[++nf] = $3; next }
		# A message from t.Log/t.Error/t.Fatal: "    file_test.go:123: text".
		# A dumped service log ("---- path ----") is not why a test failed.
		/^ +[A-Za-z0-9_.]+\.go:[0-9]+: ---- .* ----$/ { next }
		/^ +[A-Za-z0-9_.]+\.go:[0-9]+: / {
			n[cur]++
			msg[cur, n[cur]] = substr($0, 1, 800)
		}
		END {
			for (i = 1; i <= nf; i++) {
				t = failed[i]
				if (seen[t]++) continue
				print "--- " t
				first = n[t] > 8 ? n[t] - 7 : 1
				for (j = first; j <= n[t]; j++) print msg[t, j]
			}
		}
	' "$log"
fi
exit "$rc"
