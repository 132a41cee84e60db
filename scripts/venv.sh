# Sourced by scripts that need a pinned Python venv (make-fixtures.sh, bench/peers.sh).
#
# ensure_venv LABEL VENV REQUIREMENTS [NO_DEPS_REQUIREMENTS]
#   Creates VENV with the packages pinned in REQUIREMENTS (and those of NO_DEPS_REQUIREMENTS,
#   installed without their dependencies), or reuses it when it was built from the same
#   requirements (a sha256 stamp inside the venv). Sets VENV_INSTALL_SECONDS to the
#   pip install time when it installed, and leaves it empty when it reused the venv.
#   Uses $PYTHON (default python3) to create the venv.
ensure_venv() {
    local label=$1 venv=$2 req=$3 nodeps=${4:-} stamp want have start
    stamp="$venv/.requirements.sha256"
    want="$(cat "$req" ${nodeps:+"$nodeps"} | sha256sum | cut -d' ' -f1)"
    have="$(cat "$stamp" 2>/dev/null || true)"
    VENV_INSTALL_SECONDS=
    if [ -x "$venv/bin/python" ] && [ "$want" = "$have" ]; then
        return 0
    fi
    echo "$label: creating $venv" >&2
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    "${PYTHON:-python3}" -m venv "$venv"
    start=$(date +%s)
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r "$req"
    if [ -n "$nodeps" ]; then
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input --no-deps -r "$nodeps"
    fi
    VENV_INSTALL_SECONDS=$(( $(date +%s) - start ))
    echo "$label: pip install took ${VENV_INSTALL_SECONDS}s" >&2
    echo "$want" > "$stamp"
}
