"""``python -m funcgrad serve MODEL``: an exported function behind a small JSON HTTP API.

    POST /predict   {"inputs": X}  ->  {"outputs": Y}
    GET  /health    {"status": "ok", "model": name, "inputs": [...], "outputs": [...]}

``X`` mirrors the exported function's arguments: for a one-argument function, the array as
nested lists (a whole batch: any size when the batch axis was exported symbolically); for
several arguments, a list with one entry per argument (or an object for dict arguments).
``Y`` is the result tree with arrays as nested lists. Bad requests get 4xx answers with a
JSON ``{"error": ...}``: 400 (bad JSON, wrong structure, shape or dtype), 404, 405, 411
(no Content-Length), 413 (body or batch too large); 503 when too many requests are in
flight. SIGTERM or SIGINT stop accepting connections, finish the requests in flight, exit 0.

The standard library's ``ThreadingHTTPServer`` is used: the API is two routes with JSON
bodies, so a framework (and an ASGI server) would add dependencies without adding safety
or speed here; parsing and validation run concurrently on threads, the model itself runs
one batch at a time (funcgrad's tracing state is process-wide).
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

from funcgrad.export._dims import Dim
from funcgrad.export._exported import Exported, load_exported

__all__ = ["ModelServer", "main", "make_server"]

DEFAULT_MAX_BODY = 16 * 1024 * 1024
DEFAULT_MAX_BATCH = 4096
DEFAULT_MAX_INFLIGHT = 64


class BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _spec(shape: tuple, dtype: np.dtype) -> dict:
    return {"shape": [d if isinstance(d, int) else str(d) for d in shape], "dtype": dtype.name}


def _to_array(value: Any, shape: tuple, dtype: np.dtype, where: str, max_batch: int) -> np.ndarray:
    """A JSON value as an array of ``dtype`` matching ``shape`` (ints or Dims)."""
    try:
        arr = np.array(value)
    except (ValueError, TypeError):
        raise BadRequest(
            400, f"{where}: ragged nested lists (every row needs one length)"
        ) from None
    if arr.dtype.kind not in "biuf" or arr.dtype == object:
        kind = "strings" if arr.dtype.kind in "US" else "non-numbers"
        raise BadRequest(400, f"{where}: expected numbers of dtype {dtype.name}, got {kind}")
    if arr.ndim != len(shape):
        raise BadRequest(
            400,
            f"{where}: expected {len(shape)} dimensions {_spec(shape, dtype)['shape']}, got "
            f"shape {list(arr.shape)}",
        )
    for d, n in zip(shape, arr.shape, strict=True):
        if isinstance(d, int) and d != n:
            raise BadRequest(
                400,
                f"{where}: expected shape {_spec(shape, dtype)['shape']}, got {list(arr.shape)}",
            )
    if shape and isinstance(shape[0], Dim) and arr.shape[0] > max_batch:
        raise BadRequest(413, f"{where}: batch of {arr.shape[0]} exceeds the limit {max_batch}")
    kind = dtype.kind
    if kind == "b" and arr.dtype.kind != "b":
        raise BadRequest(400, f"{where}: expected booleans (dtype bool)")
    if kind in "iu":
        if arr.dtype.kind not in "biu":
            raise BadRequest(400, f"{where}: expected integers (dtype {dtype.name}), got floats")
        info = np.iinfo(dtype)
        if arr.size and (arr.min() < info.min or arr.max() > info.max):
            raise BadRequest(400, f"{where}: values out of range for {dtype.name}")
    return arr.astype(dtype)


def _jsonable(x: Any) -> Any:
    """Results as JSON values: arrays as nested lists; NaN and infinities (which strict JSON
    lacks) as the strings "nan", "inf", "-inf"; complex numbers as {"real", "imag"}."""
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if x is None:
        return None
    arr = np.asarray(x)
    if arr.dtype.kind == "c":
        return {"real": _jsonable(arr.real), "imag": _jsonable(arr.imag)}
    if arr.dtype.kind not in "biuf":
        arr = arr.astype(np.float64)  # bfloat16 and other ml_dtypes
    if arr.dtype.kind == "f":
        arr = arr.astype(np.float64)
        if arr.size and not np.all(np.isfinite(arr)):
            return _nested_with_strings(arr)
    return arr.tolist()


def _nested_with_strings(arr: np.ndarray) -> Any:
    if arr.ndim == 0:
        v = float(arr)
        return v if math.isfinite(v) else str(v)
    return [_nested_with_strings(a) for a in arr]


class ModelServer:
    """The request logic, independent of HTTP: validate, run, answer."""

    def __init__(
        self,
        exported: Exported,
        max_batch: int = DEFAULT_MAX_BATCH,
        jit: bool = True,
    ) -> None:
        self.exported = exported
        self.max_batch = max_batch
        self.jit = jit
        self.run_lock = threading.Lock()
        n_args = self._n_args()
        self.n_args = n_args

    def _n_args(self) -> int:
        tree = self.exported.in_tree
        return len(tree["c"]) if isinstance(tree, dict) and tree.get("t") == "tuple" else 1

    def health(self) -> dict:
        exp = self.exported
        return {
            "status": "ok",
            "model": exp.fun_name,
            "inputs": [_spec(s.shape, s.dtype) for s in exp.in_shapes],
            "outputs": [_spec(s.shape, s.dtype) for s in exp.out_shapes],
        }

    def predict(self, body: Any) -> dict:
        if not isinstance(body, dict) or "inputs" not in body:
            raise BadRequest(400, 'the body must be a JSON object {"inputs": ...}')
        inputs = body["inputs"]
        args = (inputs,) if self.n_args == 1 else inputs
        if self.n_args > 1 and not isinstance(args, list):
            raise BadRequest(400, f"inputs: expected a list of {self.n_args} arguments")
        exp = self.exported
        specs = exp.in_shapes
        counter = iter(range(len(specs)))

        def build(desc: Any, value: Any, where: str) -> Any:
            t = desc.get("t")
            if t == "array":
                i = next(counter)
                return _to_array(value, specs[i].shape, specs[i].dtype, where, self.max_batch)
            if t == "none":
                if value is not None:
                    raise BadRequest(400, f"{where}: expected null")
                return None
            if t in ("tuple", "list"):
                if not isinstance(value, list) or len(value) != len(desc["c"]):
                    raise BadRequest(400, f"{where}: expected a list of {len(desc['c'])} items")
                items = [
                    build(c, v, f"{where}[{j}]")
                    for j, (c, v) in enumerate(zip(desc["c"], value, strict=True))
                ]
                return tuple(items) if t == "tuple" else items
            if t == "dict":
                keys = [k for _, k in desc["keys"]]
                if not isinstance(value, dict) or sorted(map(str, keys)) != sorted(value):
                    raise BadRequest(
                        400, f"{where}: expected an object with keys {sorted(map(str, keys))}"
                    )
                return {
                    k: build(c, value[str(k)], f"{where}.{k}")
                    for k, c in zip(keys, desc["c"], strict=True)
                }
            raise BadRequest(400, f"{where}: unsupported argument structure")

        tree = exp.in_tree
        if self.n_args == 1:
            built = (build(tree["c"][0], args[0], "inputs"),)
        else:
            if len(args) != self.n_args:
                raise BadRequest(400, f"inputs: expected {self.n_args} arguments, got {len(args)}")
            built = tuple(
                build(c, v, f"inputs[{j}]")
                for j, (c, v) in enumerate(zip(tree["c"], args, strict=True))
            )
        try:
            with self.run_lock:
                out = exp.call(*built, jit=self.jit)
        except (TypeError, ValueError) as e:  # shapes that disagree between arguments...
            raise BadRequest(400, str(e)) from None
        return {"outputs": _jsonable(out)}


def make_server(
    exported: Exported,
    host: str = "127.0.0.1",
    port: int = 8000,
    max_body: int = DEFAULT_MAX_BODY,
    max_batch: int = DEFAULT_MAX_BATCH,
    max_inflight: int = DEFAULT_MAX_INFLIGHT,
    jit: bool = True,
    quiet: bool = True,
) -> ThreadingHTTPServer:
    """A ready (bound, not yet serving) HTTP server for ``exported``; ``port=0`` picks a free
    port (see ``server.server_address``)."""
    model = ModelServer(exported, max_batch=max_batch, jit=jit)
    slots = threading.BoundedSemaphore(max_inflight)

    class Handler(BaseHTTPRequestHandler):
        server_version = "funcgrad-serve/1"
        protocol_version = "HTTP/1.1"
        timeout = 30  # a client that stalls mid-request loses its connection

        def log_message(self, fmt: str, *args: Any) -> None:
            if not quiet:
                super().log_message(fmt, *args)

        def _send(self, status: int, payload: dict) -> None:
            body = json.dumps(payload, allow_nan=False).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            if status >= 400:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(body)

        def _error(self, status: int, message: str) -> None:
            self._send(status, {"error": message, "status": status})

        def do_GET(self) -> None:
            if self.path.split("?")[0] == "/health":
                self._send(200, model.health())
            elif self.path.split("?")[0] == "/predict":
                self._error(405, "use POST for /predict")
            else:
                self._error(404, f"no route {self.path!r}; use POST /predict or GET /health")

        def do_POST(self) -> None:
            if self.path.split("?")[0] != "/predict":
                if self.path.split("?")[0] == "/health":
                    self._error(405, "use GET for /health")
                else:
                    self._error(404, f"no route {self.path!r}; use POST /predict or GET /health")
                return
            length = self.headers.get("Content-Length")
            if length is None:
                self._error(411, "a Content-Length header is required")
                return
            try:
                n = int(length)
                if n < 0:
                    raise ValueError
            except ValueError:
                self._error(400, f"bad Content-Length {length!r}")
                return
            if n > max_body:
                self._error(413, f"the body has {n} bytes; the limit is {max_body}")
                return
            if not slots.acquire(blocking=False):
                self._error(503, "too many requests in flight; retry later")
                return
            try:
                raw = self.rfile.read(n)
                if len(raw) != n:
                    self._error(400, "the body is shorter than its Content-Length")
                    return
                try:
                    body = json.loads(raw.decode("utf-8"))
                except (UnicodeDecodeError, ValueError, RecursionError) as e:
                    self._error(400, f"the body is not valid JSON: {e}")
                    return
                try:
                    self._send(200, model.predict(body))
                except BadRequest as e:
                    self._error(e.status, str(e))
                except RecursionError:
                    self._error(400, "the inputs are nested too deeply")
                except Exception as e:  # noqa: BLE001 - a bug, not the client's: answer 500, keep serving
                    self._error(500, f"internal error: {type(e).__name__}: {e}")
            finally:
                slots.release()

        def do_PUT(self) -> None:
            self._error(405, "use POST /predict or GET /health")

        do_DELETE = do_PATCH = do_PUT

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = False
    server.block_on_close = True  # server_close() waits for requests in flight
    server.model = model  # type: ignore[attr-defined]
    return server


def serve(server: ThreadingHTTPServer) -> None:
    """Serve until SIGTERM/SIGINT, then finish the requests in flight and return."""
    stopping = threading.Event()

    def stop(signum: int, frame: Any) -> None:
        if not stopping.is_set():
            stopping.set()
            threading.Thread(target=server.shutdown, daemon=True).start()

    old = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        for s, h in old.items():
            signal.signal(s, h)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m funcgrad serve",
        description="Serve an exported function (funcgrad.export.save_exported) over HTTP.",
    )
    parser.add_argument("model", help="a file written by funcgrad.export.save_exported")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: any free)")
    parser.add_argument("--max-body-mb", type=float, default=DEFAULT_MAX_BODY / 2**20)
    parser.add_argument("--max-batch", type=int, default=DEFAULT_MAX_BATCH)
    parser.add_argument("--max-inflight", type=int, default=DEFAULT_MAX_INFLIGHT)
    parser.add_argument(
        "--eager", action="store_true", help="run primitive by primitive (no compile per size)"
    )
    parser.add_argument("--log", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)
    try:
        exported = load_exported(args.model)
    except (OSError, ValueError) as e:
        print(f"serve: cannot load {args.model!r}: {e}", file=sys.stderr)
        return 2
    server = make_server(
        exported,
        host=args.host,
        port=args.port,
        max_body=int(args.max_body_mb * 2**20),
        max_batch=args.max_batch,
        max_inflight=args.max_inflight,
        jit=not args.eager,
        quiet=not args.log,
    )
    host, port = server.server_address[:2]
    print(
        f"serving {exported!r} on http://{host}:{port} (POST /predict, GET /health); "
        "SIGTERM or Ctrl-C stops",
        flush=True,
    )
    serve(server)
    print("serve: stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
