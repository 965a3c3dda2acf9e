"""The review record each handler writes into the manifest line of a released object (key
``review``, see :mod:`medcloak.review_record`), checked against the released files read back
independently: the action per attribute, the kept text both ways, no original identifying value,
the quasi-identifiers as released, the pixel changes with their pictures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import pydicom
import pytest
from conftest import UID_ROOT, base_dataset, write
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from medcloak.engine import run

TEXT_VRS = {"LO", "SH", "LT", "ST", "UT", "UC", "PN"}
#: what the planted object carries that must not reach the release or the record
ORIGINALS = ("brightwater", "eleanor", "qx7781234", "quillon", "20210304", "1961")
OPTIONS = ["clean-descriptors", "clean-structured-content", "retain-safe-private", "retain-long-modified-dates",
           "retain-patient-characteristics"]


def manifest(out: Path) -> list[dict[str, Any]]:
    audit = out.parent / (out.name + ".audit")
    return [json.loads(t) for t in (audit / "manifest.jsonl").read_text().splitlines()]


def planted(folder: Path) -> Path:
    """A CT object with a name, an ID, an institution, descriptions naming the patient, a code
    sequence, a content item naming the patient, and private blocks (a safe GEMS LO naming the
    patient, a safe Philips SH)."""
    ds = base_dataset(UID_ROOT + "11", UID_ROOT + "12", UID_ROOT + "13", patient="QX7781234")
    ds.PatientName = "Brightwater^Eleanor"
    ds.PatientBirthDate = "19610417"
    ds.PatientSex, ds.PatientAge, ds.PatientWeight = "F", "063Y", "71.5"
    ds.StudyDate = "20210304"
    ds.InstitutionName = "Saint Quillon Hospital"
    ds.StudyDescription = "CT CHEST for Eleanor BRIGHTWATER id QX7781234"
    ds.SeriesDescription = "AXIAL 5MM"
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "77477000", "SCT", "Computerized axial tomography"
    ds.ProcedureCodeSequence = Sequence([code])
    item = Dataset()
    item.ValueType, item.RelationshipType = "TEXT", "CONTAINS"
    item.TextValue = "Findings for Brightwater: no nodule."
    ds.ContentSequence = Sequence([item])
    ds.add(DataElement(0x00190010, "LO", "GEMS_ACQU_01"))
    ds.add(DataElement(0x0019109E, "LO", "FSE by Brightwater"))  # E.3.10: Internal Pulse Sequence Name
    ds.add(DataElement(0x20010010, "LO", "Philips Imaging DD 001"))
    ds.add(DataElement(0x2001106E, "SH", "MRSERIES"))  # E.3.10: Series Type
    return write(ds, folder / "a.dcm")


def _name(ds: Dataset, elem: DataElement, prefix: str) -> str:
    """The record's name of an element, made here from the DICOM standard's conventions."""
    tag = elem.tag
    if tag.is_private:
        creator = ds.get((tag.group, tag.element >> 8))
        return prefix + f"({tag.group:04X},xx{tag.element & 0xFF:02X}) {str(creator.value).strip()}"
    return prefix + elem.keyword


def released_elements(ds: Dataset, prefix: str = "") -> Iterator[tuple[str, DataElement]]:
    """(name, element) of every element of a released data set, at every depth, private
    creators left out (their value names their block)."""
    for elem in ds:
        if elem.tag.is_private_creator:
            continue
        name = _name(ds, elem, prefix)
        yield name, elem
        if elem.VR == "SQ":
            for item in elem.value:
                yield from released_elements(item, name + ">")


def _text(elem: DataElement) -> list[str]:
    value = elem.value
    if value is None or value == "":
        return []
    values = list(value) if isinstance(value, (list, pydicom.multival.MultiValue)) else [value]
    return [str(v).strip() for v in values if str(v).strip()]


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], Dataset]:
    from conftest import SECRET

    tmp = tmp_path_factory.mktemp("records")
    secret = tmp / "secret.key"
    secret.write_bytes(SECRET)
    secret.chmod(0o600)
    planted(tmp / "in")
    summary = run([tmp / "in"], tmp / "out", secret_file=secret, options=OPTIONS)
    assert summary.ok == 1
    (line,) = manifest(tmp / "out")
    (path,) = (tmp / "out").rglob("*.dcm")
    return tmp / "out", line, pydicom.dcmread(path)


def test_dicom_actions_per_attribute(release) -> None:  # type: ignore[no-untyped-def]
    _out, line, _ds = release
    changed = line["review"]["changed"]
    expected = {
        "PatientName": "replaced", "PatientID": "replaced", "StudyInstanceUID": "replaced",
        "InstitutionName": "replaced", "PatientBirthDate": "emptied", "AccessionNumber": "emptied",
        "OtherPatientIDsSequence": "removed", "StudyDate": "shifted", "StudyTime": "shifted",
        "StudyDescription": "cleaned", "ContentSequence>TextValue": "cleaned",
        "(0019,xx9E) GEMS_ACQU_01": "cleaned", "DeidentificationMethod": "replaced",
    }
    assert {k: changed.get(k) for k in expected} == expected
    kept = set(line["review"]["kept"])
    assert {"SeriesDescription", "ProcedureCodeSequence>CodeMeaning", "(2001,xx6E) Philips Imaging DD 001",
            "PatientSex", "Modality"} <= kept
    assert not kept & set(changed)


def test_dicom_text_is_the_released_text_both_ways(release) -> None:  # type: ignore[no-untyped-def]
    _out, line, ds = release
    review = line["review"]
    replaced = {k for k, v in review["changed"].items() if v == "replaced"}
    in_release = {
        (name, value)
        for name, elem in released_elements(ds)
        if elem.VR in TEXT_VRS and name not in replaced and not any(name.startswith(r + ">") for r in replaced)
        for value in _text(elem)
    }
    in_record = {(name, value) for name, values in review["text"].items() for value in values}
    assert in_record == in_release
    text = review["text"]
    assert text["StudyDescription"] == [ds.StudyDescription] and text["StudyDescription"][0].startswith("CT CHEST for")
    assert text["ProcedureCodeSequence>CodeMeaning"] == ["Computerized axial tomography"]
    assert text["ContentSequence>TextValue"] == [ds.ContentSequence[0].TextValue]
    assert text["(2001,xx6E) Philips Imaging DD 001"] == ["MRSERIES"]
    assert text["(0019,xx9E) GEMS_ACQU_01"] == [ds[0x0019109E].value]
    # values medcloak wrote itself are no text to review
    assert "PatientName" not in text and "PatientID" not in text and "DeidentificationMethod" not in text
    # every present attribute is kept or changed; every kept one is present
    names = {name for name, _ in released_elements(ds)}
    assert set(review["kept"]) <= names
    assert names <= set(review["kept"]) | set(review["changed"]) | {n for n in names if any(
        n.startswith(r + ">") for r in replaced)}


def test_dicom_record_holds_no_original_value(release) -> None:  # type: ignore[no-untyped-def]
    _out, line, _ds = release
    dumped = json.dumps(line["review"]).lower()
    for original in ORIGINALS:
        assert original not in dumped


def test_dicom_quasi_identifiers_as_released(release) -> None:  # type: ignore[no-untyped-def]
    _out, line, ds = release
    review = line["review"]
    assert review["qi"] == {
        "PatientSex": ds.PatientSex, "PatientAge": ds.PatientAge, "PatientWeight": str(ds.PatientWeight),
        "Manufacturer": ds.Manufacturer, "ManufacturerModelName": ds.ManufacturerModelName,
        "StudyYear": ds.StudyDate[:4],
    }
    assert review["qi"]["StudyYear"] != "2021"  # shifted
    (relpath,) = line["outputs"]
    assert (review["patient"], review["study"], review["series"]) == tuple(relpath.split("/")[:3])
    assert review["modality"] == "CT" and review["format"] == "dicom"
    assert "pixels" not in review


def test_dicom_no_year_when_dates_are_not_kept(tmp_path, secret_file) -> None:  # type: ignore[no-untyped-def]
    planted(tmp_path / "in")
    assert run([tmp_path / "in"], tmp_path / "out", secret_file=secret_file).ok == 1
    (line,) = manifest(tmp_path / "out")
    review = line["review"]
    assert "StudyYear" not in review.get("qi", {})
    assert review["changed"]["StudyDate"] == "emptied" and review["changed"]["StudyDescription"] == "removed"
    assert review["changed"]["(0019,xx..) GEMS_ACQU_01"] == "removed"  # a removed block, by name
    assert "PatientSex" not in review.get("qi", {})  # emptied by the basic profile
    dumped = json.dumps(review).lower()
    for original in ORIGINALS:
        assert original not in dumped


def test_dicom_burned_in_text_boxes_and_picture(tmp_path, secret_file, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import numpy as np
    from test_burned_in_run import LINES, MAGENTA, _stand_in, install_stand_in, us_with_text

    from medcloak.pixels.burned_in import pad

    install_stand_in(monkeypatch)
    (tmp_path / "in").mkdir()
    us_with_text(tmp_path / "in" / "us.dcm", colour=MAGENTA)
    assert run([tmp_path / "in"], tmp_path / "out", secret_file=secret_file, options=["clean-pixel-data"]).ok == 1
    (line,) = manifest(tmp_path / "out")
    pixels = line["review"]["pixels"]
    assert pixels["change"] == "text-redacted" and pixels["frames"] == 30
    decoded = pydicom.dcmread(tmp_path / "in" / "us.dcm").pixel_array
    expected = sorted([i, *box] for i in LINES for box in pad(_stand_in(np.asarray(decoded[i])), 320, 240))
    assert sorted(pixels["boxes"]) == expected
    assert pixels["picture"] == f"qc/{line['id']}-text.png"
    assert (tmp_path / "out.audit" / pixels["picture"]).exists()
    assert line["review"]["changed"]["PixelData"] == "cleaned"
    assert "PixelData" not in line["review"]["kept"]


def test_dicom_text_both_ways_on_real_files(tmp_path, secret_file) -> None:  # type: ignore[no-untyped-def]
    """pydicom's test files, and its character-set files' names planted as Series Description in
    objects of their character set (Japanese, Korean, Greek, Hebrew, Arabic, Russian...): every
    text value of the record is in the release as pydicom reads it, and every released text value
    of an attribute medcloak did not replace is in the record."""
    import shutil
    import warnings

    from pydicom.data import get_charset_files, get_testdata_file

    (tmp_path / "in").mkdir()
    for i, f in enumerate(get_charset_files("chr*.dcm")):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            source = pydicom.dcmread(f, force=True)
            if "PatientName" not in source or "SpecificCharacterSet" not in source:
                continue
            ds = base_dataset(f"{UID_ROOT}9{i}", f"{UID_ROOT}9{i}.1", f"{UID_ROOT}9{i}.2")
            ds.SpecificCharacterSet = source.SpecificCharacterSet
            ds.SeriesDescription = str(source.PatientName)[:64]  # cleaned, so decoded by the walk
            code = Dataset()  # a code is kept as it is, never decoded by the walk
            code.CodeValue, code.CodingSchemeDesignator = "1", "99LOCAL"
            code.CodeMeaning = str(source.PatientName)[:64]
            ds.ProcedureCodeSequence = Sequence([code])
            write(ds, tmp_path / "in" / f"c{i:02d}.dcm")
    for i, name in enumerate(("CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "rtstruct.dcm")):
        shutil.copy(get_testdata_file(name), tmp_path / "in" / f"t{i:02d}.dcm")
    run([tmp_path / "in"], tmp_path / "out", secret_file=secret_file, options=["clean-descriptors"])
    lines = [line for line in manifest(tmp_path / "out") if line["status"] == "ok"]
    assert len(lines) >= 15
    multi = coded = 0
    for line in lines:
        (relpath,) = line["outputs"]
        ds = pydicom.dcmread(tmp_path / "out" / relpath)
        review = line["review"]
        replaced = {k for k, v in review.get("changed", {}).items() if v == "replaced"}
        values = [(name, value) for name, elem in released_elements(ds) if elem.VR in TEXT_VRS
                  for value in _text(elem)]
        in_record = {(name, value) for name, vs in review.get("text", {}).items() for value in vs}
        assert in_record <= set(values), relpath
        assert {(n, v) for n, v in values if n not in replaced and not any(
            n.startswith(r + ">") for r in replaced)} <= in_record, relpath
        multi += any(not value.isascii() for _, value in in_record)
        coded += any(not value.isascii() for name, value in in_record if name.endswith(">CodeMeaning"))
    assert multi >= 8  # text of other character sets was read as pydicom reads it
    assert coded >= 8


# ---- the other handlers ---------------------------------------------------------------------------


def test_volume_record_defaced_with_its_qc_picture(tmp_path, secret_file) -> None:  # type: ignore[no-untyped-def]
    import numpy as np
    from test_deface import _write, load

    data, affine = load("robex_atlas.nii.gz")
    src = tmp_path / "in" / "sub-Doe" / "anat"
    src.mkdir(parents=True)
    _write(src / "sub-Doe_T1w.nii.gz", data.astype(np.int16), affine)  # descrip "Doe^John 1970"
    (src / "sub-Doe_T1w.json").write_text(json.dumps({
        "Modality": "MR", "PatientName": "Doe", "InstitutionName": "Saint Quillon", "Manufacturer": "Siemens",
        "PulseSequenceName": "tfl3d1", "EchoTime": 0.003}))
    assert run([tmp_path / "in"], tmp_path / "out", secret_file=secret_file).ok == 1
    (line,) = [row for row in manifest(tmp_path / "out") if row["status"] == "ok"]
    review = line["review"]
    assert review["format"] == "volume" and review["modality"] == "MR"
    assert review["pixels"]["change"] == "defaced"
    assert (tmp_path / "out.audit" / review["pixels"]["picture"]).is_file()
    assert review["changed"] == {"descrip": "emptied", "aux_file": "emptied", "intent_name": "emptied",
                                 "extensions": "removed", "PatientName": "removed", "InstitutionName": "removed"}
    sidecar = json.loads((tmp_path / "out" / next(o for o in line["outputs"] if o.endswith(".json"))).read_text())
    assert review["text"] == {k: [v] for k, v in sidecar.items() if isinstance(v, str)}
    assert review["qi"] == {"Manufacturer": "Siemens"}
    dumped = json.dumps(review).lower()
    assert "doe" not in dumped and "quillon" not in dumped and "1970" not in dumped


def test_photo_record_boxes_and_picture(tmp_path, secret_file, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import io

    import numpy as np
    from PIL import Image
    from test_burned_in_run import MAGENTA, _draw, _stand_in, install_stand_in

    from medcloak.pixels.burned_in import pad

    install_stand_in(monkeypatch)
    rng = np.random.default_rng(3)
    y, x = np.mgrid[0:200, 0:256]
    base = np.stack([(x + y) % 256, 138 + (2 * x) % 110, (255 - y) % 256], axis=2).astype(np.int16)
    photo = np.clip(base + rng.integers(-8, 8, base.shape), 0, 255).astype(np.uint8)
    drawn, _mask = _draw(photo, [(12, 10, "JANE ROE 1970"), (150, 170, "ID 4455")], MAGENTA)
    buf = io.BytesIO()
    Image.fromarray(drawn).save(buf, format="PNG", pnginfo=None)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "roe.png").write_bytes(buf.getvalue())
    assert run([tmp_path / "in"], tmp_path / "out", secret_file=secret_file, options=["clean-pixel-data"]).ok == 1
    (line,) = manifest(tmp_path / "out")
    review = line["review"]
    assert review["format"] == "photo" and review["series"] in line["outputs"][0]
    expected = sorted([0, *box] for box in pad(_stand_in(drawn), 256, 200))
    assert review["pixels"]["change"] == "text-redacted" and sorted(review["pixels"]["boxes"]) == expected
    assert (tmp_path / "out.audit" / review["pixels"]["picture"]).is_file()
    assert review["pixels"]["picture"] == f"qc/{line['id']}-text.png"


def test_slide_record_label_removed_and_kept_text(tmp_path, secret_file) -> None:  # type: ignore[no-untyped-def]
    import shutil

    import tifffile

    sample = Path(__file__).parent.parent / "data_samples" / "wsi" / "CMU-1-Small-Region.svs"
    (tmp_path / "in").mkdir()
    shutil.copy(sample, tmp_path / "in" / "slide.svs")
    assert run([tmp_path / "in"], tmp_path / "out", secret_file=secret_file).ok == 1
    (line,) = manifest(tmp_path / "out")
    review = line["review"]
    assert review["format"] == "slide" and review["modality"] == "SM"
    with tifffile.TiffFile(tmp_path / "out" / line["outputs"][0]) as tif:
        descriptions = {page.description for page in tif.pages}
        with tifffile.TiffFile(sample) as original:
            removed = len(original.pages) - len(tif.pages)
    assert removed > 0 and review["changed"].get("label") == "removed"
    assert review["pixels"] == {"change": "label-removed"}
    fields = {p.strip() for d in descriptions for line_ in d.splitlines() for p in line_.split("|") if p.strip()}
    assert set(review["text"]["ImageDescription"]) == fields


def test_bids_records_hold_released_values_only(tmp_path, secret_file) -> None:  # type: ignore[no-untyped-def]
    import shutil

    sample = Path(__file__).parent.parent / "data_samples" / "bids"
    shutil.copytree(sample, tmp_path / "in")
    run([tmp_path / "in"], tmp_path / "out", secret_file=secret_file)
    lines = [row for row in manifest(tmp_path / "out") if row["status"] == "ok"]
    assert lines
    for line in lines:
        review = line["review"]
        dumped = json.dumps(review)
        assert "NF00482913" not in dumped and "NF00777120" not in dumped  # original subject labels
        assert review["format"] == "bids"
        first = line["outputs"][0]
        assert review["series"] == first.rsplit("/", 1)[0] and review["study"] == first.split("/")[1]
        if "/sub-" in first:
            assert review["patient"] == next(p for p in first.split("/") if p.startswith("sub-"))
        for out in line["outputs"]:
            if out.endswith(".json"):
                doc = json.loads((tmp_path / "out" / out).read_text())
                strings = {v for _, v in _json_strings(doc)}
                assert {v for vs in review.get("text", {}).values() for v in vs} == strings
    anat = [row["review"] for row in lines if row["outputs"][0].endswith("T1w.nii.gz")]
    assert anat and all(r["pixels"]["change"] == "defaced" and r["modality"] == "MR" for r in anat)


def _json_strings(doc: Any, key: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _json_strings(v, k)
    elif isinstance(doc, list):
        for v in doc:
            yield from _json_strings(v, key)
    elif isinstance(doc, str) and doc.strip():
        yield key, doc.strip()


def test_dicom_series_defaced_slices(tmp_path, secret_file) -> None:  # type: ignore[no-untyped-def]
    """A head MR series defaced as a volume: the slices whose pixels changed say ``defaced`` (one
    of them naming the series' QC picture), the others no pixel change."""
    import numpy as np
    from test_deface import _mr_series, load

    data, affine = load("robex_atlas.nii.gz")
    stored, _datasets = _mr_series(tmp_path / "in", data, affine)
    assert run([tmp_path / "in"], tmp_path / "out", secret_file=secret_file,
               options=["clean-recognizable-visual-features"]).ok == stored.shape[2]
    defaced = untouched = 0
    pictures = []
    for line in manifest(tmp_path / "out"):
        out = pydicom.dcmread(tmp_path / "out" / line["outputs"][0])
        k = int(out.InstanceNumber) - 1
        changed = not np.array_equal(out.pixel_array, stored[..., k])
        review = line["review"]
        if changed:
            defaced += 1
            pixels = dict(review["pixels"])
            if "picture" in pixels:  # the series' QC picture, named once
                pictures.append(pixels.pop("picture"))
            assert pixels == {"change": "defaced"} and review["changed"]["PixelData"] == "cleaned"
        else:
            untouched += 1
            assert "pixels" not in review and "PixelData" in review["kept"]
        assert review["changed"]["RecognizableVisualFeatures"] == "replaced"
    assert defaced and untouched
    assert len(pictures) == 1 and (tmp_path / "out.audit" / pictures[0]).is_file()


def _template_run(tmp_path: Path, secret_file: Path, name: str) -> dict[str, Any]:
    import shutil

    from pydicom.data import get_testdata_file
    from test_regions_whole_image import TEMPLATE

    (tmp_path / "in").mkdir()
    shutil.copy(get_testdata_file(name), tmp_path / "in" / "image.dcm")
    (tmp_path / "regions.toml").write_text(TEMPLATE)
    assert run([tmp_path / "in"], tmp_path / "out", secret_file=secret_file, options=["clean-pixel-data"],
               regions=tmp_path / "regions.toml").ok == 1
    (line,) = manifest(tmp_path / "out")
    return line["review"]


def test_dicom_image_blanked_by_a_template(tmp_path, secret_file) -> None:  # type: ignore[no-untyped-def]
    review = _template_run(tmp_path, secret_file, "US1_UNCR.dcm")  # no ultrasound regions: all of it
    assert review["pixels"]["change"] == "image-blanked" and review["changed"]["PixelData"] == "cleaned"


def test_dicom_regions_redacted_by_a_template(tmp_path, secret_file, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import tomllib

    from pydicom.data import get_testdata_file
    from test_burned_in_run import install_stand_in

    from test_regions_whole_image import TEMPLATE

    from medcloak.rules.regions import parse_regions, select

    install_stand_in(monkeypatch).detect_text = lambda frame, **_: []  # no text: the template alone
    review = _template_run(tmp_path, secret_file, "examples_ybr_color.dcm")

    boxes, _names, _fill = select(pydicom.dcmread(get_testdata_file("examples_ybr_color.dcm")),
                                  parse_regions(tomllib.loads(TEMPLATE)))
    assert review["pixels"]["change"] == "regions-redacted" and review["pixels"]["frames"] == 30
    assert review["pixels"]["boxes"] == [[0, *box] for box in boxes] and boxes
    # the templates' boxes pictured on the first frame
    assert (tmp_path / "out.audit" / review["pixels"]["picture"]).is_file()


def test_photo_record_names_the_metadata_removed(tmp_path, secret_file) -> None:  # type: ignore[no-untyped-def]
    import io

    import numpy as np
    from PIL import Image, PngImagePlugin

    img = Image.fromarray(np.full((32, 32, 3), 90, np.uint8))
    jpeg, png = io.BytesIO(), io.BytesIO()
    exif = Image.Exif()
    exif[0x013B] = "Jane Roe"  # Artist
    img.save(jpeg, format="JPEG", exif=exif, comment=b"Jane Roe, ward 4")
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "Jane Roe")
    img.save(png, format="PNG", pnginfo=info)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.jpg").write_bytes(jpeg.getvalue())
    (tmp_path / "in" / "b.png").write_bytes(png.getvalue())
    assert run([tmp_path / "in"], tmp_path / "out", secret_file=secret_file).ok == 2
    changed = {line["input"][-5:]: line["review"]["changed"] for line in manifest(tmp_path / "out")}
    assert changed == {"a.jpg": {"APP1 Exif": "removed", "COM": "removed"}, "b.png": {"tEXt": "removed"}}
    assert "roe" not in json.dumps([line["review"] for line in manifest(tmp_path / "out")]).lower()


def test_pixel_change_from_the_manifest_actions() -> None:
    from medcloak.review_record import pixel_change

    # an image blanked whole was redacted too: the blanking is what the curator must see
    assert pixel_change({"pixel-text-boxes-redacted": 3, "pixel-whole-image-blanked": 1}) == "image-blanked"
    assert pixel_change({"pixel-frames-scanned": 4, "pixel-text-boxes-redacted": 2}) == "text-redacted"
    assert pixel_change({"defaced": 1, "header-cleaned": 1}) == "defaced"
    assert pixel_change({"pixel-frames-scanned": 4, "pixel-text-boxes-redacted": 0}) == ""  # scanned, none found


def test_default_quasi_identifiers_follow_the_options() -> None:
    from medcloak.review_record import QUASI_IDENTIFIERS, quasi_identifiers

    plain = quasi_identifiers(["retain-patient-characteristics"])
    assert "PatientAge" in plain and "StudyYear" in plain
    assert not {"Manufacturer", "ManufacturerModelName", "InstitutionName"} & set(plain)
    assert quasi_identifiers(["retain-device-identity", "retain-institution-identity"]) == QUASI_IDENTIFIERS
    assert "InstitutionName" not in quasi_identifiers(["retain-device-identity"])
