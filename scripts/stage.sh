#!/usr/bin/env bash
# One stage of `make test`, timed: scripts/stage.sh NAME COMMAND [ARG ...]
#
# The command's output goes to build/test-logs/NAME.log. The console gets a line when the stage
# starts and one when it ends, with its wall time and the test runner's closing line; a failing
# stage prints the last 150 lines of its log. Stages of two lanes may run at once, so each keeps
# its output to itself. `scripts/stage.sh --summary` prints every stage's time as a table.
set -uo pipefail
LOGS="${FTCOURSE_TEST_LOGS:-build/test-logs}"
mkdir -p "$LOGS"

if [ "${1:-}" = "--summary" ]; then
  echo "== make test, wall time per stage (after lint, three lanes run side by side)"
  printf '%-28s %8s %7s\n' stage seconds minutes
  total_start=$(sort -n "$LOGS"/*.start 2>/dev/null | head -1)
  for f in $(ls -tr "$LOGS"/*.seconds 2>/dev/null); do
    s=$(cat "$f")
    printf '%-28s %8s %7.1f\n' "$(basename "$f" .seconds)" "$s" "$(awk "BEGIN{print $s/60}")"
  done
  if [ -n "$total_start" ]; then
    total=$(( $(date +%s) - total_start ))
    printf '%-28s %8s %7.1f\n' "whole run" "$total" "$(awk "BEGIN{print $total/60}")"
  fi
  exit 0
fi

name="$1"
shift
log="$LOGS/$name.log"
start=$(date +%s)
echo "$start" > "$LOGS/$name.start"
echo "== $name: started $(date +%H:%M:%S), log in $log"
"$@" > "$log" 2>&1
rc=$?
seconds=$(( $(date +%s) - start ))
echo "$seconds" > "$LOGS/$name.seconds"
closing=$(grep -E '^=*\s*[0-9]+ (passed|failed|error)|[0-9]+ passed' "$log" | tail -1)
if [ "$rc" -eq 0 ]; then
  echo "== $name: ok in ${seconds} s ${closing:+($closing)}"
else
  echo "== $name: FAILED (exit $rc) after ${seconds} s; the end of $log:"
  tail -n 150 "$log"
  [ -n "$closing" ] && echo "$closing"
fi
exit "$rc"
