"""Start a small MPI job on this machine (loopback only) for the distributed tests.

The launcher forks the processes locally (no ssh) with its control connections on ``lo``;
the environment keeps libfabric and UCX traffic on the loopback or shared memory."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def mpiexec() -> str | None:
    """The ``mpiexec`` next to this Python (the ``mpich`` wheel's), else on PATH."""
    here = Path(sys.executable).parent / "mpiexec"
    return str(here) if here.exists() else shutil.which("mpiexec")


def require_mpi() -> str:
    """``mpiexec``'s path, or skip the test when mpi4py or an MPI launcher is missing."""
    pytest.importorskip("mpi4py", reason="needs mpi4py: pip install -e '.[mpi]'")
    exe = mpiexec()
    if exe is None:
        pytest.skip("needs an MPI launcher (mpiexec): pip install -e '.[mpi]'")
    return exe


def command(exe: str, n: int, args: list[str]) -> list[str]:
    """``mpiexec -n N python ARGS`` on localhost only, for MPICH/Intel MPI or Open MPI."""
    version = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60)
    text = version.stdout + version.stderr
    if "HYDRA" in text.upper():  # MPICH, Intel MPI: local fork launcher, no ssh
        launch = [exe, "-n", str(n), "-hosts", "localhost", "-launcher", "fork", "-iface", "lo"]
    else:  # Open MPI
        launch = [exe, "-n", str(n), "--oversubscribe", "--host", f"localhost:{n}"]
    return [*launch, sys.executable, *args]


def loopback_env() -> dict[str, str]:
    """Environment that keeps every MPI transport on the loopback or shared memory."""
    return {
        "OMPI_ALLOW_RUN_AS_ROOT": "1",
        "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
        "OMPI_MCA_btl": "self,vader,tcp",
        "OMPI_MCA_btl_tcp_if_include": "lo",
        "FI_TCP_IFACE": "lo",
        "FI_SOCKETS_IFACE": "lo",
        "UCX_TLS": "self,sm",
        "UCX_NET_DEVICES": "lo",
    }


def run(
    args: list[str], tmp_path: Path, n: int = 2, timeout: float = 300, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Run ``python ARGS`` in ``n`` processes from the repository root."""
    exe = require_mpi()
    full_env = dict(os.environ)
    full_env.update(loopback_env())
    full_env.update(
        FUNCGRAD_CACHE_DIR=str(tmp_path / "kernels"),
        PYTHONPATH=str(ROOT) + os.pathsep + full_env.get("PYTHONPATH", ""),
        PYTHONUNBUFFERED="1",
    )
    full_env.update(env or {})
    return subprocess.run(
        command(exe, n, args),
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
