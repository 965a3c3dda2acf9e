"""Whole-slide images through ``medcloak run``, as a pathology lab meets it: the real samples of
``data_samples/wsi`` (Aperio SVS, Hamamatsu NDPI, a generic pyramid, a DICOM slide with its label;
see data_samples/SOURCES.md) released in one run, each TIFF-family slide opening in OpenSlide as
its input did, without its label and macro, under a keyed name; ``verify`` passes the release."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from conftest import SECRET

from medcloak.engine import run
from medcloak.verify import verify_release

openslide = pytest.importorskip("openslide")

WSI = Path(__file__).resolve().parents[1] / "data_samples" / "wsi"
SLIDES = ("CMU-1-Small-Region.svs", "openslide-python_small.svs", "openslide-python_boxes.tiff",
          "slideio_test3-DAPI-2-387.ndpi")


@pytest.fixture(scope="module")
def release(tmp_path_factory):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("slides")
    src = root / "Surname_Givenname_case_0042"
    shutil.copytree(WSI, src)
    key = root / "key"
    key.write_bytes(SECRET)
    key.chmod(0o600)
    summary = run([src], root / "out", secret_file=key)
    rows = {Path(e["input"]).relative_to(src).as_posix(): e
            for e in map(json.loads, (root / "out.audit" / "manifest.jsonl").read_text().splitlines())}
    return root, src, summary, rows


def _describe(path: Path) -> dict:
    with openslide.OpenSlide(str(path)) as s:
        return {"vendor": s.properties.get(openslide.PROPERTY_NAME_VENDOR),
                "levels": s.level_dimensions,
                "mpp": (s.properties.get(openslide.PROPERTY_NAME_MPP_X), s.properties.get(openslide.PROPERTY_NAME_MPP_Y)),
                "associated": set(s.associated_images)}


@pytest.mark.parametrize("name", SLIDES)
def test_each_slide_opens_as_its_input_did_without_label_or_macro(release, name) -> None:  # type: ignore[no-untyped-def]
    root, src, _, rows = release
    row = rows[name]
    assert row["status"] == "ok", row
    (output,) = row["outputs"]
    assert output.startswith("slides/") and "Surname" not in output and Path(name).stem not in output
    # the digest the slide's writer took on the way is the file's
    assert hashlib.sha256((root / "out" / output).read_bytes()).hexdigest() == row["digests"][0]
    before, after = _describe(src / name), _describe(root / "out" / output)
    assert (after["vendor"], after["levels"], after["mpp"]) == (before["vendor"], before["levels"], before["mpp"])
    assert not after["associated"] & {"label", "macro"}
    assert after["associated"] <= before["associated"]
    if "label" in before["associated"] or "macro" in before["associated"]:
        assert row["actions"].get("label-removed", 0) + row["actions"].get("macro-removed", 0) >= 1, row


def test_the_dicom_label_is_never_released_and_the_release_verifies(release) -> None:  # type: ignore[no-untyped-def]
    root, _, summary, rows = release
    label = rows["dicom/bpaec/2.dcm"]
    assert label["status"] == "skipped" and "label" in label["reason"] and not label["outputs"]
    assert summary.quarantined == 0
    assert verify_release(root / "out", root / "out.audit") == []
    released = b"".join(p.read_bytes() for p in (root / "out").rglob("*") if p.is_file())
    for text in (b"Surname", b"CMU-1", b"ScanScope ID", b"b414003d-95c6-48b0-9369-8010ed517ba7"):
        assert text not in released, text


@pytest.mark.parametrize("name", SLIDES)
def test_each_slide_opens_in_tiffslide_as_its_input_did(release, name) -> None:  # type: ignore[no-untyped-def]
    """tiffslide (tifffile underneath), the other reader labs use: the same levels, no label or
    macro, where it reads the input at all."""
    tiffslide = pytest.importorskip("tiffslide")
    root, src, _, rows = release
    if name.endswith(".ndpi"):
        pytest.skip("tiffslide reads NDPI metadata only partly (it warns so)")
    try:
        before = tiffslide.TiffSlide(src / name)
    except Exception:  # noqa: BLE001 - a format tiffslide does not read
        pytest.skip(f"tiffslide does not read {name}")
    with before, tiffslide.TiffSlide(root / "out" / rows[name]["outputs"][0]) as after:
        assert after.level_dimensions == before.level_dimensions
        assert after.properties.get("tiffslide.vendor") == before.properties.get("tiffslide.vendor")
        assert not {"label", "macro"} & set(after.associated_images)


@pytest.mark.parametrize(("maker", "name", "vendor"), [("make_ventana", "case.bif", "ventana"),
                                                       ("make_philips", "case.tiff", "philips")])
def test_a_vendor_slide_keeps_its_extension_and_opens_as_before(tmp_path, maker, name, vendor) -> None:  # type: ignore[no-untyped-def]
    """Readers choose by extension too: a released slide keeps its input's (``.bif``, ``.tiff``)
    under its keyed name, and OpenSlide still names its vendor (test_slide_vendors' builds)."""
    import test_slide_vendors

    src = tmp_path / "in" / "Surname_case"
    src.mkdir(parents=True)
    getattr(test_slide_vendors, maker)(src / name)
    key = tmp_path / "key"
    key.write_bytes(SECRET)
    key.chmod(0o600)
    assert run([src], tmp_path / "out", secret_file=key).ok == 1
    (released,) = (tmp_path / "out" / "slides").iterdir()
    assert released.suffix == Path(name).suffix and "case" not in released.name
    before, after = _describe(src / name), _describe(released)
    assert before["vendor"] == after["vendor"] == vendor and after["levels"] == before["levels"]
