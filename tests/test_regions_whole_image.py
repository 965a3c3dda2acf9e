"""An ``outside_ultrasound_regions`` template on an ultrasound image with no Sequence of Ultrasound
Regions blanks the whole image: released, but never without a word (a warning in the run's log
and an action in the manifest). With regions, only the outside is blanked and nothing is said."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest

from medcloak.engine import run
from medcloak.rules.regions import blanks_whole_image, parse_regions

TEMPLATE = '[[region]]\nname = "outside"\nwhere = { Modality = "US" }\noutside_ultrasound_regions = true\n'
BLANKED = "pixel-whole-image-blanked"


def _testdata(name: str) -> Path:
    from pydicom.data import get_testdata_file

    path = get_testdata_file(name)  # pydicom's or pydicom-data's (a test dependency)
    if path is None:
        pytest.skip(f"{name} is not available")
    return Path(path)


def _run(tmp_path: Path, src: Path, secret_file: Path):  # type: ignore[no-untyped-def]
    (tmp_path / "in").mkdir()
    shutil.copy(src, tmp_path / "in" / "image.dcm")
    (tmp_path / "regions.toml").write_text(TEMPLATE)
    summary = run([tmp_path / "in"], tmp_path / "out", secret_file=secret_file, options=["clean-pixel-data"],
                  regions=tmp_path / "regions.toml")
    (line,) = [json.loads(t) for t in (tmp_path / "out.audit" / "manifest.jsonl").read_text().splitlines()]
    return summary, line


@pytest.mark.parametrize("name", ["US1_UNCR.dcm", "US1_J2KR.dcm"])
def test_no_regions_blanks_whole_image_and_says_so(tmp_path, secret_file, caplog, name) -> None:  # type: ignore[no-untyped-def]
    src = _testdata(name)
    assert "SequenceOfUltrasoundRegions" not in pydicom.dcmread(src, stop_before_pixels=True)
    with caplog.at_level(logging.WARNING, logger="medcloak"):
        summary, line = _run(tmp_path, src, secret_file)
    assert summary.ok == 1 and line["status"] == "ok"
    (path,) = (tmp_path / "out").rglob("*.dcm")
    out = pydicom.dcmread(path)
    assert (out.pixel_array == 0).all()  # black as RGB (0, 0, 0), JPEG 2000 YBR_RCT included
    assert line["actions"][BLANKED] == 1 and line["actions"]["pixel-regions-redacted"] == 1
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "whole image" in r.getMessage()]
    assert said and line["id"] in said[0] and "SequenceOfUltrasoundRegions" in said[0]
    assert str(tmp_path) not in said[0] and name not in said[0]  # the pseudonymous id only, no path
    assert any("whole image" in t and line["id"] in t for t in (tmp_path / "out.audit" / "run.log").read_text().splitlines())


@pytest.fixture
def no_text(monkeypatch):  # type: ignore[no-untyped-def]
    """A detector that finds no text: what a template alone does (the frames of an ultrasound are
    scanned under the option too, see test_burned_in_run.py)."""
    from test_burned_in_run import install_stand_in

    install_stand_in(monkeypatch).detect_text = lambda frame, **_: []


def test_with_regions_only_outside_and_no_record(tmp_path, secret_file, caplog, no_text) -> None:  # type: ignore[no-untyped-def]
    src = _testdata("examples_ybr_color.dcm")  # a real Sequence of Ultrasound Regions
    ds = pydicom.dcmread(src)
    (region,) = ds.SequenceOfUltrasoundRegions
    x0, y0 = int(region.RegionLocationMinX0), int(region.RegionLocationMinY0)
    x1, y1 = int(region.RegionLocationMaxX1) + 1, int(region.RegionLocationMaxY1) + 1
    with caplog.at_level(logging.WARNING, logger="medcloak"):
        summary, line = _run(tmp_path, src, secret_file)
    assert summary.ok == 1
    assert BLANKED not in line["actions"] and line["actions"]["pixel-regions-redacted"] == 1
    assert not [r for r in caplog.records if "whole image" in r.getMessage()]
    (path,) = (tmp_path / "out").rglob("*.dcm")
    out, orig = pydicom.dcmread(path).pixel_array, ds.pixel_array
    keep = np.zeros(out.shape[1:3], bool)
    keep[y0:y1, x0:x1] = True
    assert (out[:, ~keep] <= 2).all()  # blanked outside (JPEG: black within rounding)
    # inside, away from the MCU-rounded edge (16x8 for 4:2:2), every pixel is the original
    assert np.array_equal(out[:, y0 + 9 : y1 - 9, x0 + 17 : x1 - 17], orig[:, y0 + 9 : y1 - 9, x0 + 17 : x1 - 17])


def test_blanks_whole_image_predicate() -> None:
    """Unusable regions (incomplete, outside the image) protect nothing: the whole image goes."""
    from pydicom.dataset import Dataset

    templates = parse_regions({"region": [{"where": {"Modality": "US"}, "outside_ultrasound_regions": True}]})
    boxes_only = parse_regions({"region": [{"where": {"Modality": "US"}, "boxes": [[0, 0, 4, 4]]}]})
    ds = Dataset()
    ds.Modality, ds.Rows, ds.Columns = "US", 100, 200
    assert blanks_whole_image(ds, templates) and not blanks_whole_image(ds, boxes_only)
    incomplete, outside, good = Dataset(), Dataset(), Dataset()
    incomplete.RegionLocationMinX0 = 0
    outside.RegionLocationMinX0, outside.RegionLocationMinY0 = 300, 0
    outside.RegionLocationMaxX1, outside.RegionLocationMaxY1 = 399, 99
    ds.SequenceOfUltrasoundRegions = [incomplete, outside]
    assert blanks_whole_image(ds, templates)
    good.RegionLocationMinX0, good.RegionLocationMinY0 = 10, 10
    good.RegionLocationMaxX1, good.RegionLocationMaxY1 = 99, 49
    ds.SequenceOfUltrasoundRegions.append(good)
    assert not blanks_whole_image(ds, templates)
    ds.Modality = "CT"
    assert not blanks_whole_image(ds, templates)


def test_command_warns_on_the_terminal(tmp_path, secret_file, capsys) -> None:  # type: ignore[no-untyped-def]
    """The command's user sees it without opening the log: counted in the summary, one warning line
    on standard error (no path, no value); an image with regions gives none."""
    from medcloak.cli import main

    (tmp_path / "in").mkdir()
    shutil.copy(_testdata("US1_UNCR.dcm"), tmp_path / "in" / "a.dcm")
    shutil.copy(_testdata("examples_ybr_color.dcm"), tmp_path / "in" / "b.dcm")
    (tmp_path / "regions.toml").write_text(TEMPLATE)
    code = main(["run", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--secret-file", str(secret_file),
                 "--option", "clean-pixel-data", "--regions", str(tmp_path / "regions.toml"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 0
    (warning,) = [t for t in err.splitlines() if "blanked whole" in t]
    assert warning.startswith("medcloak: warning: 1 image(s) blanked whole") and str(tmp_path) not in warning


@pytest.mark.parametrize("body, message", [(None, "region template file cannot be read"),
                                           ("[[region]\n", "region template file is not valid TOML"),
                                           (b"\xff\xfe[[region]]", "region template file is not valid TOML")])
def test_unreadable_region_files_are_refused(tmp_path, body, message) -> None:  # type: ignore[no-untyped-def]
    """A region file that is missing, broken TOML or not UTF-8 is a profile error naming the file's
    role (never a traceback, never its contents)."""
    from medcloak.errors import ProfileError
    from medcloak.rules.regions import load_regions

    path = tmp_path / "regions.toml"
    if isinstance(body, str):
        path.write_text(body)
    elif body is not None:
        path.write_bytes(body)
    with pytest.raises(ProfileError, match=message):
        load_regions(path)


def test_an_object_redacted_by_a_template_alone_gets_its_review_picture(tmp_path, secret_file) -> None:  # type: ignore[no-untyped-def]
    """A CT (not scanned for text) that a region template redacts gets the same review picture as
    a scanned object: its first frame before redaction, the template's box outlined in red (a
    128 x 128 frame is doubled)."""
    from PIL import Image

    (tmp_path / "in").mkdir()
    shutil.copy(_testdata("CT_small.dcm"), tmp_path / "in" / "ct.dcm")
    (tmp_path / "regions.toml").write_text('[[region]]\nname = "banner"\nwhere = { Modality = "CT" }\nboxes = [[10, 20, 60, 40]]\n')
    summary = run([tmp_path / "in"], tmp_path / "out", secret_file=secret_file, options=["clean-pixel-data"],
                  regions=tmp_path / "regions.toml")
    assert summary.ok == 1
    (line,) = [json.loads(t) for t in (tmp_path / "out.audit" / "manifest.jsonl").read_text().splitlines()]
    assert line["actions"]["pixel-regions-redacted"] == 1 and "pixel-frames-scanned" not in line["actions"]
    picture = tmp_path / "out.audit" / "qc" / f"{line['id']}-text.png"
    with Image.open(picture) as img:
        rgb = np.asarray(img.convert("RGB"))
    assert rgb.shape == (256, 256, 3)
    red = (rgb[..., 0] == 255) & (rgb[..., 1] == 0) & (rgb[..., 2] == 0)
    ys, xs = np.nonzero(red)
    assert (xs.min(), ys.min(), xs.max(), ys.max()) == (19, 39, 120, 80)  # the box x2, just outside it
