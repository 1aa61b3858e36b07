"""Pseudonymous ids for outputs that must not carry voter or household ids: HMAC-SHA256 with a secret key.

An output meant for people who should not hold personal data (an experiment's design shared with an analyst, a
list of units handed to a vendor) sometimes needs a stable id per voter or household. A bare hash of the id (or
of an address) is not a pseudonym: anyone can hash every id in a public voter file and match. The key makes it
one: ``HMAC-SHA256(key, kind + ":" + id)``, the kind keeping voter and household pseudonyms apart.

The key comes from the environment, never from the repository or the run folder:

- ``GEO_SEGMENT_HMAC_KEY``: the key itself (at least 32 characters), or
- ``GEO_SEGMENT_KEY_FILE``: a file holding it (``geo-segment`` refuses a key file readable by others), or
- by default ``~/.config/geo_segment/hmac.key``, which :func:`load_key` creates (32 random bytes, hex, mode 0600)
  when ``create=True``.

Keep the key as long as the pseudonyms must stay linkable across runs; rotate it to unlink them.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
from pathlib import Path

import numpy as np
import pandas as pd

from geo_segment.errors import ConfigError, Location

__all__ = ["DEFAULT_KEY_FILE", "load_key", "pseudonymize"]

DEFAULT_KEY_FILE = Path("~/.config/geo_segment/hmac.key")
_MIN_KEY = 32


def _check(key: bytes, where: str) -> bytes:
    if len(key) < _MIN_KEY:
        raise ConfigError("the pseudonym key is too short", where=Location(where), expected=f">= {_MIN_KEY} bytes",
                          found=f"{len(key)} bytes", fix="use `python -c 'import secrets; print(secrets.token_hex())'`")
    return key


def load_key(*, create: bool = False) -> bytes:
    """Return the HMAC key from ``GEO_SEGMENT_HMAC_KEY``, ``GEO_SEGMENT_KEY_FILE`` or the default key file.

    Parameters
    ----------
    create
        Create the default key file (random, mode 0600) when no key is configured.

    Raises
    ------
    ConfigError
        No key (and ``create`` false), a key shorter than 32 bytes, or a key file that others can read.
    """
    env = os.environ.get("GEO_SEGMENT_HMAC_KEY")
    if env:
        return _check(env.strip().encode("utf-8"), "GEO_SEGMENT_HMAC_KEY")
    path = Path(os.environ.get("GEO_SEGMENT_KEY_FILE") or DEFAULT_KEY_FILE).expanduser()
    if not path.exists():
        if not create or os.environ.get("GEO_SEGMENT_KEY_FILE"):
            raise ConfigError("no pseudonym key", where=Location(path),
                              expected="GEO_SEGMENT_HMAC_KEY, or a key file (GEO_SEGMENT_KEY_FILE)",
                              found="neither", fix=f"create one: mkdir -p {path.parent} && python -c 'import "
                                                   f"secrets; print(secrets.token_hex())' > {path} && chmod 600 {path}")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(secrets.token_hex(32) + "\n")
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError("the pseudonym key file is readable by others", where=Location(path),
                          expected="mode 0600", found=oct(mode & 0o777), fix=f"chmod 600 {path}")
    return _check(path.read_text(encoding="utf-8").strip().encode("utf-8"), str(path))


def pseudonymize(values: pd.Series, *, kind: str, key: bytes) -> pd.Series:
    """HMAC-SHA256 pseudonyms (64 hex digits) of ids, computed once per distinct id; missing stays missing.

    Parameters
    ----------
    values
        Ids (voter or household ids).
    kind
        What the ids are (``"voter"``, ``"household"``...): the same id of two kinds gets two pseudonyms.
    key
        From :func:`load_key`.

    Examples
    --------
    >>> out = pseudonymize(pd.Series(["AA1", None, "AA1"]), kind="voter", key=b"k" * 32)
    >>> out[0] == out[2], out[1] is None or pd.isna(out[1]), len(out[0])
    (True, True, 64)
    """
    codes, uniques = pd.factorize(values.astype("str"), use_na_sentinel=True)
    prefix = kind.encode("utf-8") + b":"
    digests = np.array([hmac.new(key, prefix + str(u).encode("utf-8"), hashlib.sha256).hexdigest()
                        for u in uniques], dtype=object)
    out = np.full(len(values), None, dtype=object)
    ok = codes >= 0
    out[ok] = digests[codes[ok]]
    return pd.Series(out, index=values.index, dtype="str")
