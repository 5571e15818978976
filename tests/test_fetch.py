"""`data fetch` against a real HTTP server on loopback that honours Range requests and can cut
the connection part-way, as a flaky link to UCI would. (The UCI site itself is the one thing
that cannot be reached here: this server stands in for it at the narrowest seam, the URL.)"""

import gzip
import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.helpers import run_cli


class RangeServer:
    """Serves one file (or one per path, ``routes``); the first ``cuts`` responses stop after
    ``cut_at`` bytes of body. Paths holding "missing" answer 404, "gone" 410, "page" an HTML
    page with status 200. Misbehaviours on demand: ``fail`` (statuses answered, in order,
    before serving), ``ignore_range`` (always 200 and the whole file), ``phantom`` (bytes the
    server announces beyond what it has: a Content-Length it never delivers), ``no_length``
    (no Content-Length: the body ends where the connection does)."""

    def __init__(
        self,
        payload: bytes,
        cuts: int = 0,
        cut_at: int = 0,
        routes: dict[str, bytes] | None = None,
        fail: list[int] | None = None,
        ignore_range: bool = False,
        phantom: int = 0,
        no_length: bool = False,
    ):
        self.payload, self.cuts, self.cut_at = payload, cuts, cut_at
        self.routes = routes or {}
        self.fail = list(fail or [])
        self.ignore_range, self.phantom, self.no_length = ignore_range, phantom, no_length
        self.requests: list[str | None] = []
        self.statuses: list[int] = []
        self.bytes_sent = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def reply(self, status: int, headers: dict, body: bytes = b""):
                server.statuses.append(status)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                if server.cuts > 0 and status in (200, 206):
                    server.cuts -= 1
                    body = body[: server.cut_at]
                try:
                    for i in range(0, len(body), 65536):
                        self.wfile.write(body[i : i + 65536])
                        server.bytes_sent += len(body[i : i + 65536])
                except (BrokenPipeError, ConnectionResetError):
                    pass
                self.close_connection = True

            def do_GET(self):
                if "missing" in self.path:
                    self.send_error(404, "Not Found")
                    return
                if "gone" in self.path:
                    self.send_error(410, "Gone")
                    return
                rng = None if server.ignore_range else self.headers.get("Range")
                server.requests.append(self.headers.get("Range"))
                if server.fail:
                    status = server.fail.pop(0)
                    server.statuses.append(status)
                    self.send_error(status)
                    return
                if "page" in self.path:
                    page = b"<!DOCTYPE html>\n<html><body>The data set moved.</body></html>\n"
                    self.reply(
                        200, {"Content-Type": "text/html", "Content-Length": len(page)}, page
                    )
                    return
                payload = server.routes.get(self.path, server.payload)
                size = len(payload) + server.phantom  # what the server claims to have
                start = 0
                headers = {"Accept-Ranges": "bytes"}
                if rng:
                    start = int(re.match(r"bytes=(\d+)-", rng).group(1))
                    if start >= size:
                        self.reply(416, {"Content-Range": f"bytes */{size}"})
                        return
                    headers["Content-Range"] = f"bytes {start}-{size - 1}/{size}"
                if not server.no_length:
                    headers["Content-Length"] = str(size - start)
                self.reply(206 if rng else 200, headers, payload[start:])

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_port}"
        self.url = f"{self.base}/HIGGS.csv.gz"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


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


# ------------------------------------------------ how a server can misbehave


def _fetch(server: RangeServer, out, *extra, url=None):
    return run_cli("data", "fetch", "--url", url or server.url, "--out", out, *extra)


