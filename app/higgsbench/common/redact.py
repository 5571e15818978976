"""Secrets in addresses are never shown: a password in a URL's user part, and query-string
parameters that carry a signature, token, key or password (S3's X-Amz-Signature, a presigned
Google URL's X-Goog-Signature, Azure's sig, an API token) become ``***`` in every message,
printed JSON and record. Standard library only: the error boundary uses it for every line.
"""

from __future__ import annotations

import re
import urllib.parse

MASK = "***"
# Query parameters whose value is a secret, by a word in their name (case ignored), and a few
# names that are secret whole but too short to search for.
SECRET_WORDS = ("signature", "token", "password", "passwd", "secret", "credential", "apikey")
SECRET_NAMES = ("sig", "key", "api_key", "access_key", "auth", "pwd", "code")
URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")


def is_secret_parameter(name: str) -> bool:
    name = name.lower()
    return name in SECRET_NAMES or any(word in name for word in SECRET_WORDS)


def redact_url(url: str) -> str:
    """``url`` with the password of its user part and the values of secret query parameters
    replaced by ***; the rest (scheme, user name, host, path, other parameters) as it was."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:  # does not parse: mask what looks like user:password@
        return re.sub(r"(//[^/@:]*:)[^/@]*@", rf"\g<1>{MASK}@", url)
    netloc = parts.netloc
    user, at, host = netloc.rpartition("@")
    if at and ":" in user:
        netloc = f"{user.split(':', 1)[0]}:{MASK}@{host}"
    query = "&".join(_redact_parameter(item) for item in parts.query.split("&"))
    if (netloc, query) == (parts.netloc, parts.query):
        return url  # nothing secret: as written, not as urllib would normalise it
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc, query=query))


def _redact_parameter(item: str) -> str:
    name, eq, _ = item.partition("=")
    return f"{name}={MASK}" if eq and is_secret_parameter(urllib.parse.unquote(name)) else item


def redact_text(text: str) -> str:
    """``text`` with every URL in it redacted (redact_url)."""

    def one(match: re.Match) -> str:
        url = match.group(0)
        bare = url.rstrip(".,;:!?)]}")  # the sentence's punctuation, not the address's
        return redact_url(bare) + url[len(bare) :]

    return URL_IN_TEXT.sub(one, text)


def split_credentials(url: str) -> tuple[str, str | None, str | None]:
    """(``url`` without its user part, the user name, the password) — for clients that take
    credentials apart from the address (HTTP basic authentication, MLflow's environment)."""
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - parsed on access
    except ValueError:  # not an address: whoever checks it says so (limits.url)
        return url, None, None
    if parts.username is None and parts.password is None:
        return url, None, None
    host = parts.netloc.rpartition("@")[2]
    bare = urllib.parse.urlunsplit(parts._replace(netloc=host))
    user = urllib.parse.unquote(parts.username) if parts.username is not None else None
    password = urllib.parse.unquote(parts.password) if parts.password is not None else None
    return bare, user, password
