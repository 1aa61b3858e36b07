"""HMAC-SHA256 pseudonyms: keyed, stable, kind-separated; keys from the environment or a private key file."""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geo_segment.errors import ConfigError
from geo_segment.pseudonyms import load_key, pseudonymize

KEY = b"0123456789abcdef0123456789abcdef"


def test_golden_values_computed_independently() -> None:
    out = pseudonymize(pd.Series(["AA100001", "h_00ff", None]), kind="voter", key=KEY)
    assert out[0] == hmac.new(KEY, b"voter:AA100001", hashlib.sha256).hexdigest()
    assert out[1] == hmac.new(KEY, b"voter:h_00ff", hashlib.sha256).hexdigest()
    assert pd.isna(out[2])
    # never the bare hash anyone could compute from a public voter file
    assert out[0] != hashlib.sha256(b"AA100001").hexdigest()


@settings(deadline=None)
@given(st.lists(st.text(min_size=1, max_size=10), min_size=1, max_size=20))
def test_stable_per_value_and_separated_by_kind_and_key(ids: list[str]) -> None:
    s = pd.Series(ids)
    a = pseudonymize(s, kind="voter", key=KEY)
    assert a.str.fullmatch(r"[0-9a-f]{64}").all()
    assert (a.groupby(s.to_numpy()).nunique() == 1).all()  # one pseudonym per id
    assert a.nunique() == s.nunique()
    assert not set(a) & set(pseudonymize(s, kind="household", key=KEY))
    assert not set(a) & set(pseudonymize(s, kind="voter", key=KEY[::-1]))


def test_key_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEO_SEGMENT_HMAC_KEY", KEY.decode())
    assert load_key() == KEY
    monkeypatch.setenv("GEO_SEGMENT_HMAC_KEY", "short")
    with pytest.raises(ConfigError, match=r"pseudonym key is too short; expected >= 32 bytes, found 5 bytes"):
        load_key()


def test_key_file_must_be_private_and_default_is_created(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("GEO_SEGMENT_HMAC_KEY", raising=False)
    key_file = tmp_path / "k"
    key_file.write_text(KEY.decode() + "\n")
    os.chmod(key_file, 0o644)
    monkeypatch.setenv("GEO_SEGMENT_KEY_FILE", str(key_file))
    with pytest.raises(ConfigError, match=r"key file is readable by others; expected mode 0600, found 0o644"):
        load_key()
    os.chmod(key_file, 0o600)
    assert load_key() == KEY
    monkeypatch.setenv("GEO_SEGMENT_KEY_FILE", str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="no pseudonym key"):
        load_key(create=True)  # a named key file is never invented
    monkeypatch.delenv("GEO_SEGMENT_KEY_FILE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with pytest.raises(ConfigError, match="no pseudonym key"):
        load_key()
    created = load_key(create=True)
    path = tmp_path / "home" / ".config" / "geo_segment" / "hmac.key"
    assert path.stat().st_mode & 0o777 == 0o600 and len(created) == 64
    assert load_key() == created  # stable across runs
