#!/usr/bin/env bash
# Vendor the book's JavaScript from the npm registry into _static/vendor/ (versions pinned in package.json),
# so that the built HTML needs no CDN: require.js, the Jupyter widget HTML manager and MathJax 3.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=_static/vendor
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ver() { python3 -c "import json;print(json.load(open('package.json'))['dependencies']['$1'])"; }
pkgs="@jupyter-widgets/html-manager@$(ver @jupyter-widgets/html-manager) requirejs@$(ver requirejs) mathjax@$(ver mathjax)"
(cd "$tmp" && npm pack --silent $pkgs >/dev/null 2>&1) || { echo "npm pack failed for: $pkgs" >&2; exit 1; }
rm -rf "$dest"; mkdir -p "$dest/mathjax"
for f in "$tmp"/*.tgz; do mkdir -p "$f.d"; tar xzf "$f" -C "$f.d"; done
hm=$(ls -d "$tmp"/jupyter-widgets-html-manager-*.d/package/dist)
cp "$hm"/embed-amd.js "$dest/"
# font files the widget CSS refers to by name, next to embed-amd.js
find "$hm" -maxdepth 1 -regex '.*\.\(woff2?\|ttf\|eot\|svg\)' -exec cp {} "$dest/" \;
cp "$tmp"/requirejs-*.d/package/require.js "$dest/require.min.js"
mj=$(ls -d "$tmp"/mathjax-*.d/package/es5)
cp "$mj/tex-chtml.js" "$dest/mathjax/"
mkdir -p "$dest/mathjax/output/chtml/fonts"
cp -r "$mj/output/chtml/fonts/woff-v2" "$dest/mathjax/output/chtml/fonts/"
echo "vendored into $dest: $(du -sh "$dest" | cut -f1)"
