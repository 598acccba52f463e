#!/usr/bin/env bash
# Test stand-in for `flow task run-manifest MANIFEST INDEX` (the real subcommand lives in
# the flow binary). Reads line INDEX (0-based) of the manifest, a TaskLaunch in JSON, runs
# its argv (no shell) in its workdir with its env, stdout/stderr to its log files and its
# timeout, then writes the outcome atomically to result_path as AttemptOutcome JSON and
# exits with the task's status. Needs bash and jq.
set -uo pipefail

if [ $# -ne 4 ] || [ "$1" != task ] || [ "$2" != run-manifest ]; then
    echo "usage: $0 task run-manifest MANIFEST INDEX" >&2
    exit 2
fi
manifest=$3
index=$4
case $index in
'' | *[!0-9]*)
    echo "run-manifest: array index '$index' is not a number" >&2
    exit 2
    ;;
esac
line=$(sed -n "$((index + 1))p" "$manifest")
if [ -z "$line" ]; then
    echo "run-manifest: $manifest has no line for index $index" >&2
    exit 2
fi

field() { jq -r "$1" <<<"$line"; }
workdir=$(field .workdir)
stdout_path=$(field .stdout_path)
stderr_path=$(field .stderr_path)
result_path=$(field .result_path)
timeout_secs=$(field '.timeout.secs // empty')
task_id=$(field .task_id)
attempt=$(field .attempt)

argv=()
while IFS= read -r -d '' word; do
    argv+=("$word")
done < <(jq -j '.argv[] | (. + "\u0000")' <<<"$line")
while IFS= read -r -d '' pair; do
    export "$pair"
done < <(jq -j '.env[] | (.[0] + "=" + .[1] + "\u0000")' <<<"$line")
export FLOW_TASK_ID=$task_id FLOW_ATTEMPT=$attempt FLOW_RESULT_FILE=$result_path

mkdir -p "$workdir" "$(dirname "$stdout_path")" "$(dirname "$stderr_path")" "$(dirname "$result_path")"
started=$(date +%s.%N)
if [ -n "$timeout_secs" ]; then
    (cd "$workdir" && exec timeout --signal=KILL "$timeout_secs" "${argv[@]}") >"$stdout_path" 2>"$stderr_path"
else
    (cd "$workdir" && exec "${argv[@]}") >"$stdout_path" 2>"$stderr_path"
fi
code=$?
ended=$(date +%s.%N)

exit_code=$code
signal=null
class=null
message=null
if [ $code -eq 0 ]; then
    :
elif [ -n "$timeout_secs" ] && [ $code -eq 137 ]; then
    class='"timeout"' message='"killed after its timeout"' exit_code=null signal=9
elif [ $code -eq 126 ] || [ $code -eq 127 ]; then
    class='"launch-failed"' message="\"could not start ${argv[0]//\"/} (exit $code)\""
elif [ $code -gt 128 ]; then
    signal=$((code - 128)) exit_code=null class='"signal"' message="\"killed by signal $signal\""
else
    class='"nonzero-exit"' message="\"exit status $code\""
fi
tmp="$result_path.tmp.$$"
jq -n -c \
    --argjson exit_code "$exit_code" --argjson signal "$signal" \
    --argjson error_class "$class" --argjson message "$message" \
    --argjson started_at "$started" --argjson ended_at "$ended" \
    '{exit_code: $exit_code, signal: $signal, error_class: $error_class, message: $message,
      started_at: $started_at, ended_at: $ended_at}' >"$tmp" && mv "$tmp" "$result_path"
exit $code
