"""The residual-identifier scan and ``verify`` read the written object as a reader would.

Both ways: valid third-party files and short or common identifiers are never taken for a leak
(an ID inside a new UID or a dummy date, a name equal to a coded value, ``Anon`` inside
``ANONYMIZED``), while a distinctive identifier copied anywhere, kept attributes included, is.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import string
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pydicom
import pytest
from conftest import SECRET, UID_ROOT, base_dataset, pydicom_test_files, write
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.data import get_testdata_file
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from medcloak.errors import VerificationError
from medcloak.formats.dicom import deidentify_dicom
from medcloak.pseudonym import Keyring
from medcloak.residual import TEXT, Probe, find, read, tokens
from medcloak.rules.clean import TextCleaner
from medcloak.rules.profile import load_profile

WSI = Path(__file__).resolve().parents[2] / "shared" / "data" / "wsi"
BASIC = load_profile()
OPTIONS = ["retain-safe-private", "retain-long-modified-dates", "clean-descriptors", "clean-structured-content",
           "retain-device-identity", "retain-institution-identity", "retain-patient-characteristics"]


@contextmanager
def cleaning_bypassed() -> Iterator[None]:
    """The free-text cleaner switched off: free text the table does not name (Manufacturer, a LUT
    Explanation, a kept private text) is then released as it is, and the residual scan alone,
    the last line of defence, must find what it holds."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(TextCleaner, "__call__", lambda self, text: text)
        yield


