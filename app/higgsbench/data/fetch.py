"""`data fetch`: download HIGGS from UCI, resumable, size-checked, with a sha256 beside it.

UCI serves the data set as ``static/public/280/higgs.zip``, a zip that holds HIGGS.csv.gz;
the legacy ``ml/machine-learning-databases/00280/HIGGS.csv.gz`` path is tried when that
address answers 404 or 410 (or with a page that is not data). What was served is told from
its first bytes, never from the address or a header: gzip, a zip, or plain CSV. An HTML page
(or anything else) served with status 200 is an error, and nothing is saved.

OUT's name says what it will hold. ``….csv.gz`` (the default, ``data/HIGGS.csv.gz``): the
gzip-compressed CSV, so a served zip is unpacked (its member copied out as it is when it is a
.csv.gz, compressed when it is a plain .csv) and then removed; ``….csv``: plain CSV;
``….zip``: the served zip, kept as it came. The download goes to ``SERVED_NAME.part`` beside
OUT (``higgs.zip.part``), is resumed with an HTTP Range request after a cut (automatically up
to ``retries`` times, or by running the command again: the .part file is kept), and becomes
OUT only once its size matches what the server announced and its type is known. An OUT that
exists already is left as it is unless ``--force`` (resuming from the .part file needs none).

``--rows N`` streams instead: through the zip (stream-unzip reads its members in order, with
no need for the central directory at the end) and the inner gzip, stopping the download after
N rows, which are written to OUT (gzip-compressed unless OUT ends in .csv). A stream that
ends before N rows and before the file's end is an error, never a short file.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import itertools
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from higgsbench.common import limits
from higgsbench.common.atomic import atomic_path, write_text_atomic
from higgsbench.common.errors import HiggsbenchError, UsageError
from higgsbench.common.limits import at_least
from higgsbench.common.progress import progress_bar
from higgsbench.common.redact import redact_text, redact_url
from higgsbench.data import filetype

UCI_URL = "https://archive.ics.uci.edu/static/public/280/higgs.zip"
UCI_LEGACY_URL = "https://archive.ics.uci.edu/ml/machine-learning-databases/00280/HIGGS.csv.gz"
UCI_URLS = (UCI_URL, UCI_LEGACY_URL)
DEFAULT_OUT = Path("data/HIGGS.csv.gz")
BLOCK = 1 << 20
TIMEOUT = 60
GONE = (404, 410)  # the address is not (or no longer) there: try the next one
SNIFF_BYTES = 4096
OUT_TYPES = {".gz": filetype.GZIP, ".csv": filetype.TEXT, ".zip": filetype.ZIP}


class SourceUnusable(HiggsbenchError):
    """This address has nothing for us (404/410, or a page that is not data): try the next."""


class Cut(OSError):
    """The connection closed before the bytes the server announced had arrived."""


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


def out_type(out: Path, rows: int | None = None) -> str:
    """What OUT will hold, from its name: GZIP (.gz), TEXT (.csv) or ZIP (.zip)."""
    kind = OUT_TYPES.get(Path(out).suffix.lower())
    if kind is None or (kind == filetype.ZIP and rows is not None):
        also = "" if rows is not None else ", or ….zip to keep the zip UCI serves as it is"
        raise UsageError(
            f"--out {out}: name it ….csv.gz (gzip-compressed CSV) or ….csv (plain CSV){also}"
        )
    return kind


def fetch(
    url: str | Sequence[str] | None = None,
    out: Path = DEFAULT_OUT,
    rows: int | None = None,
    retries: int = 5,
    show_progress: bool = True,
    force: bool = False,
) -> dict:
    """Download to ``out`` from ``url``, or from the first of several addresses that has the
    file (a later one is tried when one answers 404/410 or serves something that is not
    data); None means UCI's current address, then its legacy one. An existing ``out`` is
    replaced only with ``force``."""
    at_least("--rows", rows)
    at_least("--retries", retries, 0)
    out = Path(out)
    kind = out_type(out, rows)
    urls = [url] if isinstance(url, str) else list(url or UCI_URLS)
    for address in urls:
        limits.url("--url", address)
    _check_out(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    failed = []
    for i, address in enumerate(urls):
        try:
            if rows is not None:
                return _fetch_rows(address, out, kind, rows, show_progress)
            return _fetch_file(address, out, kind, retries, show_progress)
        except SourceUnusable as exc:
            failed.append(f"{address}: {exc}")
            if i + 1 < len(urls):
                print(redact_text(f"{failed[-1]}; trying {urls[i + 1]}"), file=sys.stderr)
    raise UsageError("; ".join(failed))


def _check_out(out: Path, force: bool) -> None:
    """OUT may be new, or with ``force`` a file to replace; never a directory. The download's
    own partial file is SERVED_NAME.part beside OUT, never OUT itself, so a rerun that
    resumes one needs no --force."""
    if out.is_dir():
        raise UsageError(f"--out {out}: is a directory; name the file to write")
    if os.path.lexists(out) and not force:
        raise UsageError(
            f"--out {out}: exists already; pass --force to replace it, or choose another --out"
        )


# ---------------------------------------------------------------- whole file


def _fetch_file(url: str, out: Path, kind: str, retries: int, show_progress: bool) -> dict:
    part = out.parent / f"{_served_name(url, out)}.part"
    total = None
    with progress_bar(f"fetch {part.name[:-5]}", None, unit="bytes", show=show_progress) as bar:
        for attempt in range(retries + 1):
            try:
                total = _download_from(url, part, bar)
                break
            except (OSError, http.client.HTTPException) as exc:
                if isinstance(exc, urllib.error.HTTPError):
                    if exc.code in GONE:
                        raise SourceUnusable(f"HTTP {exc.code} {exc.reason}") from None
                    if exc.code < 500:
                        raise UsageError(f"{url}: HTTP {exc.code} {exc.reason}") from None
                if attempt == retries:
                    have = part.stat().st_size if part.exists() else 0
                    raise UsageError(
                        f"{url}: download failed after {retries + 1} "
                        f"attempt{'s' if retries else ''} ({exc}); "
                        f"{part} holds {have} bytes: run the same command again to resume"
                    ) from None
                time.sleep(min(2**attempt, 30) * 0.1)
    size = part.stat().st_size
    if total is not None and size != total:
        raise UsageError(
            f"{part}: {size} bytes, but the server announced {total}; run again to resume"
        )
    return _save(part, out, kind, url, total is not None, show_progress)


def _served_name(url: str, out: Path) -> str:
    """The file name in the address (higgs.zip), which the .part file is named after."""
    name = Path(urllib.parse.urlparse(url).path).name
    return name if re.fullmatch(r"[\w.-]+", name) and name not in (".", "..") else out.name


def _download_from(url: str, part: Path, bar) -> int | None:
    """Append to ``part`` from where it ends; return the full size the server announced."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing left from ``have`` on
            total = _total_from_headers(exc.headers, have)
            if total is None or total == have:  # the part file is complete
                return have
            part.unlink()  # longer than the file the server has now: not a part of it
            return _download_from(url, part, bar)
        raise
    with response:
        if have and response.status == 200:
            have = 0  # the server ignored the Range header: start over
        elif have and _range_start(response.headers) not in (None, have):
            part.unlink()  # not the range asked for: start over on the next attempt
            raise Cut(f"the server sent a range other than bytes={have}-")
        total = _total_from_headers(response.headers, have)
        block = response.read(BLOCK)
        if not have:  # the first bytes of the file: are they data?
            _check_served(block, response.headers)
        bar.update(have, total)
        got = have
        with open(part, "ab" if have else "wb") as f:
            while block:
                f.write(block)
                got += len(block)
                bar.advance(len(block))
                block = response.read(BLOCK)
        if total is not None and got < total:
            raise Cut(f"the connection closed at {got} of the {total} bytes announced")
        return total


