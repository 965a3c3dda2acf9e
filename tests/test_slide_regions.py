"""Slide region templates (``[[slide_region]]`` in ``--regions``) under ``--option
clean-pixel-data``, through :func:`medcloak.engine.run`: a matching template's boxes, fractions of
level 0, are the fill on every level and the thumbnail of the released slide (read with
OpenSlide), every pixel outside them is as in a run without templates, the label and macro are
still removed and ``verify`` passes; a template that does not match leaves the released slide
byte-identical to a run without templates; a match on a slide that redaction does not handle
quarantines it with the reason; template files that are wrong are refused before anything runs.

Slides: data_samples/wsi/CMU-1-Small-Region.svs (real Aperio: one level of abbreviated JPEG tiles,
a thumbnail, label and macro); a generic deflate pyramid and a Zstandard one written by tifffile
(:func:`test_slide_redact.make_pyramid`); a Ventana BIF (:func:`test_slide_vendors.make_ventana`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import SECRET

from medcloak.engine import run
from medcloak.errors import ProfileError, UnsupportedInputError, UsageError
from medcloak.rules.regions import (
    SLIDE_VENDORS,
    RegionTemplate,
    SlideRegionTemplate,
    dicom_templates,
    parse_regions,
    select,
    select_slide,
    slide_templates,
)
from medcloak.verify import verify_release

openslide = pytest.importorskip("openslide")
tifffile = pytest.importorskip("tifffile")
pytest.importorskip("imagecodecs")

from test_slide_redact import _check_pixels, _mapped, make_pyramid
from test_slide_vendors import make_ventana

SVS = Path(__file__).resolve().parents[1] / "data_samples" / "wsi" / "CMU-1-Small-Region.svs"
SVS_SIZE = (2220, 2967)
FILL = {"black": 0, "grey": 128, "white": 255}


def _run(tmp_path: Path, slide: Path, regions: str | None, name: str, clean_pixels: bool = True) -> tuple[Path, dict]:
    """Release ``slide`` (copied into a folder of its own) into ``tmp_path/name``; the release
    folder and the slide's manifest line."""
    src = tmp_path / f"{name}-in"
    src.mkdir()
    shutil.copy(slide, src / slide.name)
    key = tmp_path / "key"
    if not key.exists():
        key.write_bytes(SECRET)
        key.chmod(0o600)
    kw: dict = {}
    if regions is not None:
        (tmp_path / f"{name}.toml").write_text(regions)
        kw["regions"] = tmp_path / f"{name}.toml"
    options = ["clean-pixel-data"] if clean_pixels else []
    run([src], tmp_path / name, secret_file=key, options=options, **kw)
    (row,) = [json.loads(line) for line in (tmp_path / f"{name}.audit" / "manifest.jsonl").read_text().splitlines()]
    return tmp_path / name, row


def _released(out: Path, row: dict) -> Path:
    assert row["status"] == "ok", row
    (output,) = row["outputs"]
    return out / output


