#!/usr/bin/env bash
# File each regression report (DIR/bce-<fingerprint>.md, written by bce-harness compare --out) as a GitHub
# issue, or comment on the issue that already carries its fingerprint, so a regression is filed once.
# Uses the gh CLI and its own authentication (GH_TOKEN in CI, `gh auth login` by hand).
# Usage: .github/scripts/file-regressions.sh DIR
set -euo pipefail
dir=${1:?usage: file-regressions.sh DIR}
shopt -s nullglob
reports=("$dir"/bce-*.md)
if [ ${#reports[@]} -eq 0 ]; then
  echo "no regression reports in $dir"
  exit 0
fi
for report in "${reports[@]}"; do
  fingerprint=$(basename "$report" .md)
  title=$(head -n 1 "$report" | sed 's/^# //')
  number=$(gh issue list --state all --search "\"[$fingerprint]\" in:title" --json number --jq '.[0].number // empty')
  if [ -n "$number" ]; then
    gh issue reopen "$number" >/dev/null 2>&1 || true
    gh issue comment "$number" --body-file "$report"
    echo "$fingerprint: updated #$number"
  else
    gh issue create --title "$title" --body-file "$report"
    echo "$fingerprint: filed"
  fi
done
