#!/usr/bin/env bash
# Installs the npm clients for the e2e tests (openai, ai + @ai-sdk/openai-compatible, @langchain/openai) into DEST/node_modules (a CTest fixture).
# Uses the committed package-lock.json (npm ci); skips the install when DEST already holds exactly
# that lock's packages.
#   npm_install.sh SOURCE_DIR DEST_DIR
set -euo pipefail
src=$1
dest=$2
mkdir -p "$dest"
if [[ -f "$dest/node_modules/openai/package.json" ]] && cmp -s "$src/package-lock.json" "$dest/package-lock.json"; then
  echo "npm_install: openai $(node -p "require('$dest/node_modules/openai/package.json').version") already installed"
  exit 0
fi
cp "$src/package.json" "$src/package-lock.json" "$dest/"
cd "$dest"
npm ci --no-audit --no-fund --loglevel=error
echo "npm_install: installed openai $(node -p "require('./node_modules/openai/package.json').version")"
