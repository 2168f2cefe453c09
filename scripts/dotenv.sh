# Sourced by the scripts that run our programs: the variables of a .env file in the
# folder the script was started from, exported, as simulate and load read them.
if [[ -f .env ]]; then
  set -a
  # shellcheck disable=SC1091
  source .env
  set +a
fi
