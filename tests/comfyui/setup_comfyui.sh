#!/usr/bin/env bash
# Build the Python environment that runs a ComfyUI source tree for tests/comfyui (nothing of
# ComfyUI enters this repo, and the tree itself is never written to, so it may be read-only).
#   bash tests/comfyui/setup_comfyui.sh COMFYUI_TREE VENV
# Then: COMFYUI_PATH=COMFYUI_TREE COMFYUI_PYTHON=VENV/bin/python python -m pytest -ra tests/comfyui
#
# The venv gets CPU torch first, then the tree's requirements without torch / torchvision /
# torchaudio / spandrel (their registry wheels do not load beside CPU torch 2.13), this pack's
# requirements, and the import-only torchvision / torchaudio stubs (make_torchvision_stub.py).
# A venv whose stamp (the inputs of this recipe) is unchanged is reused as it is.
set -euo pipefail
TREE=$(cd "${1:?usage: setup_comfyui.sh COMFYUI_TREE VENV}" && pwd)
VENV=${2:?usage: setup_comfyui.sh COMFYUI_TREE VENV}
PYTHON=${PYTHON:-python3}
TORCH=torch==2.13.0
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
[ -f "$TREE/main.py" ] && [ -f "$TREE/requirements.txt" ] || { echo "$TREE is not a ComfyUI tree" >&2; exit 1; }

stamp=$( { echo "recipe 1 $TORCH $("$PYTHON" -c 'import sys; print(sys.version)')"
           cat "$TREE/requirements.txt" "$REPO/requirements.txt" "$HERE/make_torchvision_stub.py"; } \
         | sha256sum | cut -d' ' -f1)
if [ -x "$VENV/bin/python" ] && [ "$(cat "$VENV/.lumix-stamp" 2>/dev/null)" = "$stamp" ]; then
  echo "ComfyUI venv $VENV is up to date"
  exit 0
fi
echo "building ComfyUI venv $VENV for $TREE"
rm -rf "$VENV"
mkdir -p "$(dirname "$VENV")"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q "$TORCH"
grep -vE '^(torch|torchvision|torchaudio|spandrel)([^A-Za-z0-9_.-].*)?$' "$TREE/requirements.txt" \
  > "$VENV/comfyui-requirements.txt"
"$VENV/bin/python" -m pip install -q -r "$VENV/comfyui-requirements.txt" -r "$REPO/requirements.txt"
"$VENV/bin/python" "$HERE/make_torchvision_stub.py"
echo "$stamp" > "$VENV/.lumix-stamp"
echo "ready: COMFYUI_PATH=$TREE COMFYUI_PYTHON=$VENV/bin/python"
