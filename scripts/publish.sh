#!/usr/bin/env bash
# Publish the built book to GitHub Pages: push _build/html to the gh-pages branch with ghp-import,
# the way Jupyter Book documents it (`ghp-import -n -p -f _build/html`). Run `make book` (or
# `make test`) first; `make publish` calls this script. The repository's Pages setting must serve
# the gh-pages branch (README, "Publishing").
#   PUBLISH_REMOTE  the git remote to push to (default: origin)
#   PUBLISH_BRANCH  the branch to write (default: gh-pages)
#   PUBLISH_HTML    the built site (default: _build/html)
set -euo pipefail

html="${PUBLISH_HTML:-_build/html}"
remote="${PUBLISH_REMOTE:-origin}"
branch="${PUBLISH_BRANCH:-gh-pages}"

if [ ! -f "$html/index.html" ]; then
    echo "publish: $html/index.html is missing: build the book first (make book)" >&2
    exit 2
fi
if ! git remote get-url "$remote" >/dev/null 2>&1; then
    echo "publish: this repository has no git remote named '$remote' (set PUBLISH_REMOTE)" >&2
    exit 2
fi
if ! command -v ghp-import >/dev/null 2>&1; then
    echo "publish: ghp-import is missing: make setup (or pip install ghp-import==2.1.0)" >&2
    exit 2
fi

# ghp-import commits as the configured git user; CI machines often have none.
export GIT_COMMITTER_NAME="${GIT_COMMITTER_NAME:-$(git config user.name || echo 'Beyond BERT publisher')}"
export GIT_COMMITTER_EMAIL="${GIT_COMMITTER_EMAIL:-$(git config user.email || echo 'publisher@localhost')}"
source="$(git rev-parse --short HEAD 2>/dev/null || echo 'an uncommitted tree')"

# -n: a .nojekyll file (GitHub Pages would hide _static/ and _images/ otherwise);
# -p -f: push, replacing whatever the branch held.
ghp-import -n -p -f -r "$remote" -b "$branch" -m "Publish the book built from $source" "$html"
files=$(git ls-tree -r --name-only "$branch" | wc -l)
echo "publish: $files files on $remote/$branch (built from $source)"
