"""Hashed customer lists and the guardrails: purposes, state rules, EU/EEA consent, forbidden columns, suppression
applied last, overlap and exclusivity, owner-only files, the audit log. Bad-inputs rows 24 and 25."""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geo_segment.config import ExportConfig
from geo_segment.errors import AudienceTooSmallError, ConfigError, GuardrailError, OutputPathError
from geo_segment.exports import build_customer_list, export_audiences, load_rules
from geo_segment.exports.guardrails import (
    check_columns,
    load_suppression,
    make_exclusive,
    overlap_report,
)


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def voters(n: int, *, start: int = 0, state: str = "RI", **extra: list[object]) -> pd.DataFrame:
    """n voters with distinct identifiers: V0000.., first.last0@example.org, phones 401-555-2xxx."""
    ids = range(start, start + n)
    frame = pd.DataFrame({
        "voter_id": [f"V{i:04d}" for i in ids],
        "household_id": [f"h{i:04d}" for i in ids],
        "first_name": [f"Ana{chr(65 + i % 26)}" for i in ids],
        "last_name": [f"O'Brien-{i}" for i in ids],
        "email": [f"Ana.OBrien{i}@Example.org" for i in ids],
        "phone": [f"(401) 555-{2000 + i:04d}" for i in ids],
        "city": "Providence",
        "state": state,
        "zip5": "02908-1234",
        "party": "DEM",
        "voted_general_2024": True,
    }, dtype="object")
    for k, v in extra.items():
        frame[k] = v
    return frame


def test_meta_file_has_meta_headers_and_hand_computed_hashes() -> None:
    cl = build_customer_list(voters(120), platform="meta", purpose="political")
    assert list(cl.frame.columns) == ["email", "phone", "fn", "ln", "ct", "st", "zip", "country"]
    first = cl.frame.iloc[0]
    assert first["email"] == sha("ana.obrien0@example.org")
    assert first["phone"] == sha("14015552000")
    assert first["fn"] == sha("anaa")
    assert first["ln"] == sha("obrien")  # letters only: apostrophe, dash and digits dropped
    assert first["ct"] == sha("providence") and first["st"] == sha("ri") and first["zip"] == sha("02908")
    assert first["country"] == sha("us")
    assert cl.counts == {"rows_in": 120, "unmatchable": 0, "duplicates": 0, "suppressed": 0, "rows_out": 120,
                         "minimum": 100}


def test_google_file_hashes_names_and_contacts_but_not_country_and_zip() -> None:
    cl = build_customer_list(voters(100), platform="google", purpose="issue")
    assert list(cl.frame.columns) == ["Email", "Phone", "First Name", "Last Name", "Country", "Zip"]
    first = cl.frame.iloc[0]
    assert first["Phone"] == sha("+14015552000")
    assert first["Last Name"] == sha("o'brien-0")  # Google: trim and lowercase only
    assert first["Country"] == "US" and first["Zip"] == "02908"


def test_party_and_vote_history_never_enter_the_file() -> None:
    cl = build_customer_list(voters(100), platform="meta", purpose="political")
    assert not {"party", "voted_general_2024"} & set(cl.frame.columns)
    with pytest.raises(GuardrailError, match=r"columns \['party', 'voted_general_2024'\] never enter an ad file"):
        check_columns(["email", "party", "voted_general_2024"], allowlist=["email", "party"], target="meta")
    with pytest.raises(GuardrailError, match=r"columns \['voter_id'\] are not in the meta allowlist"):
        check_columns(["email", "voter_id"], allowlist=["email"], target="meta")


def test_bad_input_row_24_already_hashed_identifiers_pass_through() -> None:
    frame = voters(100)
    frame.loc[0, "email"] = sha("someone@example.org").upper()
    frame.loc[1, "phone"] = sha("14015559999")
    cl = build_customer_list(frame, platform="meta", purpose="political")
    assert cl.frame.loc[0, "email"] == sha("someone@example.org")
    assert cl.frame.loc[1, "phone"] == sha("14015559999")


