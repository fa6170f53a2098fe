#!/usr/bin/env bash
# Fuzzes the running API against its own contract (issue #7): starts `edm-monitor serve` on
# 127.0.0.1 (a free port, a temporary SQLite database, from a temporary working directory so
# that the served /openapi.yaml is proven to come from the binary), seeds a user, an email
# service, a task, an alert rule and a silence so that positive paths exist, and runs
# schemathesis against the served document with the checks
#   not_a_server_error, response_schema_conformance, status_code_conformance, content_type_conformance.
# Exits non-zero on any finding (or when the server cannot start). Bounded: every phase has a
# per-operation example cap and the whole run a time budget.
#
# Environment:
#   EDM_BIN                 the edm-monitor executable (default: `swift build --show-bin-path`/edm-monitor)
#   EDM_FUZZ_MAX_EXAMPLES   examples per operation and phase (default 10)
#   EDM_FUZZ_MAX_TIME       time budget of the schemathesis run, seconds (default 240)
#   EDM_FUZZ_SEED           hypothesis seed (default: random; printed, so a finding can be replayed)
#   EDM_FUZZ_REPORT_DIR     where the JUnit report goes (default: a temporary folder, printed)
#   EDM_API_TOKEN           a Bearer token to send (default: an admin token created for the run)
#   EDM_FUZZ_KEEP           non-empty: keep the database and schemathesis.toml (the server log and
#                           the report are always kept in the printed /tmp/edm-fuzz.* folder)
# Requires: schemathesis (pip install schemathesis), curl, python3.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$(pwd)

bin=${EDM_BIN:-"$(swift build --show-bin-path)/edm-monitor"}
[ -x "$bin" ] || { echo "fuzz.sh: $bin not found; run swift build first" >&2; exit 1; }
command -v schemathesis >/dev/null || { echo "fuzz.sh: schemathesis not installed (pip install schemathesis)" >&2; exit 1; }

work=$(mktemp -d /tmp/edm-fuzz.XXXXXX)
report_dir=${EDM_FUZZ_REPORT_DIR:-$work/report}
server_pid=""
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$server_pid" 2>/dev/null || true
  fi
  if [ -z "${EDM_FUZZ_KEEP:-}" ]; then rm -rf "$work/db" "$work/schemathesis.toml"; fi
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
base="http://127.0.0.1:$port"
mkdir -p "$work/db"
db_url="sqlite://$work/db/edm.sqlite"

# revokeToken is left out of the run: schemathesis learns ids from responses (GET /api/tokens)
# and would revoke the run's own token, leaving every later request a 401 (SecurityTests covers
# revocation). An admin token, created before the server starts: the API then requires tokens, so the run
# goes through the real authentication on every request and reaches every operation.
token=${EDM_API_TOKEN:-$("$bin" token create --role admin --name fuzz --database-url "$db_url" 2>/dev/null | tail -n 1)}
if [ -z "$token" ]; then echo "fuzz.sh: could not create an API token" >&2; exit 1; fi
auth_curl=()
auth_st=()
if [ -n "$token" ]; then
  auth_curl=(-H "Authorization: Bearer $token")
  auth_st=(-H "Authorization: Bearer $token")
fi

echo "== edm-monitor serve on $base (database $work/db/edm.sqlite, log $work/server.log)"
( cd "$work" && exec "$bin" serve --host 127.0.0.1 --port "$port" --database-url "$db_url" --log-level notice ) > "$work/server.log" 2>&1 &
server_pid=$!
for i in $(seq 1 300); do
  if curl -fsS -o /dev/null "$base/api/monitoring/health" 2>/dev/null; then break; fi
  if ! kill -0 "$server_pid" 2>/dev/null; then echo "fuzz.sh: the server exited:" >&2; cat "$work/server.log" >&2; exit 1; fi
  [ "$i" = 300 ] && { echo "fuzz.sh: the server did not answer within 30 s" >&2; cat "$work/server.log" >&2; exit 1; }
  sleep 0.1
done

# The served document must be the repository's, byte for byte.
curl -fsS "$base/openapi.yaml" -o "$work/served.yaml"
cmp -s "$work/served.yaml" "$repo/openapi.yaml" || { echo "fuzz.sh: the served /openapi.yaml differs from openapi.yaml (rebuild: the binary embeds it)" >&2; exit 1; }

