#!/usr/bin/env bash
# Download the nightly-* artifacts of this workflow's last successful run into DIR (DIR/nightly-<line>), for
# `bce-harness compare` against tonight's.  Uses the gh CLI and its own authentication (GH_TOKEN in CI).
# Nothing to download (the first night, or artifacts expired) is not an error: the comparison is skipped.
# Usage: .github/scripts/previous-night.sh DIR
set -euo pipefail
dir=${1:?usage: previous-night.sh DIR}
run=$(gh run list --workflow nightly.yml --status success --limit 1 --json databaseId --jq '.[0].databaseId // empty')
if [ -z "$run" ]; then
  echo "no previous successful nightly: nothing to compare against"
  exit 0
fi
mkdir -p "$dir"
gh run download "$run" --pattern 'nightly-*' --dir "$dir" || echo "run $run: its nightly artifacts could not be downloaded (expired?)"