@pytest.mark.parametrize("platform", ["meta", "google"])
def test_bad_input_row_25_audience_below_minimum_names_minimum_and_count(platform: str) -> None:
    frame = pd.concat([voters(99), voters(5)], ignore_index=True)  # 5 exact duplicates
    with pytest.raises(AudienceTooSmallError,
                       match=rf"{platform} audience below its minimum.*expected at least 100 rows.*found 99 rows "
                             r"\(104 in, 0 unmatchable, 5 duplicates, 0 suppressed\)"):
        build_customer_list(frame, platform=platform, purpose="political")


def test_suppression_is_applied_last_and_counted(tmp_path: Path) -> None:
    supp = tmp_path / "dnc.csv"
    supp.write_text("voter_id,email,phone\nV0000,,\n,ANA.OBRIEN1@example.org,\n,,401.555.2002\n"
                    f",{sha('ana.obrien3@example.org')},\n", encoding="utf-8")
    acp = tmp_path / "acp.csv"
    acp.write_text("household_id\nh0004\n", encoding="utf-8")
    keys = load_suppression([supp, acp])
    frame = pd.concat([voters(110), voters(1)], ignore_index=True)  # V0000 twice: one duplicate, then suppressed
    cl = build_customer_list(frame, platform="meta", purpose="political", suppression=keys)
    assert cl.counts == {"rows_in": 111, "unmatchable": 0, "duplicates": 1, "suppressed": 5, "rows_out": 105,
                         "minimum": 100}
    assert sha("ana.obrien0@example.org") not in set(cl.frame["email"])
    assert sha("ana.obrien5@example.org") in set(cl.frame["email"])
    # suppression pushes an audience below its minimum: refused with the count after suppression
    with pytest.raises(AudienceTooSmallError, match=r"found 98 rows \(103 in, 0 unmatchable, 0 duplicates, "
                                                    r"5 suppressed\)"):
        build_customer_list(voters(103), platform="meta", purpose="political", suppression=keys)


def test_google_refuses_customer_match_for_election_purpose() -> None:
    with pytest.raises(GuardrailError, match="google refuses customer_match exports for purpose 'election'"):
        build_customer_list(voters(200), platform="google", purpose="election")
    assert build_customer_list(voters(200), platform="meta", purpose="election").warnings


@pytest.mark.parametrize("purpose", [None, "commercial"])
def test_purpose_is_required(purpose: str | None) -> None:
    with pytest.raises(GuardrailError, match="an export needs a purpose; expected one of"):
        build_customer_list(voters(200), platform="meta", purpose=purpose)


def test_state_rules_table_limits_california_purposes() -> None:
    assert "issue" not in load_rules().allowed_purposes("CA")
    with pytest.raises(GuardrailError, match=r"purpose 'issue' is not allowed for voter data from \['CA'\] "
                                             r"\(CA: 150 records"):
        build_customer_list(pd.concat([voters(50), voters(150, start=50, state="CA")]), platform="meta",
                            purpose="issue")
    assert len(build_customer_list(voters(150, state="CA"), platform="meta", purpose="political").frame) == 150


def test_eu_records_need_a_consent_flag_each() -> None:
    frame = voters(120, country=["FR"] * 10 + ["US"] * 110)
    with pytest.raises(GuardrailError, match="10 of 10 EU/EEA records carry no political-ads consent flag"):
        build_customer_list(frame, platform="meta", purpose="political")
    frame["political_ads_consent"] = [True] * 9 + [False] + [None] * 110
    with pytest.raises(GuardrailError, match="1 of 10 EU/EEA records"):
        build_customer_list(frame, platform="meta", purpose="political")
    frame["political_ads_consent"] = [True] * 10 + [None] * 110
    cl = build_customer_list(frame, platform="meta", purpose="political")
    assert cl.frame["country"].iloc[0] == sha("fr")
    with pytest.raises(GuardrailError, match="120 of 120 EU/EEA records"):  # a European file without a column
        build_customer_list(voters(120), platform="meta", purpose="political", default_region="DE")


def test_overlap_and_priority_exclusivity() -> None:
    a, b, c = pd.Index(["1", "2", "3"]), pd.Index(["3", "4"]), pd.Index(["2", "3", "5"])
    rep = overlap_report({"a": a, "b": b, "c": c})
    assert rep[["a", "b", "overlap"]].values.tolist() == [["a", "b", 1], ["a", "c", 2], ["b", "c", 1]]
    assert rep.jaccard.tolist() == [0.25, 0.5, 0.25]
    out = make_exclusive({"a": a, "b": b, "c": c}, ["c", "b", "a"])
    assert {k: v.tolist() for k, v in out.items()} == {"a": ["1"], "b": ["4"], "c": ["2", "3", "5"]}
    with pytest.raises(ConfigError, match="the priority order must name every audience once"):
        make_exclusive({"a": a, "b": b}, ["a"])


