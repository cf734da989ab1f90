#!/usr/bin/env bash
# Set up voice_gru on Debian 12: Debian packages, .venv, the project installed with its pins.
# Idempotent and quiet when everything is already there. Any arguments are run as a command
# inside the venv (from the directory you called it from):  scripts/setup.sh voice-gru demo
set -euo pipefail

orig_pwd=$PWD
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

log() { echo "setup: $*" >&2; }
trap 'rm -f "${apt_log:-}" "${pip_log:-}"' EXIT  # a stop during apt-get or pip leaves no log in /tmp

# --- Debian packages ------------------------------------------------------------------------
# libportaudio2: sounddevice; pulseaudio + pulseaudio-utils: the private fake microphone used
# by the audio tests (pactl, paplay); espeak-ng: synthetic speech for demos and tests; python3-venv: Debian's
# python3 makes no venv (with pip) without it.
apt_packages=(libportaudio2 pulseaudio pulseaudio-utils espeak-ng python3 python3-venv)
missing=()
for p in "${apt_packages[@]}"; do
    dpkg -s "$p" 2>/dev/null | grep -q '^Status: install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
    sudo=()
    if [[ $(id -u) != 0 ]]; then
        if command -v sudo >/dev/null 2>&1; then
            sudo=(sudo)
        else
            log "missing Debian packages: ${missing[*]}; run as root or install them: apt-get install ${missing[*]}"
            exit 1
        fi
    fi
    log "installing Debian packages: ${missing[*]}"
    apt_log=$(mktemp)
    if ! { "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q update &&
           "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"; } \
           >"$apt_log" 2>&1; then
        tail -n 30 "$apt_log" >&2
        rm -f "$apt_log"
        log "apt-get failed (output above)"
        exit 1
    fi
    rm -f "$apt_log"
fi

# --- virtual environment ----------------------------------------------------------------------
venv=$root/.venv
stamp=$venv/.voice_gru-install.sha256
# a clone moved or renamed keeps a .venv whose programs (pip, pytest, ruff, voice-gru) name the old path: made again
made_for=$(head -n 1 "$stamp" 2>/dev/null || true)
if [[ -n $made_for && $made_for == /* && $made_for != "$venv" ]]; then
    log "the clone moved from $(dirname "$made_for"): making .venv again"
    rm -f "$stamp"
    python3 -m venv --clear "$venv"
fi
if [[ ! -x $venv/bin/python || ! -x $venv/bin/pip ]]; then  # one made without pip (no python3-venv) is made again
    log "creating .venv"
    python3 -m venv --clear "$venv"
fi

want=$(echo "$venv"; sha256sum pyproject.toml constraints.txt)  # the venv's path first (checked above)
if [[ ! -f $stamp || $(cat "$stamp") != "$want" || ! -x $venv/bin/voice-gru ]]; then
    # torch 2.14.1 is a CUDA build (it runs on the CPU; the pairing ENVIRONMENT.md found working with
    # torchaudio): a new .venv takes ~6.2 GB. Say so now rather than after a wall of pip errors.
    need_mb=$((6400 - $(du -sm "$venv" | cut -f1)))
    free_mb=$(df -Pm "$venv" | awk 'NR == 2 {print $4}')
    if ((free_mb < need_mb)); then
        log "not enough disk for .venv: ${free_mb} MB free on $(df -P "$venv" | awk 'NR == 2 {print $6}'), the install needs ~${need_mb} MB more (torch's CUDA build); free some space and rerun"
        exit 1
    fi
    log "installing the project into .venv (pip, constraints.txt)"
    start=$SECONDS
    pip_log=$(mktemp)
    # pip's output (including this machine's index warnings) goes to a log, shown only on failure
    if ! PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1 \
            "$venv/bin/python" -m pip install -q -c constraints.txt -e '.[train,dev]' >"$pip_log" 2>&1; then
        grep -v "is ignored: it is neither a file nor a directory" "$pip_log" | tail -n 40 >&2
        if grep -q "No space left on device" "$pip_log"; then
            log "pip install failed: the disk filled up ($(df -Pm "$venv" | awk 'NR == 2 {print $4}') MB free now; a new .venv needs ~6.2 GB)"
        else
            log "pip install failed (output above)"
        fi
        rm -f "$pip_log"
        exit 1
    fi
    rm -f "$pip_log"
    # numba compiles the live path's kernels on first use (~10 s) and caches them beside the
    # package: done here, so the first `voice-gru listen` starts as fast as every later one
    "$venv/bin/python" -c 'from voice_gru.kernels import compiled_kernels; compiled_kernels()'
    printf '%s\n' "$want" >"$stamp"
    log "installed in $((SECONDS - start)) s"
else
    log "ready (Debian packages and .venv up to date)"
fi

# --- run the given command inside the venv --------------------------------------------------
if (($#)); then
    cd "$orig_pwd"
    export VIRTUAL_ENV=$venv
    export PATH=$venv/bin:$PATH
    exec "$@"
fi
