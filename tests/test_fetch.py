"""`data fetch` against a real HTTP server on loopback that honours Range requests and can cut
the connection part-way, as a flaky link to UCI would. (The UCI site itself is the one thing
that cannot be reached here: this server stands in for it at the narrowest seam, the URL.)"""

import gzip
import hashlib
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.helpers import run_cli


class RangeServer:
    """Serves one file; the first ``cuts`` responses stop after ``cut_at`` bytes of body."""

    def __init__(self, payload: bytes, cuts: int = 0, cut_at: int = 0):
        self.payload, self.cuts, self.cut_at = payload, cuts, cut_at
        self.requests: list[str | None] = []
        self.bytes_sent = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                if "missing" in self.path:
                    self.send_error(404, "Not Found")
                    return
                rng = self.headers.get("Range")
                server.requests.append(rng)
                start = 0
                if rng:
                    start = int(re.match(r"bytes=(\d+)-", rng).group(1))
                    if start >= len(server.payload):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(server.payload)}")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header(
                        "Content-Range",
                        f"bytes {start}-{len(server.payload) - 1}/{len(server.payload)}",
                    )
                else:
                    self.send_response(200)
                body = server.payload[start:]
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                if server.cuts > 0:
                    server.cuts -= 1
                    body = body[: server.cut_at]
                try:
                    for i in range(0, len(body), 65536):
                        self.wfile.write(body[i : i + 65536])
                        server.bytes_sent += len(body[i : i + 65536])
                except (BrokenPipeError, ConnectionResetError):
                    pass
                self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/HIGGS.csv.gz"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def payload(higgs_sample) -> bytes:
    return higgs_sample.read_bytes()


def test_cut_connection_is_resumed_with_range(payload, tmp_path):
    server = RangeServer(payload, cuts=2, cut_at=len(payload) // 3)
    try:
        out = tmp_path / "HIGGS.csv.gz"
        run_cli("data", "fetch", "--url", server.url, "--out", out, check=True)
    finally:
        server.close()
    assert out.read_bytes() == payload
    assert server.requests[0] is None
    assert server.requests[1] == f"bytes={len(payload) // 3}-"
    assert server.requests[2] == f"bytes={2 * (len(payload) // 3)}-"
    digest = hashlib.sha256(payload).hexdigest()
    assert (tmp_path / "HIGGS.csv.gz.sha256").read_text() == f"{digest}  HIGGS.csv.gz\n"
    assert not (tmp_path / "HIGGS.csv.gz.part").exists()


def test_a_second_run_resumes_a_cut_download(payload, tmp_path):
    server = RangeServer(payload, cuts=1, cut_at=len(payload) // 2)
    out = tmp_path / "HIGGS.csv.gz"
    try:
        first = run_cli("data", "fetch", "--url", server.url, "--out", out, "--retries", "0")
        assert first.returncode != 0
        assert "run the same command again to resume" in first.stderr
        assert not out.exists()
        assert (tmp_path / "HIGGS.csv.gz.part").stat().st_size == len(payload) // 2
        run_cli("data", "fetch", "--url", server.url, "--out", out, check=True)
    finally:
        server.close()
    assert server.requests == [None, f"bytes={len(payload) // 2}-"]
    assert out.read_bytes() == payload


@pytest.fixture
def text40(higgs_sample) -> bytes:
    """The genuine sample 40 times over (439 k rows): more than a --rows test reads."""
    return gzip.decompress(higgs_sample.read_bytes()) * 40


def _fetch_rows(server: RangeServer, out, rows: int, check: bool = True):
    """`data fetch --rows ROWS` from ``server``, which is closed afterwards."""
    try:
        return run_cli(
            "data", "fetch", "--url", server.url, "--out", out, "--rows", rows, check=check
        )
    finally:
        server.close()


def test_rows_option(text40, tmp_path):
    payload = gzip.compress(text40, compresslevel=1)
    server = RangeServer(payload)
    out = tmp_path / "HIGGS-head.csv.gz"
    proc = _fetch_rows(server, out, 1000)
    got = gzip.decompress(out.read_bytes()).splitlines()
    assert got == text40.splitlines()[:1000]
    assert '"rows": 1000' in proc.stdout
    assert server.bytes_sent < len(payload) / 4, "the download did not stop early"
    assert (tmp_path / "HIGGS-head.csv.gz.sha256").exists()


def test_rows_from_a_stream_cut_early_is_an_error_and_writes_nothing(text40, tmp_path):
    """Asked for more rows than arrive before the server closes: an error naming the cut,
    never a partial file presented as complete (it used to exit 0 with a partial last row)."""
    payload = gzip.compress(text40, compresslevel=1)
    server = RangeServer(payload, cuts=1, cut_at=len(payload) // 8)
    proc = _fetch_rows(server, tmp_path / "HIGGS-head.csv.gz", 150_000, check=False)
    assert proc.returncode == 2, proc.stdout
    message = proc.stderr.strip().splitlines()[-1]
    assert "the download was cut" in message and "of the 150000 asked for" in message
    assert list(tmp_path.iterdir()) == [], "a partial file was left behind"


def test_rows_beyond_a_complete_short_file_keep_every_row(higgs_sample, tmp_path):
    rows = gzip.decompress(higgs_sample.read_bytes()).splitlines()
    server = RangeServer(gzip.compress(b"\n".join(rows)))  # no newline after the last row
    out = tmp_path / "HIGGS-head.csv.gz"
    proc = _fetch_rows(server, out, 20_000)
    assert gzip.decompress(out.read_bytes()).splitlines() == rows
    assert f'"rows": {len(rows)}' in proc.stdout


def test_http_error_is_reported_without_a_file(payload, tmp_path):
    server = RangeServer(payload)
    try:
        proc = run_cli(
            "data",
            "fetch",
            "--url",
            server.url.replace("HIGGS", "missing"),
            "--out",
            tmp_path / "f.gz",
        )
    finally:
        server.close()
    assert proc.returncode != 0
    assert "HTTP 404" in proc.stderr and "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []
