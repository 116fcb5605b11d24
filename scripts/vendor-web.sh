#!/usr/bin/env bash
# Vendor the web app's three libraries into web/vendor/ from npm, at pinned versions.
#
# The app has no build step: the browser loads these ES modules as they are. To upgrade one,
# change its version below, run this script, read the diff and run tests/web. Needs `npm` (only
# `npm pack`: nothing is installed, no package scripts run) and `tar`.
set -euo pipefail

MARKED=18.2.1      # Markdown to HTML              (MIT)
DOMPURIFY=3.5.0    # HTML sanitizer                (MPL-2.0 OR Apache-2.0)
GRAPHQL_WS=6.4.2   # graphql-transport-ws client   (MIT)

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$root/web/vendor"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# unpack NAME VERSION: the package's tarball from the registry, into $work/NAME/package.
unpack() {
  local name="$1" version="$2"
  mkdir -p "$work/$name"
  (cd "$work/$name" && npm pack --silent --ignore-scripts "$name@$version" >/dev/null)
  tar -xzf "$work/$name"/*.tgz -C "$work/$name"
  local got
  got="$(node -p "require('$work/$name/package/package.json').version" 2>/dev/null ||
    sed -n 's/^  "version": "\(.*\)",$/\1/p' "$work/$name/package/package.json")"
  if [ "$got" != "$version" ]; then
    echo "vendor-web: expected $name $version, got $got" >&2
    exit 1
  fi
}

unpack marked "$MARKED"
unpack dompurify "$DOMPURIFY"
unpack graphql-ws "$GRAPHQL_WS"

rm -rf "$out"
mkdir -p "$out/marked" "$out/dompurify" "$out/graphql-ws"

# marked: one self-contained ES module.
cp "$work/marked/package/lib/marked.esm.js" "$out/marked/marked.esm.js"
cp "$work/marked/package/LICENSE" "$out/marked/LICENSE"

# DOMPurify: its ES module build (renamed .js so every static server sends a JS MIME type).
cp "$work/dompurify/package/dist/purify.es.mjs" "$out/dompurify/purify.es.js"
cp "$work/dompurify/package/LICENSE" "$out/dompurify/LICENSE"

# graphql-ws: the browser client and the shared chunk it imports (its name has a content hash).
gws="$work/graphql-ws/package/dist"
cp "$gws/client.js" "$out/graphql-ws/client.js"
for chunk in $(grep -o "from '\./[^']*'" "$gws/client.js" | sed "s/from '\.\/\(.*\)'/\1/" | sort -u); do
  if grep -q "from '" "$gws/$chunk"; then
    echo "vendor-web: $chunk imports further modules; vendor them too" >&2
    exit 1
  fi
  cp "$gws/$chunk" "$out/graphql-ws/$chunk"
done
cp "$work/graphql-ws/package/LICENSE.md" "$out/graphql-ws/LICENSE.md"

cat >"$out/README.md" <<EOF
# Vendored libraries

Written by \`scripts/vendor-web.sh\` from the npm registry (\`npm pack\`); do not edit by hand.
To upgrade, change the version in the script and run it again.

| package | version | license | files |
|---|---|---|---|
| [marked](https://github.com/markedjs/marked) | $MARKED | MIT | \`marked/marked.esm.js\` (\`lib/marked.esm.js\`) |
| [dompurify](https://github.com/cure53/DOMPurify) | $DOMPURIFY | MPL-2.0 OR Apache-2.0 | \`dompurify/purify.es.js\` (\`dist/purify.es.mjs\`) |
| [graphql-ws](https://github.com/enisdenjo/graphql-ws) | $GRAPHQL_WS | MIT | \`graphql-ws/client.js\` and its chunk (\`dist/\`) |

Each folder holds the package's license file.
EOF

echo "vendored marked $MARKED, dompurify $DOMPURIFY, graphql-ws $GRAPHQL_WS into ${out#"$root"/}"
