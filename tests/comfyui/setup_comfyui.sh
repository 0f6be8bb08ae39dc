#!/usr/bin/env bash
# Make a ComfyUI checkout + CPU venv for tests/comfyui (nothing of ComfyUI enters this repo).
#   bash tests/comfyui/setup_comfyui.sh SOURCE [DEST]
# SOURCE: a ComfyUI git repository (URL or local mirror path); DEST defaults to /tmp/comfyui.
# Then: COMFYUI_PATH=DEST python -m pytest -ra tests/comfyui
set -euo pipefail
SOURCE=${1:?usage: setup_comfyui.sh SOURCE [DEST]}
DEST=${2:-/tmp/comfyui}
COMMIT=${COMFYUI_COMMIT:-a125cd84}   # ComfyUI 0.3.64, the version the harness was written on
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)

[ -d "$DEST/.git" ] || git clone -q --no-checkout "$SOURCE" "$DEST"
if [ "$(git -C "$DEST" rev-parse -q --verify HEAD 2>/dev/null)" != "$(git -C "$DEST" rev-parse "$COMMIT^{commit}")" ] \
   || [ ! -f "$DEST/main.py" ]; then
  # A partial mirror may lack a few large blobs (e.g. a tokenizer.json the tests never use):
  # keep what checked out and leave the index matching HEAD.
  git -C "$DEST" -c advice.detachedHead=false checkout -q "$COMMIT" \
    || { echo "warning: some ComfyUI files could not be checked out" >&2; git -C "$DEST" reset -q; }
fi
[ -x "$DEST/venv/bin/python" ] || python3 -m venv "$DEST/venv"
PIP="$DEST/venv/bin/pip"
"$PIP" install -q torch==2.13.0
# torchvision/torchaudio do not load beside CPU torch 2.13; spandrel needs torchvision.
# Without them ComfyUI starts; only upscale-model and audio nodes fail to import.
grep -vE '^(torch|torchvision|torchaudio|spandrel)\s*$' "$DEST/requirements.txt" > "$DEST/venv/requirements-lumix-tests.txt"
"$PIP" install -q -r "$DEST/venv/requirements-lumix-tests.txt" -r "$REPO/requirements.txt" requests pytest
"$DEST/venv/bin/python" "$HERE/make_torchvision_stub.py"
echo "ComfyUI $(git -C "$DEST" rev-parse --short HEAD) ready: COMFYUI_PATH=$DEST"
