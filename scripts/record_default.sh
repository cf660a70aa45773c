#!/usr/bin/env bash
# Record results/default/CHAPTER from a clean checkout of HEAD, so that its manifest says dirty=false even
# while the working tree has uncommitted edits:  bash scripts/record_default.sh 31_dadf [dfnb run args...]
# A git worktree at HEAD runs the chapter (its lib/ first on PYTHONPATH, this checkout's .venv and data
# cache); the finished run then replaces results/default/CHAPTER here, ready to commit.
set -euo pipefail
ch=${1:?usage: record_default.sh CHAPTER [dfnb run args...]}; shift
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
sha=$(git rev-parse HEAD)
wt=${TMPDIR:-/tmp}/dfnb-record-${sha:0:10}
[ -d "$wt" ] || git worktree add --detach "$wt" "$sha" >/dev/null
ln -sfn "$root/.venv" "$wt/.venv"
[ -e "$wt/_static/vendor" ] || ln -s "$root/_static/vendor" "$wt/_static/vendor"
export PYTHONPATH="$wt/lib" DFNB_DATA_CACHE="${DFNB_DATA_CACHE:-$root/results/_cache/data}" \
       DFNB_CACHE="${DFNB_CACHE:-$root/results/_cache/experiments}"  # experiments cached across recordings
(cd "$wt" && .venv/bin/dfnb run "$ch" --profile default --force "$@")
rm -rf "$root/results/default/$ch"
cp -r "$wt/results/default/$ch" "$root/results/default/$ch"
echo "recorded $ch at ${sha:0:10} into results/default/$ch (git worktree remove $wt when done)"