def _range_start(headers) -> int | None:
    match = re.match(r"\s*bytes\s+(\d+)-", headers.get("Content-Range") or "")
    return int(match.group(1)) if match else None


def _total_from_headers(headers, offset: int) -> int | None:
    content_range = headers.get("Content-Range")
    if content_range:
        match = re.search(r"/(\d+)\s*$", content_range)
        if match:
            return int(match.group(1))
    length = headers.get("Content-Length")
    return offset + int(length) if length is not None else None


def _check_served(head: bytes, headers) -> str:
    """GZIP, ZIP or TEXT for the first bytes of a download; SourceUnusable for anything else
    (an HTML page served with status 200, say)."""
    kind, what = filetype.sniff(head)
    if kind == filetype.TEXT:
        content_type = (headers.get("Content-Type") or "").lower()
        if "html" in content_type:
            kind, what = "other", "an HTML page"
        elif not filetype.looks_like_csv(head):
            first = head.split(b"\n", 1)[0][:60].decode("utf-8", "replace")
            kind, what = "other", f"text that is not HIGGS CSV ({first!r})"
    if kind == "other":
        raise SourceUnusable(f"the server sent {what}, not the data")
    return kind


def _save(part: Path, out: Path, kind: str, url: str, sized: bool, show_progress: bool) -> dict:
    """Turn the complete download into OUT, in the type OUT's name says; ``sized``: its size
    was announced (and matched), so it is whole."""
    try:
        served = filetype.inspect(part)
    except filetype.Damaged as exc:
        if sized:
            part.unlink()
            raise UsageError(f"{url}: {exc}; the download was removed") from None
        # No size was announced, so a cut looks like the end: keep it to resume.
        raise UsageError(
            f"{url}: {exc}; {part} is kept: run again to resume it, or delete it to "
            "download the file anew"
        ) from None
    except HiggsbenchError as exc:
        part.unlink()
        raise UsageError(f"{url}: {exc}; the download was removed") from None
    info = {"url": redact_url(url)}  # printed and kept: a presigned URL's signature is not
    if served.kind == kind:
        os.replace(part, out)  # as it came: a .csv.gz, a .csv or a .zip
    elif kind == filetype.ZIP:
        raise UsageError(
            f"{url}: the server sent {served.describe()}, not a zip: name --out ….csv.gz "
            f"(the download is kept in {part}; a rerun resumes from it)"
        )
    else:
        info.update(
            served=served.describe(),
            served_bytes=part.stat().st_size,
            served_sha256=sha256_file(part),
        )
        try:
            _convert(served, out, kind, show_progress)
        except (OSError, EOFError, zlib.error, zipfile.BadZipFile) as exc:
            part.unlink()
            raise UsageError(
                f"{url}: {part.name} is damaged ({exc}); it was removed: run again"
            ) from None
        part.unlink()
    return {"path": str(out), "bytes": out.stat().st_size, "sha256": write_sha256(out), **info}


