#!/usr/bin/env bash
# usage: source scripts/gpu/install_mamba_ssm.sh   (or bash ...; the sdists in ./.whl)
#
# Install mamba_ssm's pure-Python/Triton part (all Mamba2 needs) on an offline GPU machine.
#
#   source scripts/gpu/install_mamba_ssm.sh      # installs into $MAMBA_SITE (default /tmp/site), exports PYTHONPATH
#   bash   scripts/gpu/install_mamba_ssm.sh      # same, then prints the export line to use
#
# Needs the sdists in ./.whl (ignored by git; copy it to the GPU machine). Fetch them where there is
# internet (PyPI has source distributions only):
#   MAMBA_SKIP_CUDA_BUILD=TRUE MAMBA_FORCE_BUILD=TRUE \
#     pip download --no-build-isolation --no-deps --no-binary :all: mamba-ssm==2.3.2.post1 -d .whl
# and optionally causal-conv1d==1.7.0 the same way (CAUSAL_CONV1D_* variables).
#
# No CUDA extension is compiled: Mamba2's scan and gated RMSNorm are Triton, and
# samba.ops.upstream registers a stub for the Mamba-1 extension `selective_scan_cuda` that mamba_ssm imports.
# causal-conv1d is compiled only with SAMBA_BUILD_CAUSAL_CONV1D=1 (about 9 minutes on 16 cores for sm_90);
# without it our backend and mamba_ssm.Mamba2(use_mem_eff_path=False) run the conv through PyTorch.

_samba_install_mamba_ssm() {
    local repo whl site tmp sdist
    repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
    whl="${SAMBA_WHL_DIR:-$repo/.whl}"
    site="${MAMBA_SITE:-/tmp/site}"
    mkdir -p "$site"

    if [ -d "$site/mamba_ssm" ]; then
        echo "mamba_ssm already installed in $site"
    else
        sdist="$(ls "$whl"/mamba_ssm-*.tar.gz 2>/dev/null | sort | tail -n 1)"
        if [ -z "$sdist" ]; then
            echo "no mamba_ssm sdist in $whl (see the header of scripts/gpu/install_mamba_ssm.sh for the pip download line)" >&2
            return 1
        fi
        tmp="$(mktemp -d)"
        tar -xzf "$sdist" -C "$tmp"
        local src
        src="$(ls -d "$tmp"/mamba_ssm-*/ | head -n 1)"
        if ! (cd "$src" && MAMBA_SKIP_CUDA_BUILD=TRUE MAMBA_FORCE_BUILD=TRUE python3 -m pip install -q \
                --no-build-isolation --no-deps --no-index --target "$site" .); then
            # pip needs setuptools/wheel/packaging at build time; the package itself is plain Python files.
            echo "pip install failed; copying the mamba_ssm package directly" >&2
            cp -r "$src/mamba_ssm" "$site/"
        fi
        rm -rf "$tmp"
    fi

    if [ "${SAMBA_BUILD_CAUSAL_CONV1D:-0}" = "1" ] && [ ! -d "$site/causal_conv1d" ]; then
        sdist="$(ls "$whl"/causal_conv1d-*.tar.gz 2>/dev/null | sort | tail -n 1)"
        if [ -n "$sdist" ]; then
            tmp="$(mktemp -d)"
            tar -xzf "$sdist" -C "$tmp"
            (cd "$tmp"/causal_conv1d-*/ && CAUSAL_CONV1D_FORCE_BUILD=TRUE MAX_JOBS="${MAX_JOBS:-16}" \
                python3 -m pip install -q --no-build-isolation --no-deps --no-index --target "$site" .) \
                || echo "causal-conv1d build failed; continuing without it" >&2
            rm -rf "$tmp"
        else
            echo "SAMBA_BUILD_CAUSAL_CONV1D=1 but no causal_conv1d sdist in $whl" >&2
        fi
    fi

    case ":${PYTHONPATH:-}:" in
        *":$site:"*) ;;
        *) export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}" ;;
    esac
    (cd "$repo" && python3 - <<'PY'
from samba.ops.upstream import mamba_ssm_kernels, mamba_ssm_unavailable_reason
k = mamba_ssm_kernels()
print("mamba_ssm:", "ok" if k else f"UNAVAILABLE ({mamba_ssm_unavailable_reason()})",
      "| causal_conv1d:", "yes" if k and k.causal_conv1d_fn else "no (torch conv1d)")
PY
    )
}

_samba_install_mamba_ssm
_samba_rc=$?
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    echo "export PYTHONPATH=$PYTHONPATH"
    exit $_samba_rc
fi
unset -f _samba_install_mamba_ssm
