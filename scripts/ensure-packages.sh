# Sourced by demo.sh and test.sh (not run by itself): ensure_packages PKG... installs,
# with apt-get, the Debian packages that are not installed yet; nothing when all are.
# As root it runs apt-get directly, otherwise through sudo where sudo exists.

ensure_packages() {
  if ! command -v dpkg-query >/dev/null; then
    echo "ensure-packages: not a Debian system; make sure these are installed: $*" >&2
    return 0
  fi
  local missing=() pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q ' installed$' || missing+=("$pkg")
  done
  ((${#missing[@]})) || return 0

  local as_root=()
  if ((EUID != 0)); then
    if ! command -v sudo >/dev/null; then
      echo "ensure-packages: missing ${missing[*]}; install them as root (apt-get install)" >&2
      return 1
    fi
    as_root=(sudo)
  fi
  echo "ensure-packages: installing ${missing[*]}" >&2
  "${as_root[@]}" apt-get update -q >&2
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
}