def _convert(served: filetype.DataFile, out: Path, kind: str, show_progress: bool) -> None:
    """Write the rows ``served`` holds to ``out`` as ``kind`` (GZIP or TEXT): a zip's member is
    copied out, and compressed or decompressed where the types differ."""
    name = served.member or served.path.name
    with (
        filetype.open_payload(served) as src,
        atomic_path(out) as tmp,
        progress_bar(f"unpack {name}", None, unit="bytes", show=show_progress) as bar,
    ):
        source = src
        if served.rows_kind == filetype.GZIP and kind == filetype.TEXT:
            source = gzip.GzipFile(fileobj=src, mode="rb")
        compress = served.rows_kind == filetype.TEXT and kind == filetype.GZIP
        with gzip.open(tmp, "wb", compresslevel=6) if compress else open(tmp, "wb") as sink:
            while block := source.read(BLOCK):
                sink.write(block)
                bar.advance(len(block))


# ---------------------------------------------------------------- the first rows


def _fetch_rows(url: str, out: Path, kind: str, rows: int, show_progress: bool) -> dict:
    """Stream the first ``rows`` rows (``fetch`` checked it is ≥ 1) and close the connection;
    write them to ``out`` (gzip-compressed unless ``kind`` is TEXT)."""
    try:
        response = urllib.request.urlopen(url, timeout=TIMEOUT)
    except urllib.error.HTTPError as exc:
        if exc.code in GONE:
            raise SourceUnusable(f"HTTP {exc.code} {exc.reason}") from None
        raise UsageError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (OSError, http.client.HTTPException) as exc:
        raise UsageError(f"{url}: {exc}") from None
    seen, pending = 0, b""
    counter = {"bytes": 0}
    try:
        with (
            response,
            atomic_path(out) as tmp,
            gzip.open(tmp, "wb") if kind == filetype.GZIP else open(tmp, "wb") as sink,
            progress_bar(f"fetch first {rows} rows", rows, show=show_progress) as bar,
        ):
            length = response.headers.get("Content-Length")
            raw = _blocks(response, int(length) if length is not None else None, counter)
            text = _rows_text(raw, response.headers)
            for block in text:
                lines = (pending + block).split(b"\n")
                pending = lines.pop()
                take = lines[: rows - seen]
                if take:
                    sink.write(b"\n".join(take) + b"\n")
                seen += len(take)
                bar.update(seen)
                if seen >= rows:
                    break
            text.close()  # stop reading: the rest of the download is not needed
            if seen < rows and pending.strip():  # the file's last row, without a newline
                sink.write(pending + b"\n")
                seen += 1
    except Cut:
        # The server closed before the file's end: a cut, not a short file. Raised inside
        # the block, so nothing is written.
        raise UsageError(
            f"{url}: the connection closed after {seen} complete rows of the {rows} asked "
            f"for ({counter['bytes']} bytes): the download was cut; run "
            "`higgsbench data fetch` again"
        ) from None
    except (OSError, http.client.HTTPException, zlib.error, EOFError) as exc:
        raise UsageError(f"{url}: download of the first {rows} rows failed: {exc}") from None
    except SourceUnusable:
        raise
    except HiggsbenchError as exc:
        raise UsageError(f"{url}: {exc}") from None
    return {
        "path": str(out),
        "rows": seen,
        "bytes_downloaded": counter["bytes"],
        "sha256": write_sha256(out),
        "url": redact_url(url),
    }


