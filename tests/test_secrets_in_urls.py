"""Secrets in addresses are never printed or stored: a password in a URL's user part, and
query-string signatures and tokens (a presigned S3 or GCS download, an API token)."""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from higgsbench.common.redact import redact_text, redact_url, split_credentials
from tests.helpers import run_cli
from tests.test_fetch import RangeServer


@pytest.mark.parametrize(
    "url, shown",
    [
        ("http://ana:pw@host:5000/x", "http://ana:***@host:5000/x"),
        ("https://ana:p%40ss@host/", "https://ana:***@host/"),
        ("http://ana@host/", "http://ana@host/"),  # a user name alone is no secret
        (
            "https://b.s3.amazonaws.com/HIGGS.csv.gz?X-Amz-Algorithm=AWS4-HMAC-SHA256"
            "&X-Amz-Credential=AKIA%2F20261207&X-Amz-Signature=abc123&X-Amz-Expires=600",
            "https://b.s3.amazonaws.com/HIGGS.csv.gz?X-Amz-Algorithm=AWS4-HMAC-SHA256"
            "&X-Amz-Credential=***&X-Amz-Signature=***&X-Amz-Expires=600",
        ),
        ("https://h/f?sig=xyz&sv=2022", "https://h/f?sig=***&sv=2022"),
        ("https://h/f?token=t0k&rows=5", "https://h/f?token=***&rows=5"),
        ("https://h/f?access_token=t&api_key=k", "https://h/f?access_token=***&api_key=***"),
        ("https://h/f?X-Goog-Signature=s", "https://h/f?X-Goog-Signature=***"),
        ("https://h/plain/path", "https://h/plain/path"),
    ],
)
def test_redact_url(url, shown):
    assert redact_url(url) == shown


def test_redact_text_masks_every_url_in_a_message():
    text = "http://a:pw1@h1/x: HTTP 403; trying https://h2/f?token=t2, then ftp://b:pw3@h3"
    assert redact_text(text) == (
        "http://a:***@h1/x: HTTP 403; trying https://h2/f?token=***, then ftp://b:***@h3"
    )


def test_split_credentials_gives_the_bare_address_and_the_decoded_pair():
    assert split_credentials("http://ana:p%40ss@h:5/x?y=1") == ("http://h:5/x?y=1", "ana", "p@ss")
    assert split_credentials("http://h:5/") == ("http://h:5/", None, None)


class _BasicAuthHealth:
    """A server whose /health answers 200 only with the expected basic authentication, and
    401 otherwise; every other path 500 (no MLflow behind it). Records what it was sent."""

    def __init__(self, user: str, password: str):
        expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self.seen: list[tuple[str, str | None]] = []
        seen = self.seen

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                auth = self.headers.get("Authorization")
                seen.append((self.path, auth))
                ok = self.path == "/health" and auth == expected
                self.send_response(200 if ok else (401 if self.path == "/health" else 500))
                self.end_headers()
                self.wfile.write(b"OK" if ok else b"no")

            do_POST = do_GET

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_port
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_the_health_check_authenticates_with_the_uri_password_and_masks_it(toy_dataset, tmp_path):
    """The health check reaches the host of the URI (not `user:password@host`) with basic
    authentication; what fails after it is said without the password."""
    server = _BasicAuthHealth("ana", "s3cr3t-pw")
    try:
        proc = run_cli(
            "train", "--data", toy_dataset, "--out", tmp_path / "r",
            "--track", f"http://ana:s3cr3t-pw@127.0.0.1:{server.port}",
        )  # fmt: skip
    finally:
        server.close()
    path, auth = server.seen[0]
    assert path == "/health" and auth is not None, server.seen
    assert proc.returncode == 2, proc.stderr
    assert "s3cr3t-pw" not in proc.stderr + proc.stdout
    assert "HTTP 401" not in proc.stderr, "the health check was sent without the credentials"
    assert not (tmp_path / "r").exists()


def test_fetch_masks_a_presigned_urls_signature_in_what_it_prints(higgs_sample, tmp_path):
    server = RangeServer(higgs_sample.read_bytes())
    signed = f"{server.url}?X-Amz-Credential=AKIAXYZ&X-Amz-Signature=deadbeef1234&X-Amz-Expires=60"
    try:
        proc = run_cli("data", "fetch", "--url", signed, "--out", tmp_path / "h.csv.gz")
        missing = signed.replace("HIGGS", "missing")
        failed = run_cli("data", "fetch", "--url", missing, "--out", tmp_path / "m.csv.gz")
    finally:
        server.close()
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    assert info["url"].endswith("X-Amz-Credential=***&X-Amz-Signature=***&X-Amz-Expires=60")
    assert failed.returncode != 0 and "HTTP 404" in failed.stderr
    for text in (proc.stdout, proc.stderr, failed.stdout, failed.stderr):
        assert "deadbeef1234" not in text and "AKIAXYZ" not in text
