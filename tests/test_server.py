"""python -m funcgrad serve: the HTTP model server, on 127.0.0.1 only.

References: every good answer is compared with the model evaluated directly by funcgrad;
bad requests must get the documented 4xx status while good ones keep being answered."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest

import funcgrad as fg
from funcgrad import nn
from funcgrad.export import export, save_exported, symbolic_shape
from funcgrad.export.server import make_server

KEY = fg.random.key(0)
N_FEATURES = 5


def _model():
    model = nn.Sequential([nn.Dense(8), nn.relu, nn.Dense(3)])
    params = model.init(KEY, np.ones((1, N_FEATURES), np.float32))
    spec = fg.ShapeDtypeStruct(symbolic_shape(f"batch, {N_FEATURES}"), np.float32)
    exp = export(lambda x: {"logits": model.apply(params, x)})(spec)
    return model, params, exp


def _request(port, method, path, body=None, raw=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        conn.request(method, path, body=data, headers=headers or {})
        resp = conn.getresponse()
        payload = resp.read()
        return resp.status, json.loads(payload) if payload else None
    finally:
        conn.close()


@pytest.fixture
def server():
    model, params, exp = _model()
    srv = make_server(exp, port=0, max_body=64 * 1024, max_batch=64, jit=False)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield srv.server_address[1], model, params
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=30)


def test_health_and_predict(server):
    port, model, params = server
    status, health = _request(port, "GET", "/health")
    assert status == 200 and health["status"] == "ok"
    assert health["inputs"] == [{"shape": ["batch", N_FEATURES], "dtype": "float32"}]
    assert health["outputs"] == [{"shape": ["batch", 3], "dtype": "float32"}]
    x = np.random.default_rng(0).normal(size=(4, N_FEATURES)).astype(np.float32)
    status, out = _request(port, "POST", "/predict", {"inputs": x.tolist()})
    assert status == 200
    want = model.apply(params, x)
    np.testing.assert_allclose(np.array(out["outputs"]["logits"]), want, rtol=1e-6, atol=1e-6)
    # integers are fine for a float input
    status, out = _request(port, "POST", "/predict", {"inputs": [[1, 2, 3, 4, 5]]})
    assert status == 200 and np.array(out["outputs"]["logits"]).shape == (1, 3)


BAD = [
    ({"raw": b"{not json"}, 400, "not valid JSON"),
    ({"body": [1, 2]}, 400, "inputs"),
    ({"body": {"x": 1}}, 400, "inputs"),
    ({"body": {"inputs": [[1.0] * (N_FEATURES - 1)]}}, 400, "expected shape"),
    ({"body": {"inputs": [1.0] * N_FEATURES}}, 400, "expected 2 dimensions"),
    ({"body": {"inputs": [["a"] * N_FEATURES]}}, 400, "numbers"),
    ({"body": {"inputs": [[1.0] * N_FEATURES, [1.0]]}}, 400, "ragged"),
    ({"body": {"inputs": [[1.0] * N_FEATURES] * 65}}, 413, "limit 64"),
    ({"raw": b"[" * 30000}, 400, "JSON"),
    ({"raw": b'{"inputs": ' + b"[1.0, " * 20000 + b"1.0]}"}, 413, "limit is"),
]


def test_concurrent_clients_with_bad_requests_mixed_in(server):
    port, model, params = server
    errors: list[str] = []
    answered = [0]
    lock = threading.Lock()

    def client(cid: int) -> None:
        rng = np.random.default_rng(cid)
        try:
            for r in range(12):
                if (cid + r) % 3 == 0:
                    kw, status, msg = BAD[(cid * 7 + r) % len(BAD)]
                    got, payload = _request(port, "POST", "/predict", **kw)
                    if got != status or msg not in payload["error"]:
                        errors.append(f"client {cid}: {kw!r:.60} -> {got} {payload}")
                    continue
                b = int(rng.integers(1, 6))
                x = rng.normal(size=(b, N_FEATURES)).astype(np.float32)
                got, payload = _request(port, "POST", "/predict", {"inputs": x.tolist()})
                want = model.apply(params, x)
                if got != 200 or not np.allclose(
                    np.array(payload["outputs"]["logits"]), want, rtol=1e-5, atol=1e-6
                ):
                    errors.append(f"client {cid}: wrong answer {got} {payload}")
                with lock:
                    answered[0] += 1
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(f"client {cid}: {type(e).__name__}: {e}")

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads)
    assert not errors, errors[:5]
    assert answered[0] == sum(1 for c in range(8) for r in range(12) if (c + r) % 3)
    # the server is still healthy, and routes/methods are checked
    assert _request(port, "GET", "/health")[0] == 200
    assert _request(port, "GET", "/predict")[0] == 405
    assert _request(port, "POST", "/nope", {"inputs": []})[0] == 404
    assert _request(port, "PUT", "/predict", {"inputs": []})[0] == 405


def test_serve_command_and_sigterm(tmp_path):
    model, params, exp = _model()
    save_exported(tmp_path / "model.fgx", exp)
    root = os.path.dirname(os.path.dirname(os.path.abspath(fg.__file__)))
    env = dict(
        os.environ,
        FUNCGRAD_CACHE_DIR=str(tmp_path / "cache"),
        PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])),
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "funcgrad", "serve", str(tmp_path / "model.fgx"), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = proc.stdout.readline()
        m = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        assert m, (line, proc.stderr.read() if proc.poll() is not None else "")
        port = int(m.group(1))
        x = np.arange(2 * N_FEATURES, dtype=np.float32).reshape(2, N_FEATURES) / 10
        status, out = _request(port, "POST", "/predict", {"inputs": x.tolist()})
        assert status == 200
        np.testing.assert_allclose(
            np.array(out["outputs"]["logits"]), model.apply(params, x), rtol=1e-5, atol=1e-6
        )
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        assert "stopped" in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    bad = subprocess.run(
        [sys.executable, "-m", "funcgrad", "serve", str(tmp_path / "missing.fgx")],
        capture_output=True,
        text=True,
        env=env,
    )
    assert bad.returncode == 2 and "cannot load" in bad.stderr