def is_part10(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(132)[128:] == b"DICM"


def nibabel_dicom_files() -> list[Path]:
    """nibabel's DICOM test data: ``*.dcm``, gzipped DICOM, and any file that is Part 10."""
    import nibabel

    root = Path(nibabel.__file__).parent
    found = []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.suffix in (".py", ".pyc"):
            continue
        if path.name.endswith((".dcm", ".dcm.gz")) or is_part10(path):
            found.append(path)
    return found


def copy_plain(path: Path, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".gz":
        target = target.with_suffix("")
        target.write_bytes(gzip.decompress(path.read_bytes()))
    else:
        shutil.copy(path, target)
    return target


def release(path: Path, profile=BASIC, secret: bytes = SECRET):
    return deidentify_dicom(path, profile, Keyring(secret))


def ct_small(folder: Path, name: str = "ct.dcm", **attrs) -> Path:
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    for key, value in attrs.items():
        setattr(ds, key, value)
    return write(ds, folder / name)


# ---- the false alarms of issue 9 ------------------------------------------------------------------


def test_csa_slice_norm_anon_is_not_found_in_anonymized(tmp_path):
    (orig,) = [p for p in nibabel_dicom_files() if p.name == "csa_slice_norm.dcm"]
    ds = pydicom.dcmread(orig)
    assert str(ds.ReferringPhysicianName) == "Anon"
    # nibabel stripped the Pixel Data (an image without it is quarantined as incomplete): give
    # the header back the zero pixels its Image Pixel attributes describe
    assert "PixelData" not in ds
    ds.PixelData = bytes(ds.Rows * ds.Columns * ds.SamplesPerPixel * ds.BitsAllocated // 8)
    ds["PixelData"].VR = "OW"
    path = write(ds, tmp_path / "csa_slice_norm.dcm")
    release(path)
    # under options that keep device and institution attributes (all "Anon" in this file) too
    release(path, load_profile(None, OPTIONS))


def test_ect_supplemental_name_equal_to_image_type_and_id_inside_dummy_date():
    path = Path(get_testdata_file("eCT_Supplemental.dcm"))
    ds = pydicom.dcmread(path)
    assert ds.PatientID == "0010" and "PERFUSION" in ds.ImageType
    out = pydicom.dcmread(io.BytesIO(release(path).data))
    assert "PERFUSION" in out.ImageType  # the coded value is kept, and is no leak


@pytest.mark.parametrize("attrs", [
    {"PatientID": "0000"}, {"PatientID": "0101"}, {"PatientID": "1900"},
    {"ReferringPhysicianName": "Anon"}, {"ReferringPhysicianName": "Mize"},
    {"PatientName": "Nymi^Onym"}, {"PatientID": "2.25"},
])
def test_ct_small_short_identifiers_inside_generated_values(tmp_path, attrs):
    release(ct_small(tmp_path, **attrs))


def test_ct_small_id_4711_never_in_a_new_uid(tmp_path):
    """About one secret in 80 puts the digits 4711 inside a new UID: none of them quarantines."""
    path = ct_small(tmp_path, PatientID="4711")
    clashes = 0
    for n in range(2000):
        data = release(path, secret=b"secret-%04d-0123456789abcdef" % n).data
        clashes += b"4711" in data
        if clashes == 3:
            break
    assert clashes == 3


def test_verify_release_of_nibabel_and_sr_files(tmp_path):
    """nibabel's Patient ID 1234 against a kept SR code value 1234 (and any new UID)."""
    from medcloak.engine import run
    from medcloak.verify import verify_release

    src = tmp_path / "in"
    for path in nibabel_dicom_files():
        if path.name in ("0.dcm", "1.dcm") and path.parent.as_posix().endswith("nicom/tests/data"):
            copy_plain(path, src / "nib" / path.name)
    shutil.copy(pydicom_test_files() / "test-SR.dcm", src / "sr.dcm")
    assert pydicom.dcmread(src / "nib" / "0.dcm").PatientID == "1234"
    assert b"1234" in (src / "sr.dcm").read_bytes()
    (tmp_path / "key").write_bytes(SECRET)
    summary = run([src], tmp_path / "out", secret_file=tmp_path / "key")
    assert summary.ok == 3
    assert any(b"1234" in p.read_bytes() for p in (tmp_path / "out").rglob("*.dcm"))  # the SR's code
    assert verify_release(tmp_path / "out", tmp_path / "out.audit") == []


def test_a_shifted_date_equal_to_a_removed_date_is_no_leak(tmp_path):
    """The shifted Study Date is medcloak's own value, even when it equals a removed original date."""
    profile = load_profile(None, ["retain-long-modified-dates"])
    ds = base_dataset(UID_ROOT + "81", UID_ROOT + "82", UID_ROOT + "83", patient="PATSHIFT")
    ds.StudyDate, ds.StudyTime = "20200101", "101010"
    first = pydicom.dcmread(io.BytesIO(release(write(ds, tmp_path / "a.dcm"), profile).data))
    shifted = first.StudyDate
    assert shifted != "20200101"
    ds.add(DataElement(0x00410010, "LO", "SITE PRIVATE 1"))
    ds.add(DataElement(0x00411001, "DA", shifted))  # removed with its block: a needle
    out = pydicom.dcmread(io.BytesIO(release(write(ds, tmp_path / "b.dcm"), profile).data))
    assert out.StudyDate == shifted and 0x00411001 not in out
    # the same date kept unshifted in a text value is a leak (a text the site keeps as it is:
    # by default the cleaner would mask it)
    ds.Manufacturer = f"ACME {shifted}"
    keeping = load_profile(None, ["retain-long-modified-dates"], overrides={"attributes": {"Manufacturer": "keep"}})
    with pytest.raises(VerificationError, match="residual identifier from 00411001"):
        release(write(ds, tmp_path / "c.dcm"), keeping)


# ---- what a reader sees: both ways ---------------------------------------------------------------


def probe(value: str, high: bool = True) -> Probe:
    made = Probe.of(value, "PatientID", high)
    assert made is not None
    return made


def test_tokens_keep_uids_and_split_names():
    assert tokens("Doe^John=Smith\\X") == ("doe", "john", "smith", "x")
    assert tokens("1.2.840.4711.5 and 3.5mm, O'Brien_JR") == ("1.2.840.4711.5", "and", "3.5", "mm", "o", "brien", "jr")
    assert tokens("ANONYMIZED") == ("anonymized",)


def test_whole_words_in_text_are_found_parts_of_words_and_uids_are_not(tmp_path):
    ds = base_dataset(UID_ROOT + "1.4711", UID_ROOT + "2", UID_ROOT + "3")
    ds.ConvolutionKernel = "FC4711 SOFT"
    ds.Manufacturer = "ACME 4711 IMAGING"
    data = write(ds, tmp_path / "a.dcm").read_bytes()
    assert find(data, [probe("4711")]) == "PatientID"  # a whole word of the kept Manufacturer
    ds.Manufacturer = "ACME IMAGING"
    data = write(ds, tmp_path / "b.dcm").read_bytes()
    assert find(data, [probe("4711")]) is None  # inside FC4711 and inside a UID: no
    assert find(data, [probe("acme imaging")]) == "PatientID"  # a run of words
    assert find(data, [probe("imaging acme")]) is None  # not in that order
    assert find(data, [probe(UID_ROOT + "1.4711")]) == "PatientID"  # an original UID, whole


@pytest.mark.parametrize("charset, encoding", [("ISO_IR 100", "latin-1"), ("ISO_IR 192", "utf-8")])
def test_case_is_ignored_beyond_ascii(tmp_path, charset, encoding):
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.SpecificCharacterSet = charset
    ds.PatientName = "Müller^Hans"
    ds.Manufacturer = "MÜLLER MEDICAL"
    path = write(ds, tmp_path / "a.dcm")
    assert "MÜLLER".encode(encoding) in path.read_bytes()
    with cleaning_bypassed(), pytest.raises(VerificationError, match="PatientName"):
        release(path)
    released = pydicom.dcmread(io.BytesIO(release(path).data))  # the cleaner masks it, in any case
    assert released.Manufacturer == "*** MEDICAL"


def test_coded_values_count_only_identifier_like_values(tmp_path):
    ds = base_dataset(UID_ROOT + "1", UID_ROOT + "2", UID_ROOT + "3")
    ds.ImageType = ["ORIGINAL", "PRIMARY", "PERFUSION", "QX778123"]
    data = write(ds, tmp_path / "a.dcm").read_bytes()
    assert find(data, [probe("Perfusion")]) is None
    assert find(data, [probe("qx778123")]) == "PatientID"


def test_a_low_risk_value_counts_only_beyond_what_the_input_kept(tmp_path):
    """An institution's name that the input also holds in a kept attribute is no leak; one more
    copy than the input's kept values explain is."""
    ds = base_dataset(UID_ROOT + "91", UID_ROOT + "92", UID_ROOT + "93")
    ds.InstitutionName = "Saint Quillon Hospital"
    ds.Manufacturer = "Saint Quillon Hospital"
    path = write(ds, tmp_path / "in.dcm")
    release(path)  # the Manufacturer the profile keeps explains the one copy in the output
    low = Probe.of("saint quillon hospital", "InstitutionName", False, removed=1)
    del ds.InstitutionName  # what a release holds: the Manufacturer's copy only
    once = write(ds, tmp_path / "once.dcm").read_bytes()
    assert find(once, [low], original=path.read_bytes) is None
    ds.StudyDescription = "Saint Quillon Hospital CT"
    twice = write(ds, tmp_path / "twice.dcm").read_bytes()
    assert find(twice, [low], original=path.read_bytes) == "InstitutionName"


def test_dates_are_whole_values(tmp_path):
    ds = base_dataset(UID_ROOT + "1", UID_ROOT + "2", UID_ROOT + "3")
    ds.StudyDate = "19000101"
    data = write(ds, tmp_path / "a.dcm").read_bytes()
    assert find(data, [probe("0010"), probe("1900")]) is None
    date = Probe.of("19000101", "PatientBirthDate", True, date=True)
    assert find(data, [date]) == "PatientBirthDate"
    assert find(data, [date], generated=["19000101"]) is None  # a value medcloak wrote itself


def test_binary_values_count_only_distinctive_values(tmp_path):
    ds = base_dataset(UID_ROOT + "1", UID_ROOT + "2", UID_ROOT + "3")
    ds.add(DataElement(0x00282000, "OB", b"\x01\x02acsp 4711 profile by QUENNELLHARRIET\x00\x07 Anon\x00"
                                         b"scale 0.123456789 id:87654321\x00"))
    data = write(ds, tmp_path / "a.dcm").read_bytes()
    assert find(data, [probe("4711"), probe("Anon"), probe("12345678")]) is None
    assert find(data, [probe("Quennellharriet")]) == "PatientID"
    assert find(data, [probe("87654321")]) == "PatientID"


def test_the_quick_pass_leaves_out_only_real_trailing_pixel_data(tmp_path):
    from medcloak.residual import scan

    ds = base_dataset(UID_ROOT + "1", UID_ROOT + "2", UID_ROOT + "3")
    needles = {"quennell": probe("quennell")}
    n = len(ds.PixelData)
    assert scan(write(ds, tmp_path / "a.dcm").read_bytes(), needles, n) is None
    ds.add(DataElement(0x7FE10010, "LO", "SITE PRIVATE 9"))  # an element after the Pixel Data
    ds.add(DataElement(0x7FE11001, "LO", "QUENNELL"))
    assert scan(write(ds, tmp_path / "b.dcm").read_bytes(), needles, n) == "PatientID"


def test_the_reader_reads_pydicoms_files_whole():
    """Every file of pydicom's test set that pydicom reads is read to its end (implicit and
    explicit VR, big endian, deflated, encapsulated, sequences of unknown VR), but the truncated."""
    import warnings

    partial = []
    for path in sorted(pydicom_test_files().rglob("*")):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                pydicom.dcmread(path)
            except Exception:  # noqa: BLE001 - not DICOM, or not readable by pydicom either
                continue
        if read(path.read_bytes(), own_output=False).unparsed:
            partial.append(path.name)
    assert sorted(partial) == ["DICOMDIR-nooffset", "MR_truncated.dcm", "rtplan_truncated.dcm"]


def test_an_unreadable_object_is_searched_byte_for_byte():
    data = b"\x00" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\x40\x00" + b"\x00" * 8  # length past the end
    assert find(data + b"xx4711", [probe("4711")]) == "PatientID"


@settings(max_examples=200, deadline=None)
@given(cut=st.integers(0, 3000), flips=st.lists(st.tuples(st.integers(0, 3000), st.integers(0, 255)), max_size=3))
def test_damaged_bytes_never_break_the_reader(cut, flips):
    """Whatever the bytes, the reader answers (what it cannot parse it searches byte for byte)."""
    data = bytearray(Path(get_testdata_file("CT_small.dcm")).read_bytes()[: 3000 - cut])
    for at, value in flips:
        if at < len(data):
            data[at] = value
    found = find(bytes(data) + b"\x00QUENNELL", [probe("quennell"), probe("4711")])
    assert found in (None, "PatientID")
    fields = read(bytes(data), own_output=False)
    assert fields.values or fields.unparsed or fields.binary or not data


def test_deflated_output_is_read_inflated(tmp_path):
    """The deflated data set is not searched as compressed bytes (where nothing is ever found)."""
    path = Path(get_testdata_file("image_dfl.dcm"))
    ds = pydicom.dcmread(path)
    ds.PatientName = "Quennell^Harriet"
    ds.Manufacturer = "QUENNELL SCANNERS"
    ds.BurnedInAnnotation = "NO"  # a secondary capture: released only when declared free of text
    ds.save_as(tmp_path / "dfl.dcm")
    assert str(pydicom.dcmread(tmp_path / "dfl.dcm").file_meta.TransferSyntaxUID) == "1.2.840.10008.1.2.1.99"
    with cleaning_bypassed(), pytest.raises(VerificationError, match="PatientName"):
        release(tmp_path / "dfl.dcm")


def test_verify_finds_an_audited_patient_id_as_a_word(tmp_path):
    from medcloak.engine import run
    from medcloak.verify import verify_release

    ds = base_dataset(UID_ROOT + "71", UID_ROOT + "72", UID_ROOT + "73", patient="4712")
    write(ds, tmp_path / "in" / "a.dcm")
    (tmp_path / "key").write_bytes(SECRET)
    run([tmp_path / "in"], tmp_path / "out", secret_file=tmp_path / "key")
    assert verify_release(tmp_path / "out", tmp_path / "out.audit") == []
    (target,) = (tmp_path / "out").rglob("*.dcm")
    tampered = pydicom.dcmread(target)
    tampered.Manufacturer = "SCANNER 4712"
    tampered.save_as(target)
    found = verify_release(tmp_path / "out", tmp_path / "out.audit")
    assert [f.message for f in found] == ["an original Patient ID from the audit occurs in the file"]


# ---- property: short identifiers never quarantine; a distinctive one always does ----------------

#: words that occur inside values medcloak writes (ANONYMIZED, dummy dates, UIDs) or that equal
#: coded values of CT_small, and everyday names: none is a word of what CT_small keeps as text
COMMON = ["Anon", "Mize", "Nymi", "Onym", "Perfusion", "Original", "Primary", "Axial", "Helical",
          "Mode", "Iso", "Head", "Chest", "Brain", "Smith", "John", "Doe", "Jane", "Lee", "Test",
          "Scan", "Study", "Series", "Image", "Anonymous", "Unknown", "Ffs", "Monochrome2"]
four_digits = st.integers(0, 9999).map(lambda n: f"{n:04d}")
short = st.one_of(four_digits, st.sampled_from(COMMON), st.sampled_from(["0000", "0101", "1900", "2500", "0001"]))


def test_common_words_are_not_words_of_ct_small_kept_text(tmp_path):
    """The property below relies on it: CT_small's kept text holds none of the common words."""
    fields = read(release(Path(get_testdata_file("CT_small.dcm"))).data)
    kept = {w for kind, _vr, text in fields.values if kind == TEXT for w in tokens(text)}
    assert not kept & {w.lower() for w in COMMON}
    assert {"medical", "standard"} <= kept  # the test reads what it means to


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pid=short, family=short, given_name=short, physician=short, institution=short,
       secret=st.binary(min_size=16, max_size=32),
       options=st.sampled_from([[], ["retain-long-modified-dates", "retain-safe-private"], ["retain-uids"]]))
def test_short_identifiers_never_quarantine_a_clean_object(tmp_path_factory, pid, family, given_name,
                                                           physician, institution, secret, options):
    folder = tmp_path_factory.mktemp("clean")
    path = ct_small(folder, PatientID=pid, PatientName=f"{family}^{given_name}",
                    ReferringPhysicianName=physician, InstitutionName=institution,
                    OtherPatientIDs=pid, AccessionNumber=pid + pid)
    release(path, load_profile(None, options), secret=secret)


PLACES = ["Manufacturer", "ConvolutionKernel", "StudyDescription (kept by the site)", "private (safe list)",
          "sequence item", "ImageType", "ICC profile (OB)", "Manufacturer, in other case and brackets"]
#: distinctive: letters and digits, eight characters or more, four of them different
distinctive = st.builds(
    lambda a, d, b: a + d + b,
    st.text(string.ascii_uppercase, min_size=3, max_size=4),
    st.text(string.digits, min_size=5, max_size=6),
    st.text(string.ascii_uppercase, min_size=0, max_size=2),
).filter(lambda s: len(set(s)) >= 4)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ident=distinctive, place=st.sampled_from(PLACES), lower=st.booleans(), as_name=st.booleans(),
       secret=st.binary(min_size=16, max_size=32))
def test_a_distinctive_identifier_planted_anywhere_quarantines(tmp_path_factory, ident, place, lower,
                                                               as_name, secret):
    folder = tmp_path_factory.mktemp("leak")
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    if as_name:
        ds.PatientName = f"{ident}^Harriet"
    else:
        ds.PatientID = ident
    copy = ident.lower() if lower else ident
    profile = BASIC
    if place == "Manufacturer":
        ds.Manufacturer = f"GE {copy} SYSTEMS"
    elif place == "ConvolutionKernel":
        ds.ConvolutionKernel = copy
    elif place.startswith("StudyDescription"):
        ds.StudyDescription = f"CT HEAD ({copy})"
        profile = load_profile(overrides={"attributes": {"StudyDescription": "keep"}})
    elif place.startswith("private"):
        ds.add(DataElement(0x00190010, "LO", "GEMS_ACQU_01"))
        ds.add(DataElement(0x0019109E, "LO", f"SEQ {copy}"))
        profile = load_profile(None, ["retain-safe-private"])
    elif place == "sequence item":
        item = Dataset()
        item.LUTExplanation = f"window for {copy}"
        item.WindowCenter = "40"
        item.WindowWidth = "400"
        ds.VOILUTSequence = Sequence([item])
    elif place == "ImageType":
        ds.ImageType = ["ORIGINAL", "PRIMARY", ident]
    elif place.startswith("ICC"):
        ds.add(DataElement(0x00282000, "OB", b"\x00\x00\x02\x0cacsp" + copy.encode() + b"\x00\x11"))
    else:
        ds.Manufacturer = f"(by:{copy.title()})"
    path = write(ds, folder / "leak.dcm")
    with cleaning_bypassed(), pytest.raises(VerificationError, match="residual identifier from (PatientID|PatientName)"):
        release(path, profile, secret=secret)


# ---- the third-party set: no over-cautious quarantine, and verify agrees ------------------------


def gather_third_party(dest: Path) -> dict[str, int]:
    """Copies (never links) of pydicom's and pydicom-data's files, nibabel's DICOM test data and
    the shared WSI set's DICOM files, if present."""
    import data_store

    counts = {}
    shutil.copytree(pydicom_test_files(), dest / "pydicom")
    shutil.copytree(Path(data_store.__file__).parent / "data", dest / "pydicom-data")
    counts["pydicom"] = sum(p.is_file() for p in (dest / "pydicom").rglob("*"))
    counts["pydicom-data"] = sum(p.is_file() for p in (dest / "pydicom-data").rglob("*"))
    import nibabel

    nib_root = Path(nibabel.__file__).parent
    nib = nibabel_dicom_files()
    for path in nib:
        copy_plain(path, dest / "nibabel" / path.relative_to(nib_root))
    counts["nibabel"] = len(nib)
    if WSI.is_dir():
        wsi = [p for p in sorted(WSI.rglob("*")) if p.is_file() and is_part10(p)]
        for path in wsi:
            copy_plain(path, dest / "wsi" / path.relative_to(WSI))
        counts["wsi"] = len(wsi)
    return counts


@pytest.mark.parametrize("options", [[], OPTIONS], ids=["basic", "options"])
def test_third_party_set_no_residual_quarantine_and_verify_clean(tmp_path, capsys, options):
    from medcloak.cli import main

    counts = gather_third_party(tmp_path / "in")
    assert counts["pydicom"] > 100 and counts["pydicom-data"] > 50 and counts["nibabel"] >= 5
    if WSI.is_dir():
        assert counts["wsi"] >= 2
    key = tmp_path / "key"
    key.write_bytes(b"third-party-secret-0123456789")
    os.chmod(key, 0o600)
    args = ["run", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--secret-file", str(key), "--workers", "1"]
    for option in options:
        args += ["--option", option]
    main(args)
    rows = [json.loads(line) for line in (tmp_path / "out.audit" / "manifest.jsonl").read_text().splitlines()]
    # the others are quarantined for what they are (truncated, incomplete, burned-in text that no
    # template handles, a syntax that cannot be cleaned), never by an internal error
    assert sum(r["status"] == "ok" for r in rows) >= 65 + counts.get("wsi", 0) // 2
    assert not [r["reason"] for r in rows if "internal error" in r["reason"]]
    flagged = [Path(r["input"]).relative_to(tmp_path / "in").as_posix() for r in rows
               if "residual" in r["reason"]]
    assert flagged == []
    capsys.readouterr()
    code = main(["verify", str(tmp_path / "out"), "--audit", str(tmp_path / "out.audit")])
    out = capsys.readouterr().out
    assert code == 0 and out.strip().endswith("0 errors"), out
