#!/usr/bin/env bash
# Runs the replication benchmark with rsync available for the comparison.
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! command -v rsync >/dev/null; then
  apt-get update -qq && apt-get install -y -qq rsync >/dev/null
fi
exec cargo bench -p ferry-replicator --bench replication
