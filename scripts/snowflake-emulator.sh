#!/usr/bin/env bash
# The Snowflake emulator the tests load into: fakesnow's server (PyPI) behind
# tests/snowflake/emulator.py, which fills in the response fields the
# snowflake-api crate requires. Installed into its own virtualenv, because
# fakesnow brings DuckDB 2 and the tests read DuckDB files with DuckDB 1.4.
#
#   scripts/snowflake-emulator.sh install    create the virtualenv and install fakesnow
#   scripts/snowflake-emulator.sh with CMD   run CMD against a private emulator on a
#                                            free port, then stop it; CMD finds it at
#                                            $SNOWFLAKE_EMULATOR_URL and its Python
#                                            (with the Snowflake connector) at
#                                            $SNOWFLAKE_EMULATOR_PYTHON
#
# SNOWFLAKE_EMULATOR_VENV (default ~/.cache/iot-streaming/fakesnow-venv) is where
# the virtualenv lives.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${SNOWFLAKE_EMULATOR_VENV:-$HOME/.cache/iot-streaming/fakesnow-venv}
python=$venv/bin/python
# snowflake-connector-python 5 breaks fakesnow 0.12's server.
packages=('fakesnow[server]==0.12.1' 'snowflake-connector-python<5')

say() { printf 'snowflake-emulator: %s\n' "$*" >&2; }

install() {
  "$repo/scripts/venv.sh" "$venv" "${packages[@]}"
}

with() {
  install
  # Not local: the EXIT trap reads them after the function has returned.
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  dir=$(mktemp -d -t iot-snowflake.XXXXXX)
  # fakesnow keeps internal stages in a temporary folder it never removes: inside
  # $dir, it goes with it.
  TMPDIR=$dir "$python" "$repo/tests/snowflake/emulator.py" --port "$port" >"$dir/emulator.log" 2>&1 &
  pid=$!
  trap 'status=$?; kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
        if [[ $status != 0 && -s $dir/emulator.log ]]; then
          say "the command failed; the emulator log ends with:"; tail -n 40 "$dir/emulator.log" >&2
        fi
        rm -rf "$dir"' EXIT
  for _ in $(seq 1 300); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      say "running on http://127.0.0.1:$port (pid $pid)"
      SNOWFLAKE_EMULATOR_URL=http://127.0.0.1:$port SNOWFLAKE_EMULATOR_PYTHON=$python "$@"
      return
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      say "the emulator exited while starting; its log says:"
      tail -n 20 "$dir/emulator.log" >&2
      exit 1
    fi
    sleep 0.1
  done
  say "the emulator did not answer on 127.0.0.1:$port within 30 s"
  tail -n 20 "$dir/emulator.log" >&2
  exit 1
}

case ${1:-} in
  install) install ;;
  with) shift; with "$@" ;;
  *)
    sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
