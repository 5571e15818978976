"""`data fetch`: download HIGGS.csv.gz from UCI, resumable, size-checked, with a sha256 beside it.

The download goes to ``OUT.part`` and is renamed to ``OUT`` only once its size matches what
the server announced. A cut connection is resumed with an HTTP Range request, automatically
up to ``retries`` times, or by running the command again (the .part file is kept).
``--rows N`` streams the gzip through a decompressor and stops the download after N rows,
writing them (re-compressed) to OUT.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import re
import time
import urllib.error
import urllib.request
import zlib
from pathlib import Path

from higgsbench.atomic import atomic_path, write_text_atomic
from higgsbench.checks import at_least
from higgsbench.errors import HiggsbenchError
from higgsbench.progress import progress_bar

UCI_URL = "https://archive.ics.uci.edu/ml/machine-learning-databases/00280/HIGGS.csv.gz"
DEFAULT_OUT = Path("data/HIGGS.csv.gz")
BLOCK = 1 << 20
TIMEOUT = 60


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while data := f.read(BLOCK):
            digest.update(data)
    return digest.hexdigest()


def write_sha256(path: Path) -> str:
    digest = sha256_file(path)
    write_text_atomic(path.with_name(path.name + ".sha256"), f"{digest}  {path.name}\n")
    return digest


def fetch(
    url: str = UCI_URL,
    out: Path = DEFAULT_OUT,
    rows: int | None = None,
    retries: int = 5,
    show_progress: bool = True,
) -> dict:
    at_least("--rows", rows)
    at_least("--retries", retries, 0)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if rows is not None:
        return _fetch_rows(url, out, rows, show_progress)
    part = out.with_name(out.name + ".part")
    total = None
    with progress_bar(f"fetch {out.name}", None, unit="bytes", show=show_progress) as bar:
        for attempt in range(retries + 1):
            try:
                total = _download_from(url, part, bar)
                break
            except (OSError, http.client.HTTPException) as exc:
                if isinstance(exc, urllib.error.HTTPError) and exc.code < 500:
                    raise HiggsbenchError(f"{url}: HTTP {exc.code} {exc.reason}") from None
                if attempt == retries:
                    raise HiggsbenchError(
                        f"{url}: download failed after {retries + 1} attempts ({exc}); "
                        f"{part} holds {part.stat().st_size if part.exists() else 0} bytes: "
                        "run the same command again to resume"
                    ) from None
                time.sleep(min(2**attempt, 30) * 0.1)
    size = part.stat().st_size
    if total is not None and size != total:
        raise HiggsbenchError(
            f"{part}: {size} bytes, but the server announced {total}; run again to resume"
        )
    os.replace(part, out)
    return {"path": str(out), "bytes": size, "sha256": write_sha256(out), "url": url}


def _download_from(url: str, part: Path, bar) -> int | None:
    """Append to ``part`` from where it ends; return the full size the server announced."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing left to fetch: the part file is complete
            return _total_from_headers(exc.headers, have)
        raise
    with response:
        if have and response.status == 200:
            have = 0  # the server ignored the Range header: start over
        total = _total_from_headers(response.headers, have)
        bar.update(have, total)
        with open(part, "ab" if have else "wb") as f:
            while block := response.read(BLOCK):
                f.write(block)
                bar.advance(len(block))
        got = part.stat().st_size
        if total is not None and got < total:
            raise http.client.IncompleteRead(b"", total - got)
        return total


def _total_from_headers(headers, offset: int) -> int | None:
    content_range = headers.get("Content-Range")
    if content_range:
        match = re.search(r"/(\d+)\s*$", content_range)
        if match:
            return int(match.group(1))
    length = headers.get("Content-Length")
    return offset + int(length) if length is not None else None


def _fetch_rows(url: str, out: Path, rows: int, show_progress: bool) -> dict:
    """Stream the first ``rows`` rows (``fetch`` checked it is ≥ 1) and close the connection;
    write them gzip-compressed."""
    decompressor = zlib.decompressobj(zlib.MAX_WBITS | 16)  # gzip framing
    seen, pending, downloaded = 0, b"", 0
    try:
        response = urllib.request.urlopen(url, timeout=TIMEOUT)
    except (OSError, http.client.HTTPException) as exc:
        raise HiggsbenchError(f"{url}: {exc}") from None
    try:
        with (
            response,
            atomic_path(out) as tmp,
            gzip.open(tmp, "wb") as sink,
            progress_bar(f"fetch first {rows} rows", rows, show=show_progress) as bar,
        ):
            while seen < rows:
                block = response.read(BLOCK)
                if not block:
                    break
                downloaded += len(block)
                text = pending + decompressor.decompress(block)
                lines = text.split(b"\n")
                pending = lines.pop()
                take = lines[: rows - seen]
                if take:
                    sink.write(b"\n".join(take) + b"\n")
                seen += len(take)
                bar.update(seen)
            if seen < rows and not decompressor.eof:
                # The server closed before the gzip stream's end: a cut, not a short file.
                # Raised inside the block, so nothing is written.
                raise HiggsbenchError(
                    f"{url}: the connection closed after {seen} complete rows of the "
                    f"{rows} asked for ({downloaded} bytes): the download was cut; run "
                    "`higgsbench data fetch` again"
                )
            if seen < rows and pending.strip():  # the file's last row, without a newline
                sink.write(pending + b"\n")
                seen += 1
    except (OSError, http.client.HTTPException, zlib.error) as exc:
        raise HiggsbenchError(f"{url}: download of the first {rows} rows failed: {exc}") from None
    return {
        "path": str(out),
        "rows": seen,
        "bytes_downloaded": downloaded,
        "sha256": write_sha256(out),
        "url": url,
    }