def test_a_server_that_ignores_range_is_read_again_from_the_start(payload, tmp_path):
    """Asked to resume, the server answers 200 with the whole file: the part file is
    restarted, not appended to (which would leave the head of the file in it twice)."""
    out = tmp_path / "HIGGS.csv.gz"
    with RangeServer(payload, cuts=1, cut_at=len(payload) // 3, ignore_range=True) as server:
        proc = _fetch(server, out)
    assert proc.returncode == 0, proc.stderr
    assert server.requests == [None, f"bytes={len(payload) // 3}-"]
    assert server.statuses == [200, 200]
    assert out.read_bytes() == payload
    assert not (tmp_path / "HIGGS.csv.gz.part").exists()


def test_416_on_a_complete_part_file_finishes_without_downloading_it_again(payload, tmp_path):
    out = tmp_path / "HIGGS.csv.gz"
    (tmp_path / "HIGGS.csv.gz.part").write_bytes(payload)  # a run that ended just before the rename
    with RangeServer(payload) as server:
        proc = _fetch(server, out)
    assert proc.returncode == 0, proc.stderr
    assert server.requests == [f"bytes={len(payload)}-"] and server.statuses == [416]
    assert server.bytes_sent == 0
    assert out.read_bytes() == payload
    assert json.loads(proc.stdout)["sha256"] == hashlib.sha256(payload).hexdigest()


def test_416_on_a_part_file_longer_than_the_file_starts_over(payload, tmp_path):
    out = tmp_path / "HIGGS.csv.gz"
    (tmp_path / "HIGGS.csv.gz.part").write_bytes(payload + b"left over from another file")
    with RangeServer(payload) as server:
        proc = _fetch(server, out)
    assert proc.returncode == 0, proc.stderr
    assert server.statuses == [416, 200] and server.requests[1] is None
    assert out.read_bytes() == payload


def test_fewer_bytes_than_announced_is_an_error_not_a_file(payload, tmp_path):
    """The server announces 1000 bytes more than it ever sends: every attempt ends short,
    and after the retries the command fails naming both sizes; OUT is never written."""
    out = tmp_path / "HIGGS.csv.gz"
    with RangeServer(payload, phantom=1000) as server:
        proc = _fetch(server, out, "--retries", "2")
    assert proc.returncode == 2, proc.stdout
    message = proc.stderr.strip().splitlines()[-1]
    assert "download failed after 3 attempts" in message
    assert f"closed at {len(payload)} of the {len(payload) + 1000} bytes announced" in message
    assert "run the same command again to resume" in message
    assert server.requests == [None, f"bytes={len(payload)}-", f"bytes={len(payload)}-"]
    assert not out.exists()
    assert (tmp_path / "HIGGS.csv.gz.part").stat().st_size == len(payload)


def test_5xx_answers_are_retried(payload, tmp_path):
    out = tmp_path / "HIGGS.csv.gz"
    with RangeServer(payload, fail=[503, 500]) as server:
        proc = _fetch(server, out, "--retries", "2")
    assert proc.returncode == 0, proc.stderr
    assert server.statuses == [503, 500, 200]
    assert out.read_bytes() == payload


def test_5xx_answers_give_up_after_the_retries(payload, tmp_path):
    out = tmp_path / "HIGGS.csv.gz"
    with RangeServer(payload, fail=[503] * 10) as server:
        proc = _fetch(server, out, "--retries", "2")
    assert proc.returncode == 2, proc.stdout
    message = proc.stderr.strip().splitlines()[-1]
    assert "download failed after 3 attempts" in message and "503" in message
    assert server.statuses == [503, 503, 503], "tried more or fewer times than --retries + 1"
    assert list(tmp_path.iterdir()) == []


def test_4xx_answers_are_not_retried(payload, tmp_path):
    with RangeServer(payload, fail=[403] * 10) as server:
        proc = _fetch(server, tmp_path / "HIGGS.csv.gz", "--retries", "3")
    assert proc.returncode == 2
    assert "HTTP 403" in proc.stderr and server.statuses == [403]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("rows", [None, 100])
def test_an_html_page_served_with_200_is_an_error_not_data(payload, tmp_path, rows):
    """A web page where the file should be (as UCI serves for addresses it moved) is not
    saved as data, whole or with --rows."""
    extra = ["--rows", rows] if rows else []
    with RangeServer(payload) as server:
        proc = _fetch(server, tmp_path / "HIGGS.csv.gz", *extra, url=f"{server.base}/page")
    assert proc.returncode == 2, proc.stdout
    message = proc.stderr.strip().splitlines()[-1]
    assert "an HTML page" in message and "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["higgs", "HIGGS.csv.bz2", "higgs.tar"])
def test_out_must_be_named_for_what_it_holds(tmp_path, name):
    proc = run_cli("data", "fetch", "--url", "http://127.0.0.1:9/x", "--out", tmp_path / name)
    assert proc.returncode == 2
    assert f"--out {tmp_path / name}: name it" in proc.stderr
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------ an OUT that exists


@pytest.mark.parametrize("rows", [None, 100])
def test_an_existing_out_is_replaced_only_with_force(payload, tmp_path, rows):
    """Before: the download went ahead and replaced OUT, whatever it held. The download's own
    partial file (HIGGS.csv.gz.part) is resumed without --force (tests above)."""
    out = tmp_path / "HIGGS.csv.gz"
    out.write_bytes(b"months of work")
    extra = ["--rows", rows] if rows else []
    with RangeServer(payload) as server:
        proc = _fetch(server, out, *extra)
        assert proc.returncode == 2, proc.stdout
        message = proc.stderr.strip().splitlines()
        assert message == [
            f"higgsbench: error: --out {out}: exists already; pass --force to replace it, "
            "or choose another --out"
        ]
        assert server.requests == [], "the server was asked before OUT was checked"
        assert out.read_bytes() == b"months of work"
        assert [p.name for p in tmp_path.iterdir()] == ["HIGGS.csv.gz"]
        proc = _fetch(server, out, *extra, "--force")
    assert proc.returncode == 0, proc.stderr
    assert gzip.decompress(out.read_bytes()).startswith(gzip.decompress(payload)[:1000])


@pytest.mark.parametrize("force", [[], ["--force"]])
def test_an_out_that_is_a_directory_is_refused(tmp_path, force):
    out = tmp_path / "HIGGS.csv.gz"
    out.mkdir()
    proc = run_cli("data", "fetch", "--url", "http://127.0.0.1:9/x", "--out", out, *force)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"higgsbench: error: --out {out}: is a directory; name the file to write"
    ]
    assert [p.name for p in tmp_path.iterdir()] == ["HIGGS.csv.gz"]
