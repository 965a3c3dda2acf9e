"""The report's pixel review (:mod:`medcloak.report.pixels`) on real ``medcloak run`` releases:
data_samples (DICOM series, DICOM and TIFF slides, BIDS volumes defaced), burned-in text redacted
(with the stand-in detector of ``test_burned_in_run``), photographs; and on manifests written
here with review records (:func:`medcloak.review_record.record`), for the order of the changed
objects, their boxes and the caps. The section reads the release only: every test deletes the
inputs before building it."""

from __future__ import annotations

import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pydicom
import pytest
from conftest import pydicom_test_files
from PIL import Image
from test_burned_in_run import LINES, MAGENTA, _mono1, install_stand_in, us_with_text

from medcloak.engine import run
from medcloak.report import ReportContext, Section
from medcloak.report import montage as M
from medcloak.report import pixels as P
from medcloak.report import thumbs as T
from medcloak.review_record import record

SAMPLES = Path(__file__).resolve().parents[1] / "data_samples"


class _Page(HTMLParser):
    """The section's figures: (class, [img attributes], caption) in page order, and its list items."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.figures: list[tuple[str, list[dict[str, str]], str]] = []
        self.items: list[str] = []
        self._caption = self._item = False
        self.feed(html)

    def handle_starttag(self, tag, attrs):  # type: ignore[no-untyped-def]
        a = {k: v or "" for k, v in attrs}
        if tag == "figure":
            self.figures.append((a.get("class", ""), [], ""))
        elif tag == "img":
            self.figures[-1][1].append(a)
        elif tag == "figcaption":
            self._caption = True
        elif tag == "li":
            self._item = True
            self.items.append("")

    def handle_endtag(self, tag):  # type: ignore[no-untyped-def]
        self._caption = self._caption and tag != "figcaption"
        self._item = self._item and tag != "li"

    def handle_data(self, data):  # type: ignore[no-untyped-def]
        if self._caption:
            cls, imgs, text = self.figures[-1]
            self.figures[-1] = (cls, imgs, text + data)
        if self._item:
            self.items[-1] += data


def _build(release: Path, tmp_path: Path, name: str = "report") -> tuple[Section, ReportContext, _Page]:
    ctx = ReportContext(release, release.parent / (release.name + ".audit"), tmp_path / name)
    section = P.build(ctx)
    return section, ctx, _Page(section.html)


def _check_files(section: Section, ctx: ReportContext) -> None:
    """Every picture is under the report's img folder, listed, decodes, is small, and every img
    tag names a listed file relatively, with alt text and its true size."""
    assert section.key == "pixels" and section.files
    assert len(set(section.files)) == len(section.files)
    for rel in section.files:
        assert rel.startswith("img/") and (ctx.out / rel).parent == ctx.images
        with Image.open(ctx.out / rel) as img:
            img.load()
            assert img.format in ("JPEG", "PNG")
            assert max(img.size) <= 2 * T.THUMB and min(img.size) <= T.THUMB
    page = _Page(section.html)
    for _, imgs, _ in page.figures:
        for a in imgs:
            assert a["src"] in section.files and a["alt"]
            with Image.open(ctx.out / a["src"]) as img:
                assert (int(a["width"]), int(a["height"])) == img.size


def _pixels(ctx: ReportContext, src: str) -> np.ndarray:
    with Image.open(ctx.out / src) as img:
        return np.asarray(img.convert("RGB")).astype(int)


# ---- data_samples -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    """data_samples released with defacing and the burned-in text scan; the inputs deleted."""
    root = tmp_path_factory.mktemp("samples")
    shutil.copytree(SAMPLES, root / "in")
    secret = root / "secret.key"
    secret.write_bytes(b"report-pixels-secret-0123456789")
    secret.chmod(0o600)
    summary = run([root / "in"], root / "out", secret_file=secret,
                  options=["clean-recognizable-visual-features", "clean-pixel-data"])
    assert summary.ok > 20
    shutil.rmtree(root / "in")
    return root / "out"


def test_samples_every_series_slide_and_volume_pictured(samples, tmp_path) -> None:  # type: ignore[no-untyped-def]
    section, ctx, page = _build(samples, tmp_path)
    _check_files(section, ctx)
    manifest = [json.loads(t) for t in (ctx.audit / "manifest.jsonl").read_text().splitlines()]
    released = [e for e in manifest if e["status"] == "ok"]
    series_dirs = {str(Path(o).parent) for e in released for o in e["outputs"] if o.endswith(".dcm")}
    volumes = {o for e in released for o in e["outputs"] if o.endswith(".nii.gz")}
    slides = {o for e in released for o in e["outputs"] if o.startswith("slides/")}
    captions = " ".join(c for cls, _, c in page.figures if cls == "pixels-series")
    # every volume and slide, and every DICOM series with pixels (two hold an SR and an RTSTRUCT)
    assert all(v in captions for v in volumes | slides)
    pictured = [d for d in series_dirs if d in captions]
    assert len(pictured) == len(series_dirs) - 2
    assert "2 series without pixel data" in section.html
    assert not page.items  # nothing failed
    # the BIDS dataset's tables, sidecars and text files are counted as released, not pictured
    tables = [o for e in released for o in e["outputs"][:1] if o.startswith("bids/") and not o.endswith(".nii.gz")]
    assert len(tables) == 10 and f"<tr><td>bids</td><td>{len(tables)}</td>" in section.html
    # the defaced volumes come first, as pairs, and the slide whose label was removed
    kinds = [cls for cls, _, _ in page.figures]
    first_series = kinds.index("pixels-series")
    assert set(kinds[:first_series]) == {"pixels-pair"} and "pixels-pair" not in kinds[first_series:]
    pairs = [c for cls, _, c in page.figures if cls == "pixels-pair"]
    defaced = [e for e in released if e["actions"].get("defaced")]
    assert len(defaced) == 2 and all(any(e["outputs"][0] in c and "defaced" in c for c in pairs) for e in defaced)
    assert any("slide label removed" in c for c in pairs)
    # the defacing QC pictures join the page, linked relatively to the audit's own
    hrefs = {(ctx.out / h).resolve() for h in re.findall(r'href="([^"]+)"', section.html)}
    qcs = list((ctx.audit / "qc").glob("*.png"))
    assert len(qcs) == 2 and all(q.resolve() in hrefs for q in qcs)
    assert all(not h.startswith("/") for h in re.findall(r'(?:href|src)="([^"]+)"', section.html))


def test_samples_montage_reads_the_released_frames(samples, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A 3-slice CT series: a 2 x 2 montage whose cells are the released slices, windowed."""
    _section, ctx, page = _build(samples, tmp_path)
    (ct_dir,) = {p.parent for p in samples.rglob("*.dcm") if pydicom.dcmread(p, stop_before_pixels=True).Modality == "CT"}
    rel = str(ct_dir.relative_to(samples))
    (fig,) = [f for f in page.figures if f[0] == "pixels-series" and rel in f[2]]
    assert "(3 objects)" in fig[2] and fig[1][0]["alt"].startswith("3 frames of series")
    got = _pixels(ctx, fig[1][0]["src"])
    assert got.shape == (2 * P.CELL + M.GAP, 2 * P.CELL + M.GAP, 3)
    slices = sorted((pydicom.dcmread(p) for p in ct_dir.glob("*.dcm")), key=lambda d: int(d.InstanceNumber))
    # each 128 x 128 slice in its cell (not enlarged: 127 < 2 x 128), in instance order
    from medcloak.pixels.burned_in import display

    for i, ds in enumerate(slices):
        r, c = divmod(i, 2)
        y, x = r * (P.CELL + M.GAP), c * (P.CELL + M.GAP)
        cell = got[y:y + P.CELL, x:x + P.CELL, 0]
        want = np.asarray(Image.fromarray(display(ds.pixel_array)).resize((P.CELL, P.CELL), Image.BILINEAR)).astype(int)
        assert np.abs(cell - want).mean() < 6
    assert (got[P.CELL + M.GAP:, P.CELL + M.GAP:] == 24).mean() > 0.9  # the fourth cell empty