def test_export_audiences_files_permissions_overlap_and_audit(tmp_path: Path) -> None:
    core, wide = voters(150), voters(200, start=100)  # 50 in both
    res = export_audiences({"core": core, "wide": wide}, tmp_path, platform="meta", purpose="political",
                           exclusive=True, priority=["core", "wide"], inputs=[{"role": "voters", "sha256": "x"}],
                           config={"purpose": "political"})
    assert res.overlap.overlap.tolist() == [50]
    assert len(pd.read_csv(res.files["core"])) == 150 and len(pd.read_csv(res.files["wide"])) == 150
    for name in ("core", "wide"):
        assert stat.S_IMODE(res.files[name].stat().st_mode) == 0o600
    assert pd.read_csv(res.files["overlap"]).overlap.tolist() == [50]
    lines = [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [x["audience"] for x in lines] == ["core", "wide"]
    assert lines[0]["counts"]["rows_out"] == 150 and lines[0]["purpose"] == "political"
    assert lines[0]["target"] == "meta" and len(lines[0]["input_digest"]) == 64 and lines[0]["time"]
    # append-only: a second export adds lines and leaves the first ones as they were
    before = (tmp_path / "audit.jsonl").read_text()
    with pytest.raises(AudienceTooSmallError):
        export_audiences({"tiny": voters(3)}, tmp_path, platform="meta", purpose="political")
    after = (tmp_path / "audit.jsonl").read_text()
    assert after.startswith(before) and json.loads(after.splitlines()[-1])["status"] == "refused"
    audit = after.lower()
    for raw in ("ana.obrien", "o'brien", "555-2", "5552", "anaa"):
        assert raw not in audit


def test_export_audiences_skip_reports_refusals(tmp_path: Path) -> None:
    res = export_audiences({"big": voters(120), "tiny": voters(3)}, tmp_path, platform="google",
                           purpose="political", on_small="skip")
    assert set(res.files) == {"big", "overlap"} and "found 3 rows" in res.refused["tiny"]


def test_bad_input_row_21_audience_names_stay_inside_the_output_folder(tmp_path: Path) -> None:
    with pytest.raises(OutputPathError, match="an output name would leave the output folder"):
        export_audiences({"../../x": voters(120)}, tmp_path / "out", platform="meta", purpose="political")
    assert not (tmp_path / "x_meta.csv").exists()


def test_export_config_validates() -> None:
    with pytest.raises(ConfigError, match=r"\[export\] settings out of range.*found purpose='commercial'"):
        ExportConfig(purpose="commercial")
    assert ExportConfig(formats=["geojson"]).formats == ("geojson",)  # type: ignore[arg-type]


# --- property: hashed files hold only 64-hex values in hashed columns ----------------------------------------------

text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(st.tuples(text, text, text, text, text), min_size=1, max_size=30),
       platform=st.sampled_from(["meta", "google"]))
def test_hashed_columns_hold_only_sha256(rows: list[tuple[str, ...]], platform: str) -> None:
    frame = pd.DataFrame(rows, columns=["email", "phone", "first_name", "last_name", "zip5"])
    frame["voter_id"] = [str(i) for i in range(len(frame))]
    cl = build_customer_list(frame, platform=platform, purpose="political", min_audience=0)
    hashed = (["email", "phone", "fn", "ln", "zip", "country"] if platform == "meta"
              else ["Email", "Phone", "First Name", "Last Name"])
    for col in hashed:
        if col in cl.frame:
            assert cl.frame[col].dropna().str.fullmatch(r"[0-9a-f]{64}").all(), col
    if platform == "google":
        assert cl.frame["Zip"].dropna().str.fullmatch(r"\d{5}").all()
    assert cl.counts["rows_in"] == (cl.counts["rows_out"] + cl.counts["unmatchable"] + cl.counts["duplicates"]
                                    + cl.counts["suppressed"])
