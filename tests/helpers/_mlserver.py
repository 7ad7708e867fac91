"""Start Seldon MLServer on loopback with our custom runtime (tests/helpers/_mlserver_runtime.py), and stop it.

Free ports are picked by binding port 0; readiness is polled on
``/v2/health/ready`` for at most ``startup_timeout`` seconds; the server's log
is quoted when it does not come up.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import httpx

ROOT = Path(__file__).resolve().parents[2]

# The models the server holds: name -> (input datatype, per-image shape, layout, scale)
MODELS = {"digits": ("FP32", [1, 8, 8], "NCHW", 1.0), "digits_nhwc_u8": ("UINT8", [8, 8, 1], "NHWC", 255.0)}


def free_ports(n: int) -> list[int]:
    socks = []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


class MLServerHandle:
    def __init__(self, base_url: str, folder: Path):
        self.base_url = base_url
        self.folder = folder

    def count(self, name: str) -> int:
        """Images the runtime of model ``name`` has answered so far."""
        path = self.folder / f"{name}.count"
        return sum(int(line) for line in path.read_text().split()) if path.exists() else 0


def _write_repository(folder: Path, http_port: int, grpc_port: int) -> None:
    settings = {
        "host": "127.0.0.1",
        "http_port": http_port,
        "grpc_port": grpc_port,
        "metrics_endpoint": None,
        "parallel_workers": 0,
        "debug": False,
        "load_models_at_startup": True,
    }
    (folder / "settings.json").write_text(json.dumps(settings))
    for name, (datatype, dims, layout, scale) in MODELS.items():
        (folder / name).mkdir()
        (folder / name / "model-settings.json").write_text(
            json.dumps(
                {
                    "name": name,
                    "implementation": "_mlserver_runtime.DigitsRuntime",
                    "inputs": [{"name": "pixels", "datatype": datatype, "shape": [-1, *dims]}],
                    "outputs": [{"name": "probs", "datatype": "FP32", "shape": [-1, 10]}],
                    "parameters": {
                        "version": "1",
                        "extra": {"count_file": str(folder / f"{name}.count"), "layout": layout, "scale": scale},
                    },
                }
            )
        )


@contextmanager
def mlserver(folder: Path, startup_timeout: float = 120.0) -> Iterator[MLServerHandle]:
    exe = shutil.which("mlserver", path=str(Path(sys.executable).parent)) or shutil.which("mlserver")
    if exe is None:
        raise RuntimeError("the mlserver command is not installed (pip install -e '.[test]')")
    http_port, grpc_port = free_ports(2)
    _write_repository(folder, http_port, grpc_port)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "tests" / "helpers"), str(ROOT)]),
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    log = open(folder / "mlserver.log", "wb")
    proc = subprocess.Popen(
        [exe, "start", str(folder)], cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    base_url = f"http://127.0.0.1:{http_port}"
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"mlserver exited with {proc.returncode}:\n{_tail(folder)}")
            try:
                if httpx.get(f"{base_url}/v2/health/ready", timeout=2.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"mlserver not ready within {startup_timeout:g} s:\n{_tail(folder)}")
            time.sleep(0.25)
        yield MLServerHandle(base_url, folder)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        log.close()


def _tail(folder: Path) -> str:
    return (folder / "mlserver.log").read_text(errors="replace")[-3000:]
