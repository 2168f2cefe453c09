#!/usr/bin/env bash
# Makes a virtualenv under the cache with pinned packages, once: the Python the
# tests and tools use never touches the system's (Debian and Ubuntu refuse a
# system-wide pip install, PEP 668).
#
#   scripts/venv.sh DIR PACKAGE...   create DIR if needed and install PACKAGE... (pip's
#                                    arguments: names with versions, or -r FILE) into
#                                    it, unless they were installed last time
#
# Prints nothing when everything is installed already.
set -euo pipefail

dir=${1:?usage: scripts/venv.sh DIR PACKAGE...}
shift
python=$dir/bin/python
stamp=$dir/.iot-packages

say() { printf 'venv: %s\n' "$*" >&2; }

# The packages asked for last time are recorded (requirement files by their
# contents, with the files they include by `-r`): the same list needs no pip run.
contents() {
  cat "$1"
  local included
  while read -r included; do
    [[ -f $(dirname "$1")/$included ]] && contents "$(dirname "$1")/$included"
  done < <(sed -n 's/^-r[[:space:]]*//p' "$1")
}
# A file stands for its contents, not its path: the same file named from another
# folder is the same list.
wanted=""
args=("$@")
for i in "${!args[@]}"; do
  if [[ ${args[$i]} == -r && -f ${args[$((i + 1))]:-} ]]; then
    wanted+=$'\n'$(contents "${args[$((i + 1))]}")
  elif [[ $i == 0 || ${args[$((i - 1))]} != -r ]]; then
    wanted+=$'\n'${args[$i]}
  fi
done
# Installed already if every line asked for now was asked for last time: a set that
# includes this one by `-r` (the tests' requirements include the tools') serves it
# too, and the two do not install in turn.
covered() {
  [[ -f $stamp ]] || return 1
  local line
  while IFS= read -r line; do
    [[ -z $line ]] || grep -Fxq -- "$line" "$stamp" || return 1
  done <<<"$wanted"
}
if [[ -x $python ]] && covered; then
  exit 0
fi
# The packages go in with uv (pinned, from PyPI), not pip: pip spent about three
# minutes of CPU on a fresh machine resolving, unpacking and compiling these sets,
# while the test command's debug build needed the same two cores; uv takes seconds.
# It reads the system's certificates (UV_NATIVE_TLS), as curl and apt do, and
# UV_DEFAULT_INDEX for a mirror (pip.conf is pip's own).
UV_VERSION=0.13.9
cache=${IOT_CACHE_DIR:-$HOME/.cache/iot-streaming}
uv=$cache/uv/$UV_VERSION/uv
export UV_NATIVE_TLS=${UV_NATIVE_TLS:-true}

# python3's own venv module, for the one virtualenv uv comes in.
python_venv() {
  if ! python3 -m venv "$1" 2>"$1.err"; then
    cat "$1.err" >&2
    say "python3 cannot make a virtualenv here; on Debian or Ubuntu install python3-venv (apt-get install python3-venv) and run again"
    rm -rf "$1" "$1.err"
    exit 1
  fi
  rm -f "$1.err"
}

if [[ ! -x $uv ]]; then
  say "installing uv $UV_VERSION into $(dirname "$uv") (once)"
  mkdir -p "$(dirname "$uv")"
  # uv is one static binary: installed with pip into a scratch virtualenv, then
  # moved into place whole, so that a run beside this one never sees half of it.
  scratch=$(mktemp -d "$(dirname "$uv")/install.XXXXXX")
  trap 'rm -rf "$scratch"' EXIT
  python_venv "$scratch/venv"
  "$scratch/venv/bin/python" -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
  mv "$scratch/venv/bin/uv" "$uv"
fi
if [[ ! -x $python ]]; then
  mkdir -p "$(dirname "$dir")"
  "$uv" venv --quiet --python "$(command -v python3)" "$dir"
fi
say "installing $* into $dir"
"$uv" pip install --quiet --python "$python" "$@"
printf '%s' "$wanted" >"$stamp"