post() { # post PATH JSON → prints the id of the created object (`id`, or `task.id`)
  curl -fsS "${auth_curl[@]}" -H 'Content-Type: application/json' -X POST "$base$1" -d "$2" \
    | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get("id") or d["task"]["id"])'
}
user=$(post /api/users '{"name":"Fuzz","email":"fuzz@example.com"}')
service=$(post /api/email-services '{"name":"fuzz-dry-run","provider":"dry_run","sender_address":"news@example.com","daily_quota":1000,"sending_interval_seconds":3600}')
task=$(post /api/tasks "{\"user_id\":\"$user\",\"name\":\"fuzz\",\"subject\":\"Hi {{name}}\",\"text_body\":\"Hello\",\"recipients\":[{\"email\":\"a@example.com\",\"name\":\"A\"},{\"email\":\"b@example.com\"}]}")
rule=$(post /api/monitoring/alert-rules '{"name":"fuzz","metric_name":"edm_fuzz","condition_type":"threshold","threshold_value":1,"comparison_operator":">","time_window_minutes":5,"severity":"warning"}')
silence=$(post /api/monitoring/silences "{\"matchers\":[{\"name\":\"alertname\",\"value\":\"fuzz\"}],\"ends_at\":$(($(date +%s) + 86400)),\"created_by\":\"fuzz\",\"comment\":\"\"}")
curl -fsS "${auth_curl[@]}" -o /dev/null -H 'Content-Type: application/json' -X POST "$base/api/monitoring/performance-metrics" \
  -d '{"points":[{"name":"edm_fuzz","value":2,"unit":"count","tags":{"host":"a"}}]}'
echo "== seeded user $user, service $service, task $task, rule $rule, silence $silence"

# Path ids of the operations on a seeded resource are pinned to the seeded row so that the
# fuzzer reaches the handlers' positive paths (unknown and malformed ids are covered by the
# table-driven Swift test, OpenAPIContractTests). DELETEs are not pinned so the rows survive.
# New operations on these resources: add their operationId here.
cat > "$work/schemathesis.toml" <<EOF
[[operations]]
include-operation-id = ["getUser"]
parameters = { "path.id" = "$user" }

[[operations]]
include-operation-id = ["getEmailService", "patchEmailService", "putEmailService", "enableEmailService", "disableEmailService", "unfreezeEmailService"]
parameters = { "path.id" = "$service" }

[[operations]]
include-operation-id = ["getTask", "pauseTask", "resumeTask", "cancelTask"]
parameters = { "path.id" = "$task" }

[[operations]]
include-operation-id = ["getTaskMetrics"]
parameters = { "path.taskId" = "$task" }

[[operations]]
include-operation-id = ["getAlertRule", "putAlertRule", "patchAlertRule", "testAlertRule"]
parameters = { "path.id" = "$rule" }

[[operations]]
include-operation-id = ["getSilence", "expireSilence"]
parameters = { "path.id" = "$silence" }

[[operations]]
include-operation-id = ["createTask"]
parameters = { "body.user_id" = "$user" }
EOF

seed=${EDM_FUZZ_SEED:-$RANDOM$RANDOM}
echo "== schemathesis $(schemathesis --version 2>&1 | tail -n 1), seed $seed, report in $report_dir"
status=0
schemathesis --config-file "$work/schemathesis.toml" run "$base/openapi.yaml" \
  "${auth_st[@]}" \
  --checks not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance \
  --exclude-operation-id revokeToken \
  --phases examples,coverage,fuzzing \
  --max-examples "${EDM_FUZZ_MAX_EXAMPLES:-10}" \
  --max-time "${EDM_FUZZ_MAX_TIME:-240}" \
  --seed "$seed" \
  --request-timeout 20 \
  --workers 1 \
  --suppress-health-check all \
  --report junit --report-dir "$report_dir" \
  || status=$?

# A 5xx is logged by the server at error level ("request failed"): list them for the reader.
if grep -q "request failed" "$work/server.log"; then
  echo "== server errors logged during the run:" >&2
  grep "request failed" "$work/server.log" | head -n 20 >&2
  if [ "$status" = 0 ]; then status=1; fi
fi
if [ "$status" != 0 ]; then
  echo "fuzz.sh: findings (exit $status); server log: $work/server.log" >&2
fi
exit "$status"