def _box(fractions: tuple[float, float, float, float], size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The level-0 box of fractions, rounded outward as the templates round it."""
    return SlideRegionTemplate("t", (), (), (), (fractions,)).boxes_for(*size)[0]


def _level(slide, level: int) -> np.ndarray:  # type: ignore[no-untyped-def]
    return np.asarray(slide.read_region((0, 0), level, slide.level_dimensions[level]))


SVS_TEMPLATE = """
[[slide_region]]
name = "sticker"
where = { vendor = "aperio", width = [1000, 2220], height = { min = 2900, max = 3000 } }
boxes = [[0.2, 0.25, 0.45, 0.3]]
fill = "%s"
"""


@pytest.mark.parametrize("fill", ["black", "white"])
def test_svs_box_is_the_fill_on_every_level_and_the_release_verifies(tmp_path: Path, fill: str) -> None:
    plain_out, plain_row = _run(tmp_path, SVS, None, "plain", clean_pixels=False)
    out, row = _run(tmp_path, SVS, SVS_TEMPLATE % fill, "redacted")
    plain, redacted = _released(plain_out, plain_row), _released(out, row)
    assert redacted.name == plain.name  # the same keyed name as without templates
    actions = row["actions"]
    assert actions["pixel-regions-redacted"] == 1 and actions["redact-blocks-redacted"] > 0
    assert actions["label-removed"] == 1 and actions["macro-removed"] == 1
    # the digest the writer took on the way is the file's
    assert hashlib.sha256(redacted.read_bytes()).hexdigest() == row["digests"][0]
    box = _box((0.2, 0.25, 0.45, 0.3), SVS_SIZE)
    with openslide.OpenSlide(str(plain)) as a, openslide.OpenSlide(str(redacted)) as b:
        assert b.properties["openslide.vendor"] == "aperio"
        assert b.level_dimensions == a.level_dimensions and a.dimensions == SVS_SIZE
        assert not set(b.associated_images) & {"label", "macro"}
        for level, size in enumerate(a.level_dimensions):
            _check_pixels(_level(a, level), _level(b, level), _mapped(box, SVS_SIZE, size), FILL[fill], 8, 2)
        thumb_a, thumb_b = np.asarray(a.associated_images["thumbnail"]), np.asarray(b.associated_images["thumbnail"])
        _check_pixels(thumb_a, thumb_b, _mapped(box, SVS_SIZE, thumb_a.shape[1::-1]), FILL[fill], 8, 2)
    assert verify_release(out, tmp_path / "redacted.audit") == []


def test_generic_pyramid_lossless_every_level_exact(tmp_path: Path) -> None:
    slide = tmp_path / "pyramid.tiff"
    make_pyramid(slide, "zlib")
    regions = ('[[slide_region]]\nwhere = { vendor = ["generic"], width = 600, height = 400 }\n'
               'boxes = [[0.1, 0.1, 0.3, 0.5], [0.9, 0.9, 1.0, 1.0]]\nfill = "grey"\n')
    plain_out, plain_row = _run(tmp_path, slide, None, "plain", clean_pixels=False)
    out, row = _run(tmp_path, slide, regions, "redacted")
    assert row["actions"]["redact-tiles-reencoded"] > 0 and row["actions"]["slide-generic"] == 1
    boxes = [_box((0.1, 0.1, 0.3, 0.5), (600, 400)), _box((0.9, 0.9, 1.0, 1.0), (600, 400))]
    with openslide.OpenSlide(str(_released(plain_out, plain_row))) as a, \
            openslide.OpenSlide(str(_released(out, row))) as b:
        assert b.level_dimensions == a.level_dimensions == ((600, 400), (300, 200), (150, 100))
        for level, size in enumerate(a.level_dimensions):
            before, after = _level(a, level), _level(b, level)
            inside = np.zeros(before.shape[:2], bool)
            for box in boxes:
                x0, y0, x1, y1 = _mapped(box, (600, 400), size)
                inside[y0:y1, x0:x1] = True
            assert (after[inside][:, :3] == 128).all()
            assert np.array_equal(after[~inside], before[~inside])
            assert not np.array_equal(after[inside], before[inside])
    assert verify_release(out, tmp_path / "redacted.audit") == []


def test_ndpi_every_level(tmp_path: Path) -> None:
    ndpi = SVS.parent / "slideio_test3-DAPI-2-387.ndpi"
    regions = '[[slide_region]]\nwhere = { vendor = "hamamatsu" }\nboxes = [[0.1, 0.2, 0.4, 0.45]]\nfill = "white"\n'
    plain_out, plain_row = _run(tmp_path, ndpi, None, "plain", clean_pixels=False)
    out, row = _run(tmp_path, ndpi, regions, "redacted")
    assert row["actions"]["pixel-regions-redacted"] == 1 and row["actions"]["macro-removed"] == 1
    with openslide.OpenSlide(str(_released(plain_out, plain_row))) as a, \
            openslide.OpenSlide(str(_released(out, row))) as b:
        assert b.properties["openslide.vendor"] == "hamamatsu" and b.level_dimensions == a.level_dimensions
        assert not set(b.associated_images) & {"label", "macro"}
        box = _box((0.1, 0.2, 0.4, 0.45), a.dimensions)
        for level, size in enumerate(a.level_dimensions):
            _check_pixels(_level(a, level), _level(b, level), _mapped(box, a.dimensions, size), 255, 8, 3)
    assert verify_release(out, tmp_path / "redacted.audit") == []


@pytest.mark.parametrize("where", ['{ vendor = "hamamatsu" }', '{ vendor = "aperio", width = 2221 }',
                                   '{ height = { max = 2966 } }', '{ width = [{ min = 2221 }, 100] }'])
def test_a_template_that_does_not_match_leaves_the_slide_as_without_templates(tmp_path: Path, where: str) -> None:
    regions = f"[[slide_region]]\nwhere = {where}\nboxes = [[0.0, 0.0, 1.0, 1.0]]\n"
    plain_out, plain_row = _run(tmp_path, SVS, None, "plain", clean_pixels=False)
    out, row = _run(tmp_path, SVS, regions, "templated")
    assert _released(out, row).read_bytes() == _released(plain_out, plain_row).read_bytes()
    assert row["actions"] == plain_row["actions"] and row["digests"] == plain_row["digests"]


def test_dicom_templates_alone_leave_slides_as_they_were(tmp_path: Path) -> None:
    regions = '[[region]]\nwhere = { Modality = "US" }\nboxes = [[0, 0, 10, 10]]\n'
    plain_out, plain_row = _run(tmp_path, SVS, None, "plain", clean_pixels=False)
    out, row = _run(tmp_path, SVS, regions, "templated")
    assert _released(out, row).read_bytes() == _released(plain_out, plain_row).read_bytes()


def _nothing_released(out: Path) -> None:
    assert not [p for p in out.rglob("*") if p.is_file() and p.parent != out]


def test_a_match_on_a_vendor_redaction_does_not_handle_quarantines(tmp_path: Path) -> None:
    slide = tmp_path / "ventana.bif"
    make_ventana(slide)
    regions = '[[slide_region]]\nwhere = { vendor = ["ventana", "aperio"] }\nboxes = [[0, 0, 0.5, 0.5]]\n'
    _, plain_row = _run(tmp_path, slide, None, "plain", clean_pixels=False)
    assert plain_row["status"] == "ok"  # released without templates
    out, row = _run(tmp_path, slide, regions, "templated")
    assert row["status"] == "quarantined" and not row["outputs"]
    assert "ventana" in row["reason"] and "redaction" in row["reason"]
    _nothing_released(out)
    # a template for other slides leaves it released
    _, row = _run(tmp_path, slide, regions.replace('"ventana", ', ""), "other")
    assert row["status"] == "ok"


def test_a_match_on_tiles_whose_codec_redaction_refuses_quarantines(tmp_path: Path) -> None:
    slide = tmp_path / "zstd.tiff"
    make_pyramid(slide, "zstd")
    out, row = _run(tmp_path, slide, '[[slide_region]]\nwhere = { width = 600 }\nboxes = [[0, 0, 0.5, 0.5]]\n', "zstd")
    assert row["status"] == "quarantined" and "Zstandard" in row["reason"]
    _nothing_released(out)


def test_a_truncated_slide_with_templates_is_quarantined(tmp_path: Path) -> None:
    slide = tmp_path / "cut.svs"
    slide.write_bytes(SVS.read_bytes()[: SVS.stat().st_size * 2 // 3])
    out, row = _run(tmp_path, slide, SVS_TEMPLATE % "black", "cut")
    assert row["status"] == "quarantined" and row["reason"]
    _nothing_released(out)


def test_the_temporary_file_is_removed_whatever_happens(tmp_path: Path) -> None:
    from medcloak.formats.slide_tiff import clean_slide
    from medcloak.handlers.slide import _redact_then_clean
    from medcloak.pseudonym import Keyring

    stage = tmp_path / "stage"
    stage.mkdir()

    def clean(src: Path, fh):  # type: ignore[no-untyped-def]
        report = clean_slide(src, fh, Keyring(SECRET))
        return dict(report.counts), report.sha256

    with open(stage / "staged.svs", "w+b") as fh:
        counts, digest = _redact_then_clean(SVS, fh, [(10, 10, 200, 100)], "black", clean)
    assert counts["pixel-regions-redacted"] == 1 and digest
    assert os.listdir(stage) == ["staged.svs"]
    zstd = tmp_path / "zstd.tiff"
    make_pyramid(zstd, "zstd")
    with open(stage / "other.tiff", "w+b") as fh, pytest.raises(UnsupportedInputError, match="Zstandard"):
        _redact_then_clean(zstd, fh, [(10, 10, 200, 100)], "black", clean)
    assert sorted(os.listdir(stage)) == ["other.tiff", "staged.svs"]


def test_slide_templates_need_clean_pixel_data(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="clean-pixel-data"):
        _run(tmp_path, SVS, "[[slide_region]]\nwhere = { vendor = \"aperio\" }\nboxes = [[0, 0, 0.5, 0.5]]\n",
             "refused", clean_pixels=False)
    assert not (tmp_path / "refused").exists()


@pytest.mark.parametrize(("text", "message"), [
    ('[[slide_region]]\nboxes = [[0, 0, 0.5, 0.5]]\n', "'where' must name"),
    ('[[slide_region]]\nwhere = { Modality = "SM" }\nboxes = [[0, 0, 0.5, 0.5]]\n', "not a slide predicate"),
    ('[[slide_region]]\nwhere = { vendor = "zeiss" }\nboxes = [[0, 0, 0.5, 0.5]]\n', "vendor 'zeiss' is not one of"),
    ('[[slide_region]]\nwhere = { vendor = 3 }\nboxes = [[0, 0, 0.5, 0.5]]\n', "vendor must be a name"),
    ('[[slide_region]]\nwhere = { width = "wide" }\nboxes = [[0, 0, 0.5, 0.5]]\n', "width is whole pixels"),
    ('[[slide_region]]\nwhere = { width = 1.5 }\nboxes = [[0, 0, 0.5, 0.5]]\n', "width is whole pixels"),
    ('[[slide_region]]\nwhere = { height = true }\nboxes = [[0, 0, 0.5, 0.5]]\n', "height is whole pixels"),
    ('[[slide_region]]\nwhere = { width = [] }\nboxes = [[0, 0, 0.5, 0.5]]\n', "empty list"),
    ('[[slide_region]]\nwhere = { width = { min = 9, max = 3 } }\nboxes = [[0, 0, 0.5, 0.5]]\n', "min is above its max"),
    ('[[slide_region]]\nwhere = { width = { least = 9 } }\nboxes = [[0, 0, 0.5, 0.5]]\n', "width is whole pixels"),
    ('[[slide_region]]\nwhere = { vendor = "aperio" }\n', "no boxes"),
    ('[[slide_region]]\nwhere = { vendor = "aperio" }\nboxes = [[0, 0, 100, 50]]\n', "fractions of level 0"),
    ('[[slide_region]]\nwhere = { vendor = "aperio" }\nboxes = [[0.5, 0, 0.5, 1]]\n', "0 <= x0 < x1 <= 1"),
    ('[[slide_region]]\nwhere = { vendor = "aperio" }\nboxes = [[0, 0, 1]]\n', "a slide box is"),
    ('[[slide_region]]\nwhere = { vendor = "aperio" }\nboxes = [[0, 0, 1, 1]]\nfill = "pink"\n', "fill must be"),
    ('[[slide_region]]\nwhere = { vendor = "aperio" }\nboxes = [[0, 0, 1, 1]]\nlevel = 1\n', "unknown key 'level'"),
    ('slide_region = 3\n', "array of tables"),
    ('[[slide_regions]]\nwhere = { vendor = "aperio" }\n', "expected [[region]] or [[slide_region]]"),
    ('', "no [[region]] or [[slide_region]] templates"),
])
def test_template_errors_are_clear_and_refuse_the_run(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ProfileError) as info:
        _run(tmp_path, SVS, text, "refused")
    assert message in str(info.value)
    assert not (tmp_path / "refused").exists()


def test_both_kinds_in_one_file_each_to_its_format() -> None:
    from pydicom.dataset import Dataset

    templates = parse_regions({
        "region": [{"where": {"Modality": "US"}, "boxes": [[0, 0, 4, 4]]}],
        "slide_region": [{"name": "s", "where": {"vendor": "APERIO"}, "boxes": [[0, 0, 1, 1]], "fill": "white"}],
    })
    assert [type(t) for t in templates] == [RegionTemplate, SlideRegionTemplate]
    assert dicom_templates(templates) == templates[:1] and slide_templates(templates) == templates[1:]
    ds = Dataset()
    ds.Modality, ds.Rows, ds.Columns = "US", 8, 8
    assert select(ds, templates) == ([(0, 0, 4, 4)], ["region 1"], "black")
    assert select_slide("aperio", 10, 20, templates) == ([(0, 0, 10, 20)], ["s"], "white")
    assert select_slide("generic", 10, 20, templates) == ([], [], "black")


def test_matching_and_rounding() -> None:
    (t,) = parse_regions({"slide_region": [{
        "where": {"width": [{"min": 100, "max": 200}, 500], "height": {"min": 50}},
        "boxes": [[0.1, 0.0, 0.26, 1.0], [0.999, 0.999, 1.0, 1.0]]}]})
    assert isinstance(t, SlideRegionTemplate)
    assert t.matches("aperio", 100, 50) and t.matches("generic", 200, 10**6) and t.matches("ome", 500, 60)
    assert not t.matches("aperio", 99, 50) and not t.matches("aperio", 201, 50) and not t.matches("aperio", 150, 49)
    # rounded outward, clipped, never empty
    assert t.boxes_for(101, 7) == [(10, 0, 27, 7), (100, 6, 101, 7)]


def test_the_vendors_a_template_may_name_are_those_the_handler_gives() -> None:
    from medcloak.formats.slide_tiff import HANDLED, RECOGNISED

    assert SLIDE_VENDORS == HANDLED + RECOGNISED
