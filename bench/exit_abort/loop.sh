#!/usr/bin/env bash
# Counts abnormal exits of `deno test` on this directory's four test files
# (bench/RESULTS.md, "Exit aborts"). Usage: bench/exit_abort/loop.sh MODE RUNS
#   together  one `deno test` process for the four files
#   parallel  the same with --parallel (what `deno task test` does)
#   separate  one `deno test` process per file, DENO_JOBS (2) at a time
# REPRO_DESTROY=1 destroys each file's device after its last test; REPRO_SKIP_EXIT=1
# skips the C exit handlers (libEGL's among them), as tests/fixtures.ts does.
set -u
cd "$(dirname "$0")"
mode=${1:?mode: together, parallel or separate}
runs=${2:-100}
export NO_COLOR=1
bad=0 procs=0
for ((i = 1; i <= runs; i++)); do
  case $mode in
  together | parallel)
    flag=$([[ $mode == parallel ]] && echo --parallel)
    deno test $flag -A a_test.ts b_test.ts c_test.ts d_test.ts >/tmp/exit_repro.log 2>&1
    rc=$? procs=$((procs + 1))
    if ((rc != 0)); then
      bad=$((bad + 1))
      echo "run $i: exit $rc: $(grep -m1 -E 'corrupted|free|malloc|Segmentation' /tmp/exit_repro.log)"
    fi
    ;;
  separate)
    # Two processes at a time (DENO_JOBS, default 2).
    running=0
    for f in a b c d; do
      if ((running >= ${DENO_JOBS:-2})); then
        wait -n
        rc=$? procs=$((procs + 1)) running=$((running - 1))
        ((rc != 0)) && bad=$((bad + 1)) && echo "run $i: exit $rc"
      fi
      deno test -A ${f}_test.ts >/tmp/exit_repro.$f.log 2>&1 &
      running=$((running + 1))
    done
    while ((running > 0)); do
      wait -n
      rc=$? procs=$((procs + 1)) running=$((running - 1))
      ((rc != 0)) && bad=$((bad + 1)) && echo "run $i: exit $rc"
    done
    ;;
  *) echo "unknown mode $mode" >&2 && exit 2 ;;
  esac
done
echo "$mode${REPRO_DESTROY:+ destroy=$REPRO_DESTROY}${REPRO_SKIP_EXIT:+ skip-exit=$REPRO_SKIP_EXIT}: $bad abnormal exits in $runs runs ($procs processes)"
