#!/usr/bin/env bash
# deps.sh: installs what kiln needs to build and test, from Debian's packages,
# when it is missing. Called by make; safe to run again (it checks first).
set -euo pipefail
need=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
pkgs=(gcc make protobuf-c-compiler libprotobuf-c-dev libjansson-dev python3 python3-onnx python3-numpy libonnx-testdata
      llvm-dev clang libclang-rt-14-dev qemu-user gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
# `deps.sh bench` also wants Node.js and npm (ONNX Runtime's npm package is the reference)
if [ "${1:-}" = bench ]; then pkgs+=(nodejs); command -v npm >/dev/null || pkgs+=(npm); fi
# `deps.sh zoo`: torch and torchvision export the zoo's architectures (zoo/export.py)
if [ "${1:-}" = zoo ]; then pkgs+=(python3-torch python3-torchvision); fi
for p in "${pkgs[@]}"; do
  if [ "$p" = nodejs ] && command -v node >/dev/null; then continue; fi
  have_pkg "$p" || need+=("$p")
done
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
echo "deps.sh: installing ${need[*]}"
SUDO=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null; then SUDO="sudo"; else
    echo "deps.sh: missing packages (${need[*]}) and not root; install them with apt-get" >&2; exit 1; fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${need[@]}"