def test_samples_inputs_never_read(samples, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The inputs are gone (the fixture deleted them) and the section opens nothing outside the
    release, the audit and the report."""
    import builtins

    opened: list[str] = []
    real_open = builtins.open

    def spy(file, *args, **kwargs):  # type: ignore[no-untyped-def]
        if isinstance(file, (str, Path)):
            opened.append(str(Path(file).resolve()))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", spy)
    section, ctx, page = _build(samples, tmp_path)
    assert section.files and not page.items
    roots = [str(p.resolve()) for p in (ctx.release, ctx.audit, ctx.out)]
    outside = [p for p in opened if not any(p.startswith(r + "/") for r in roots)]
    assert not [p for p in outside if str(samples.parent / "in") in p]


# ---- burned-in text, MONOCHROME1, photographs ---------------------------------------------------


@pytest.fixture
def text_release(tmp_path, secret_file, monkeypatch) -> Path:  # type: ignore[no-untyped-def]
    """A multi-frame ultrasound with text drawn on 4 frames, a MONOCHROME1 radiograph with text,
    and a photograph, released under clean-pixel-data with the stand-in detector; inputs deleted."""
    install_stand_in(monkeypatch)
    inp = tmp_path / "in"
    inp.mkdir()
    us_with_text(inp / "us.dcm", colour=MAGENTA)
    _mono1(inp / "cr.dcm", (7, 7))
    grad = np.tile(np.arange(200, dtype=np.uint8), (120, 1))
    Image.fromarray(np.stack([grad, grad[:, ::-1], np.full_like(grad, 90)], axis=2)).save(inp / "skin.jpg", quality=95)
    summary = run([inp], tmp_path / "out", secret_file=secret_file, options=["clean-pixel-data"])
    assert summary.ok == 3 and summary.quarantined == 0
    shutil.rmtree(inp)
    return tmp_path / "out"


def _manifest(release: Path) -> list[dict]:
    return [json.loads(t) for t in (release.parent / (release.name + ".audit") / "manifest.jsonl").read_text().splitlines()]


def _rewrite(release: Path, change) -> None:  # type: ignore[no-untyped-def]
    """The manifest with ``change(entry)`` applied to every line."""
    path = release.parent / (release.name + ".audit") / "manifest.jsonl"
    lines = [change(e) or e for e in _manifest(release)]
    path.write_text("".join(json.dumps(e) + "\n" for e in lines))


def _by_modality(release: Path) -> dict[str, tuple[dict, Path]]:
    out = {}
    for e in _manifest(release):
        rel = e["outputs"][0]
        if rel.endswith(".dcm"):
            out[str(pydicom.dcmread(release / rel, stop_before_pixels=True).Modality)] = (e, release / rel)
        else:
            out["photo"] = (e, release / rel)
    return out


def test_text_redacted_before_and_after_from_actions(text_release, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Without review records: the changed objects found by their manifest actions, before is the
    audit's review picture (with its red boxes), after the released frame."""
    section, ctx, page = _build(text_release, tmp_path)
    _check_files(section, ctx)
    objects = _by_modality(text_release)
    pairs = [f for f in page.figures if f[0] == "pixels-pair"]
    assert len(pairs) == 2 and {objects["US"][0]["outputs"][0], objects["CR"][0]["outputs"][0]} == \
        {re.split(r": ", c)[0] for _, _, c in pairs}
    for _, imgs, caption in pairs:
        before, after = imgs
        assert before["alt"].startswith("before: burned-in text redacted") and after["alt"].startswith("after:")
        red = _pixels(ctx, before["src"])
        assert ((red[:, :, 0] > 180) & (red[:, :, 1] < 80) & (red[:, :, 2] < 80)).any()  # the audit's boxes
    # every picture of the audit is used by a pair: none left for the gallery
    assert "Other QC pictures" not in section.html
    # the photograph has its thumbnail, colour kept
    photo = objects["photo"][0]["outputs"][0]
    (fig,) = [f for f in page.figures if f[0] == "pixels-series" and photo in f[2]]
    got = _pixels(ctx, fig[1][0]["src"])
    assert got.shape == (120, 200, 3)
    assert abs(got[60, 10, 0] - 10) < 12 and abs(got[60, 10, 1] - 189) < 12 and abs(got[60, 10, 2] - 90) < 12


def _text_boxes(frame_index: int) -> list[list[int]]:
    """The stand-in's boxes of a frame of ``us_with_text``'s (magenta text on the frame)."""
    from test_burned_in_run import US, _draw, _stand_in

    from medcloak.pixels.burned_in import pad

    frame = pydicom.dcmread(US).pixel_array[frame_index]
    drawn, _ = _draw(frame, LINES[frame_index], MAGENTA)
    return [[frame_index, *b] for b in pad(_stand_in(drawn), 320, 240)]


def test_records_boxes_outlined_on_the_released_frame(text_release, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """With review records naming the boxes: the frame with the most boxes is shown as released,
    its boxes outlined in red, and inside them the released pixels are black (the text is gone)."""
    objects = _by_modality(text_release)
    us_id = objects["US"][0]["id"]
    boxes = _text_boxes(4) + _text_boxes(29)  # frame 4 has one line, 29 two

    def add(e):  # type: ignore[no-untyped-def]
        if e["id"] == us_id:
            e["review"] = record("dicom", modality="US", series="s1", pixels={
                "change": "text-redacted", "frames": 30, "boxes": boxes, "picture": f"qc/{us_id}-text.png"})

    _rewrite(text_release, add)
    section, ctx, page = _build(text_release, tmp_path)
    _check_files(section, ctx)
    (pair,) = [f for f in page.figures if f[0] == "pixels-pair" and objects["US"][0]["outputs"][0] in f[2]]
    assert "3 boxes, frame 30 shown" in pair[2]  # the frame with the most boxes
    after = pair[1][1]
    assert after["alt"].endswith("2 changed area(s) outlined")
    got = _pixels(ctx, after["src"])
    assert got.shape == (192, 256, 3)  # 320 x 240 scaled to 256
    scale = 256 / 320
    released = pydicom.dcmread(objects["US"][1]).pixel_array[29]
    for _, x0, y0, x1, y1 in [b for b in boxes if b[0] == 29]:
        a, b, c, d = (int(x0 * scale) + 2, int(y0 * scale) + 2, int(x1 * scale) - 2, int(y1 * scale) - 2)
        assert got[b:d, a:c].max() <= 60  # black where the text was, as in the release
        assert released[y0:y1, x0:x1].max() <= 40
        edge = got[max(0, int(y0 * scale) - 1), a:c]
        assert ((edge[:, 0] > 180) & (edge[:, 1] < 90)).mean() > 0.8  # the red outline just outside


def test_records_order_kept_text_first(text_release, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Objects with text kept as safe first of all, then the other changed objects, then series."""
    objects = _by_modality(text_release)
    cr_id = objects["CR"][0]["id"]

    def keep(e):  # type: ignore[no-untyped-def]
        if e["id"] == cr_id:
            e["actions"]["pixel-text-boxes-kept-safe"] = 2

    _rewrite(text_release, keep)
    section, _ctx, page = _build(text_release, tmp_path)
    classes = [f[0] for f in page.figures]
    assert classes[:2] == ["pixels-pair pixels-kept", "pixels-pair"]
    assert objects["CR"][0]["outputs"][0] in page.figures[0][2] and "2 text boxes read as safe and kept" in page.figures[0][2]
    assert objects["US"][0]["outputs"][0] in page.figures[1][2]
    assert "1 with text kept as safe" in section.html


def test_monochrome1_inverted_and_blanked_black(text_release, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The radiograph (MONOCHROME1) shows as a viewer shows it: its redacted text (stored 4095,
    the darkest value) black; its after picture is the released frame."""
    objects = _by_modality(text_release)
    entry, path = objects["CR"]
    ds = pydicom.dcmread(path)
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    _section, ctx, page = _build(text_release, tmp_path)
    (pair,) = [f for f in page.figures if f[0] == "pixels-pair" and entry["outputs"][0] in f[2]]
    got = _pixels(ctx, pair[1][1]["src"])[:, :, 0]
    arr = ds.pixel_array
    small = np.asarray(Image.fromarray(arr.astype(np.float32)).resize(got.shape[::-1], Image.BILINEAR))
    blank = small >= 4090
    assert blank.sum() > 50 and got[blank].max() <= 40  # redacted: black
    # inverted: the brightest stored values are the darkest shown, and the other way round
    lo, hi = np.percentile(small, (5, 95))
    assert got[small <= lo].mean() > got[small >= hi].mean() + 100


def test_unreadable_release_files_listed_not_fatal(text_release, tmp_path) -> None:  # type: ignore[no-untyped-def]
    objects = _by_modality(text_release)
    us_path, photo_path = objects["US"][1], objects["photo"][1]
    us_path.write_bytes(us_path.read_bytes()[:1000])  # cut short in its header
    photo_path.write_bytes(b"not a photograph")
    section, ctx, page = _build(text_release, tmp_path)
    _check_files(section, ctx)
    listed = " ".join(page.items)
    assert objects["US"][0]["outputs"][0] in listed and objects["photo"][0]["outputs"][0] in listed
    assert str(ctx.release) not in listed
    assert "Not pictured (3)" in section.html  # the US's pair and series
    # the radiograph is still pictured
    cr_series = str(Path(objects["CR"][0]["outputs"][0]).parent)
    assert any(c.startswith(cr_series) for cls, _, c in page.figures if cls == "pixels-series")


# ---- caps and sampling --------------------------------------------------------------------------


def _ct_release(root: Path, series: int, per: int) -> Path:
    """A release folder and manifest written here: ``series`` folders of ``per`` CT slices each
    (CT_small with its values scaled by the instance number), with review records."""
    release = root / "rel"
    audit = root / "rel.audit"
    audit.mkdir(parents=True)
    base = pydicom.dcmread(pydicom_test_files() / "CT_small.dcm")
    lines = []
    for s in range(series):
        for i in range(per):
            rel = f"P{s}/ST/S{s}/i{i:04d}.dcm"
            (release / rel).parent.mkdir(parents=True, exist_ok=True)
            base.InstanceNumber = i + 1
            base.save_as(release / rel)
            rec = record("dicom", modality="CT", patient=f"P{s}", study="ST", series=f"S{s}")
            lines.append({"id": f"o{s}x{i}", "input": f"/nowhere/{s}/{i}.dcm", "status": "ok", "outputs": [rel],
                          "actions": {}, "review": rec})
    (audit / "manifest.jsonl").write_text("".join(json.dumps(e) + "\n" for e in lines))
    return release


def test_caps_honoured_and_noted(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    release = _ct_release(tmp_path, 5, 3)
    audit = tmp_path / "rel.audit"
    (audit / "qc").mkdir()
    for n in range(3):
        Image.new("RGB", (40, 30), (n * 60, 0, 0)).save(audit / "qc" / f"vol{n}.png")
    lines = _manifest(release)
    for e in lines[:4]:
        e["review"]["pixels"] = {"change": "regions-redacted", "boxes": [[0, 10, 10, 40, 30]]}
    (audit / "manifest.jsonl").write_text("".join(json.dumps(e) + "\n" for e in lines))
    monkeypatch.setattr(P, "MAX_SERIES", 2)
    monkeypatch.setattr(P, "MAX_CHANGED", 3)
    monkeypatch.setattr(P, "MAX_QC", 1)
    section, ctx, page = _build(release, tmp_path)
    _check_files(section, ctx)
    classes = [f[0] for f in page.figures]
    assert classes.count("pixels-pair") == 3 and classes.count("pixels-series") == 2 and classes.count("pixels-qc") == 1
    notes = " ".join(ctx.notes["pixels"])
    assert "3 of the 4 objects whose pixels were changed" in notes
    assert "2 of the 5 series, slides, volumes and photographs, every 4th" in notes and "the other 3, 9 objects" in notes
    # spread over the release: the first series and the last
    shown = [c for cls, _, c in page.figures if cls == "pixels-series"]
    assert shown[0].startswith("P0/ST/S0 ") and shown[1].startswith("P4/ST/S4 ")
    assert "1 of the 3 other QC pictures" in notes
    assert "Series, slides, volumes and photographs (5)" in section.html


def test_montage_decodes_few_frames_of_a_long_series(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A series of 300 instances: at most HEADERS headers read and FRAMES frames decoded, spread
    over it in instance order."""
    release = _ct_release(tmp_path, 1, 300)
    headers: list[Path] = []
    frames: list[int] = []
    real_header, real_frame = T.header, T._frame
    monkeypatch.setattr(T, "header", lambda p: headers.append(p) or real_header(p))
    monkeypatch.setattr(T, "_frame", lambda h, i: frames.append(h.number) or real_frame(h, i))
    _section, _ctx, page = _build(release, tmp_path)
    assert len(headers) == T.HEADERS and len(frames) == T.FRAMES
    numbers = sorted(frames)
    assert numbers[0] < 75 and numbers[-1] > 225 and len(set(numbers)) == T.FRAMES
    (fig,) = [f for f in page.figures if f[0] == "pixels-series"]
    assert "(300 objects)" in fig[2]


def test_group_sample_even_and_bounded() -> None:
    group = P._Group("dicom", "x")
    for i in range(1000):
        group.add(str(i))
    assert group.count == 1000 and len(group.paths) <= P.KEEP
    values = [int(p) for p in group.paths]
    steps = set(np.diff(values))
    assert len(steps) == 1 and values[0] == 0 and values[-1] > 1000 - 2 * steps.pop()
    assert T.spread(10, 4) == [1, 3, 6, 8] and T.spread(3, 4) == [0, 1, 2] and T.spread(1, 4) == [0]


# ---- the readers --------------------------------------------------------------------------------


def test_dicom_frame_monochrome1_inverted_rgb_kept(tmp_path) -> None:  # type: ignore[no-untyped-def]
    ds = pydicom.dcmread(pydicom_test_files() / "CT_small.dcm")
    arr = np.zeros((64, 64), np.uint16)
    arr[:, 32:] = 4095
    ds.Rows = ds.Columns = 64
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = arr.tobytes()
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.save_as(tmp_path / "m1.dcm")
    pic = T.dicom_frame(tmp_path / "m1.dcm")
    assert pic.space == (64, 64) and pic.pixels[:, :32].min() == 255 and pic.pixels[:, 32:].max() == 0
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.save_as(tmp_path / "m2.dcm")
    pic = T.dicom_frame(tmp_path / "m2.dcm")
    assert pic.pixels[:, :32].max() == 0 and pic.pixels[:, 32:].min() == 255
    from pydicom.data import get_testdata_file

    path = get_testdata_file("SC_rgb.dcm")
    rgb = pydicom.dcmread(path)
    pic = T.dicom_frame(Path(path))
    assert pic.pixels.shape == rgb.pixel_array.shape and np.array_equal(pic.pixels, rgb.pixel_array)


def test_slide_level_never_larger_than_the_cap(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    svs = SAMPLES / "wsi" / "CMU-1-Small-Region.svs"
    pic = T.slide_thumbnail(svs)
    assert pic.pixels.shape == (768, 574, 3) and pic.space == (2220, 2967)  # its thumbnail, not level 0
    ndpi = SAMPLES / "wsi" / "slideio_test3-DAPI-2-387.ndpi"
    assert T.slide_thumbnail(ndpi).pixels.shape[:2] == (608, 496)  # the smallest of 4 levels
    monkeypatch.setattr(T, "MAX_LEVEL_PIXELS", 100 * 100)
    with pytest.raises(Exception, match="too large to picture"):
        T.slide_thumbnail(svs)


def test_volume_projections_oriented(tmp_path) -> None:  # type: ignore[no-untyped-def]
    nib = pytest.importorskip("nibabel")
    data = np.zeros((20, 30, 40), np.int16)  # R, A, S
    data[15, 25, 35] = 1000  # right, anterior, superior
    data[2, 2, 2] = 500
    nib.save(nib.Nifti1Image(data, np.diag([2.0, 1.0, 1.0, 1.0])), tmp_path / "v.nii.gz")
    sag, cor, ax = T.volume_projections(tmp_path / "v.nii.gz")
    assert sag.pixels.shape == (40, 30) and cor.pixels.shape == (40, 20) and ax.pixels.shape == (30, 20)
    assert np.unravel_index(sag.pixels.argmax(), sag.pixels.shape) == (40 - 1 - 35, 25)  # superior up, anterior right
    assert np.unravel_index(cor.pixels.argmax(), cor.pixels.shape) == (40 - 1 - 35, 15)
    assert np.unravel_index(ax.pixels.argmax(), ax.pixels.shape) == (30 - 1 - 25, 15)  # anterior up
    assert cor.space == (40, 40) and sag.space == (30, 40)  # 2 mm voxels across R: square pixels of 1 mm


def test_defaced_volume_before_is_the_qc_picture(tmp_path, secret_file) -> None:  # type: ignore[no-untyped-def]
    """A volume defaced outside BIDS: its pair is the audit's QC picture (by its token) and the
    released volume's projections, in which the removed face is background."""
    inp = tmp_path / "in"
    inp.mkdir()
    (src,) = (SAMPLES / "bids").glob("sub-NF00482913/ses-1/anat/*T1w.nii.gz")
    shutil.copy(src, inp / "head.nii.gz")
    summary = run([inp], tmp_path / "out", secret_file=secret_file, options=["clean-recognizable-visual-features"])
    assert summary.ok == 1
    shutil.rmtree(inp)
    section, ctx, page = _build(tmp_path / "out", tmp_path)
    _check_files(section, ctx)
    (pair,) = [f for f in page.figures if f[0] == "pixels-pair"]
    before, after = pair[1]
    assert before["alt"].startswith("before: defaced") and int(before["width"]) == P.BEFORE[0]
    assert after["alt"].startswith("after:") and "Other QC pictures" not in section.html
    (series,) = [f for f in page.figures if f[0] == "pixels-series"]
    assert series[1][0]["src"] == after["src"]  # the projections made once
    # the released volume, not the input: its projections differ from the input's where the face was
    nib = pytest.importorskip("nibabel")
    released = np.asanyarray(nib.load(next((tmp_path / "out" / "volumes").glob("*.nii.gz"))).dataobj)
    original = np.asanyarray(nib.load(src).dataobj)
    assert (released != original).any()
    sag_released = T.volume_projections(next((tmp_path / "out" / "volumes").glob("*.nii.gz")))[0].pixels
    sag_original = T.volume_projections(src)[0].pixels
    assert (sag_released.astype(int) - sag_original).min() < -100  # tissue gone in the released one
    got = _pixels(ctx, after["src"])
    assert got.shape[1] <= 3 * P.PANEL + 2 * M.GAP and got.shape[0] <= P.PANEL


def test_one_bad_instance_of_a_series_listed_the_series_pictured(tmp_path) -> None:  # type: ignore[no-untyped-def]
    release = _ct_release(tmp_path, 1, 8)
    paths = sorted(release.rglob("*.dcm"))
    bad = paths[T.spread(len(paths), T.HEADERS)[1]]  # one of the instances read
    bad.write_bytes(b"DICM" * 10)
    _section, _ctx, page = _build(release, tmp_path)
    (fig,) = [f for f in page.figures if f[0] == "pixels-series"]
    assert fig[1][0]["alt"].startswith(f"{T.FRAMES - 1} frames of series")
    (item,) = page.items
    assert item.startswith(str(bad.relative_to(release)) + ": ") and str(release) not in item


def test_mirax_slide_pictured_with_openslide(tmp_path, secret_file) -> None:  # type: ignore[no-untyped-def]
    """A MIRAX slide (not a TIFF): pictured through OpenSlide's thumbnail, its label removed."""
    pytest.importorskip("openslide")
    from mirax_sample import make_mirax

    make_mirax(tmp_path / "in")
    summary = run([tmp_path / "in"], tmp_path / "out", secret_file=secret_file)
    assert summary.ok == 1
    shutil.rmtree(tmp_path / "in")
    section, ctx, page = _build(tmp_path / "out", tmp_path)
    _check_files(section, ctx)
    (fig,) = [f for f in page.figures if f[0] == "pixels-series"]
    assert fig[2].startswith("slides/") and ".mrxs" in fig[2] and not page.items
    with Image.open(ctx.out / fig[1][0]["src"]) as img:
        assert max(img.size) == T.THUMB  # 256 x 256 slide


def test_groups_pictured_spread_over_a_large_release(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """1000 series, 10 pictured: spread from the first to the last, the rest counted (their files
    are missing here: each pictured one is listed as not pictured, which names it)."""
    audit = tmp_path / "rel.audit"
    audit.mkdir()
    lines = [{"id": f"o{i}", "input": "/nowhere", "status": "ok", "outputs": [f"S{i:04d}/{j}.dcm"], "actions": {}}
             for i in range(1000) for j in range(2)]
    (audit / "manifest.jsonl").write_text("".join(json.dumps(e) + "\n" for e in lines))
    monkeypatch.setattr(P, "MAX_SERIES", 10)
    section, ctx, page = _build(tmp_path / "rel", tmp_path)
    shown = sorted({int(item[1:5]) for item in page.items})
    assert 5 <= len(shown) <= 10 and shown[0] == 0 and shown[-1] >= 1000 - (1000 // len(shown)) - 10
    assert len(set(np.diff(shown))) == 1  # evenly
    (note,) = ctx.notes["pixels"][:1]
    assert f"{len(shown)} of the 1000 series" in note and f"{2 * (1000 - len(shown))} objects" in note
    assert "Series, slides, volumes and photographs (1000)" in section.html
