"""Tests for medcloak.pseudonym: keyed, stateless, reproducible pseudonyms."""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medcloak.errors import ProfileError
from medcloak.pseudonym import MAX_DAYS, MIN_DAYS, Keyring, new_secret, read_secret

SECRET = b"0123456789abcdef-site-secret"
OTHER = b"0123456789abcdef-other-secret"
UID_RE = re.compile(r"2\.25\.(0|[1-9][0-9]*)")
INPUTS = ["1.2.840.113619.2.55.3.604688119.969.1268071029.320", "PAT001", "DOE^JOHN", "", "é€"]

inputs = st.text(max_size=64)


def pseudonyms(k: Keyring, value: str) -> dict[str, object]:
    return {
        "uid": k.uid(value),
        "patient_id": k.patient_id(value),
        "patient_name": k.patient_name(value),
        "date_offset": list(k.date_offset(value)),
        "token": k.token("file", value),
    }


def test_same_input_same_output_across_processes():
    code = (
        "import json, sys\n"
        "from medcloak.pseudonym import Keyring\n"
        "k = Keyring(sys.argv[1].encode())\n"
        "values = json.loads(sys.argv[2])\n"
        "print(json.dumps([{'uid': k.uid(v), 'patient_id': k.patient_id(v),"
        " 'patient_name': k.patient_name(v), 'date_offset': list(k.date_offset(v)),"
        " 'token': k.token('file', v)} for v in values]))\n"
    )
    env = dict(os.environ, PYTHONHASHSEED="12345")
    result = subprocess.run(
        [sys.executable, "-c", code, SECRET.decode(), json.dumps(INPUTS)],
        capture_output=True, text=True, env=env, check=True, timeout=120,
    )
    other = json.loads(result.stdout)
    k = Keyring(SECRET)
    assert other == [pseudonyms(k, v) for v in INPUTS]


def test_same_input_same_output_in_process_with_fresh_keyring():
    for v in INPUTS:
        assert pseudonyms(Keyring(SECRET), v) == pseudonyms(Keyring(bytes(SECRET)), v)


def test_different_secrets_give_different_outputs():
    a, b = Keyring(SECRET), Keyring(OTHER)
    for v in INPUTS:
        assert a.uid(v) != b.uid(v)
        assert a.patient_id(v) != b.patient_id(v)
        assert a.token("file", v) != b.token("file", v)
    offsets_a = [a.date_offset(f"patient-{i}") for i in range(20)]
    offsets_b = [b.date_offset(f"patient-{i}") for i in range(20)]
    assert offsets_a != offsets_b


def test_purposes_are_separated():
    k = Keyring(SECRET)
    assert k.token("file", "X") != k.token("folder", "X")
    assert k.digest("uid", "X") != k.digest("patient", "X")


@settings(max_examples=300)
@given(value=inputs)
def test_uid_is_a_valid_2_25_uid(value):
    uid = Keyring(SECRET).uid(value)
    assert len(uid) <= 64
    assert UID_RE.fullmatch(uid), uid
    assert int(uid[5:]) < 2**128  # a UUID-derived number (PS3.5 B.2)


def test_uid_ignores_surrounding_padding():
    # a UI value may carry a trailing NUL or space as padding; it is the same UID
    k = Keyring(SECRET)
    assert k.uid("1.2.3 ") == k.uid("1.2.3")


def test_distinct_inputs_give_distinct_uids():
    rng = random.Random(20240601)
    values = {
        ".".join(str(rng.randrange(0, 10**rng.randrange(1, 10))) for _ in range(rng.randrange(3, 9)))
        for _ in range(20000)
    }
    values |= {f"1.2.3.{i}" for i in range(5000)}
    k = Keyring(SECRET)
    uids = {k.uid(v) for v in values}
    assert len(uids) == len(values)


@settings(max_examples=300)
@given(value=inputs)
def test_patient_id_valid_lo(value):
    pid = Keyring(SECRET).patient_id(value)
    assert 0 < len(pid) <= 64
    assert "\\" not in pid
    assert pid == pid.strip()
    assert all(0x20 <= ord(c) < 0x7F for c in pid)


@settings(max_examples=200)
@given(value=inputs)
def test_patient_name_valid_pn(value):
    name = Keyring(SECRET).patient_name(value)
    assert 0 < len(name) <= 64
    assert "\\" not in name and "=" not in name
    assert all(0x20 <= ord(c) < 0x7F for c in name)


def test_distinct_identities_give_distinct_patient_ids():
    k = Keyring(SECRET)
    ids = {k.patient_id(f"PAT{i:06d}") for i in range(20000)}
    assert len(ids) == 20000


@settings(max_examples=500)
@given(value=inputs)
def test_date_offset_ranges(value):
    days, seconds = Keyring(SECRET).date_offset(value)
    assert isinstance(days, int) and isinstance(seconds, int)
    assert days != 0
    assert MIN_DAYS <= abs(days) <= MAX_DAYS
    assert 0 <= seconds < 86400


def test_date_offset_constants_sane():
    assert 0 < MIN_DAYS <= MAX_DAYS


def test_date_offsets_spread_over_both_signs_and_the_range():
    k = Keyring(SECRET)
    offsets = [k.date_offset(f"patient-{i}") for i in range(2000)]
    days = [d for d, _ in offsets]
    assert any(d > 0 for d in days) and any(d < 0 for d in days)
    assert len(set(days)) > 1000
    assert len({s for _, s in offsets}) > 1000
    # the whole allowed range is used, not just a corner of it
    assert min(abs(d) for d in days) < MIN_DAYS + (MAX_DAYS - MIN_DAYS) // 10
    assert max(abs(d) for d in days) > MAX_DAYS - (MAX_DAYS - MIN_DAYS) // 10


@pytest.mark.parametrize("secret", [b"", b"x", b"0123456789abcde"])
def test_short_secret_raises_profile_error(secret):
    with pytest.raises(ProfileError):
        Keyring(secret)


def test_sixteen_byte_secret_accepted():
    assert Keyring(b"0123456789abcdef").uid("1.2.3").startswith("2.25.")


def test_new_secret_is_long_enough_and_random():
    a, b = new_secret(), new_secret()
    assert a != b
    Keyring(a)
    assert len(a) >= 16


def test_read_secret_strips_whitespace(tmp_path):
    path = tmp_path / "secret.key"
    path.write_bytes(b"  \n" + SECRET + b"\r\n\t ")
    secret = read_secret(path)
    assert secret == SECRET
    assert Keyring(secret).uid("1.2.3") == Keyring(SECRET).uid("1.2.3")


def test_read_secret_too_short_after_stripping(tmp_path):
    path = tmp_path / "secret.key"
    path.write_bytes(b"   short   \n" + b" " * 20)
    with pytest.raises(ProfileError):
        read_secret(path)


def test_read_secret_missing_file_is_profile_error(tmp_path):
    with pytest.raises(ProfileError):
        read_secret(tmp_path / "absent.key")


def test_secret_not_in_repr():
    assert SECRET.decode() not in repr(Keyring(SECRET))