def _blocks(response, length: int | None, counter: dict) -> Iterator[bytes]:
    """The response body block by block; Cut when it ends before ``length`` bytes."""
    while block := response.read(BLOCK):
        counter["bytes"] += len(block)
        yield block
    if length is not None and counter["bytes"] < length:
        raise Cut(f"the connection closed at {counter['bytes']} of {length} bytes")


def _peek(blocks: Iterable[bytes], n: int = SNIFF_BYTES) -> tuple[bytes, Iterator[bytes]]:
    """The first ``n`` bytes (fewer at the end) and an iterator over all of them again."""
    it = iter(blocks)
    head: list[bytes] = []
    size = 0
    for block in it:
        head.append(block)
        size += len(block)
        if size >= n:
            break
    return b"".join(head)[:n], itertools.chain(head, it)


def _rows_text(raw: Iterator[bytes], headers) -> Iterator[bytes]:
    """The CSV text of a download: gunzipped, or the first file of a zip (gunzipped when it is
    a .csv.gz), or as it is."""
    head, blocks = _peek(raw)
    kind = _check_served(head, headers)
    if kind == filetype.GZIP:
        yield from _gunzip(blocks)
    elif kind == filetype.ZIP:
        yield from _unzip_first(blocks)
    else:
        yield from blocks


def _gunzip(blocks: Iterable[bytes]) -> Iterator[bytes]:
    """Decompress a gzip stream (its members one after another); Cut when it ends early."""
    decompressor = zlib.decompressobj(zlib.MAX_WBITS | 16)
    for block in blocks:
        while block:
            yield decompressor.decompress(block)
            block = b""
            if decompressor.eof and decompressor.unused_data:
                block = decompressor.unused_data
                decompressor = zlib.decompressobj(zlib.MAX_WBITS | 16)
    if not decompressor.eof:
        raise Cut("the gzip stream ended before its end")


def _unzip_first(blocks: Iterable[bytes]) -> Iterator[bytes]:
    """The rows in the first file of a zip stream, read as it arrives."""
    try:
        from stream_unzip import TruncatedDataError, UnzipError, stream_unzip
    except ImportError:  # pragma: no cover - a dependency of the package
        raise UsageError(
            "--rows on a zip download needs the stream-unzip package (pip install stream-unzip)"
        ) from None
    try:
        for name, _size, chunks in stream_unzip(blocks):
            member = name.decode("utf-8", "replace")
            if member.endswith("/"):  # a directory entry
                for _ in chunks:
                    pass
                continue
            head, data = _peek(chunks)
            kind, what = filetype.sniff(head)
            if kind == filetype.GZIP:
                yield from _gunzip(data)
            elif kind == filetype.TEXT:
                yield from data
            else:
                raise SourceUnusable(
                    f"the server sent a zip archive whose member {member} is {what}, not data"
                )
            return
    except TruncatedDataError:
        raise Cut("the zip stream ended before its end") from None
    except UnzipError as exc:
        raise UsageError(
            f"the zip stream is damaged or of a kind stream-unzip cannot read "
            f"({type(exc).__name__}: {exc})"
        ) from None
    raise SourceUnusable("the server sent an empty zip archive (it holds no files)")
