#!/usr/bin/env bash
# Installs the Debian packages concord builds and tests with, if any are missing.
set -euo pipefail
pkgs=(cmake make g++ clang catch2 glslang-tools glslang-dev spirv-tools libvulkan-dev mesa-vulkan-drivers vulkan-tools
      hipcc libamdhip64-dev rocm-device-libs python3)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all packages present"
  exit 0
fi
echo "setup: installing ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup: done"
