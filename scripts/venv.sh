#!/usr/bin/env bash
# Makes a virtualenv under the cache with pinned packages, once: the Python the
# tests and tools use never touches the system's (Debian and Ubuntu refuse a
# system-wide pip install, PEP 668).
#
#   scripts/venv.sh DIR PACKAGE...   create DIR if needed and install PACKAGE... (pip's
#                                    arguments: names with versions, or -r FILE) into
#                                    it, unless the same were installed last time
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
if [[ -x $python && -f $stamp && $(cat "$stamp") == "$wanted" ]]; then
  exit 0
fi
if [[ ! -x $python ]]; then
  mkdir -p "$(dirname "$dir")"
  if ! python3 -m venv "$dir" 2>"$dir.err"; then
    cat "$dir.err" >&2
    say "python3 cannot make a virtualenv here; on Debian or Ubuntu install python3-venv (apt-get install python3-venv) and run again"
    rm -rf "$dir" "$dir.err"
    exit 1
  fi
  rm -f "$dir.err"
fi
say "installing $* into $dir"
"$python" -m pip install --quiet --disable-pip-version-check "$@"
printf '%s' "$wanted" >"$stamp"
