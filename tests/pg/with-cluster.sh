#!/bin/sh
# Runs a command with a throw-away PostgreSQL cluster (cluster.sh):
# AGENTD_TEST_PG_URL names it; it is stopped and removed afterwards.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
dir=$(mktemp -d /tmp/agentd-pg-XXXXXX)
trap '"$here/cluster.sh" stop "$dir"' EXIT INT TERM
AGENTD_TEST_PG_URL=$("$here/cluster.sh" start "$dir")
export AGENTD_TEST_PG_URL
"$@"
