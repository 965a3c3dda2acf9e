"""The review report in a real browser: Debian's headless Chromium, driven by Selenium through
Debian's chromedriver, loads ``index.html`` from disk (a report of a real run on data_samples) and
checks that every picture loads, every section renders without an error box, and that no request
leaves the machine: Chromium runs with a host resolver that fails every name and a proxy that goes
nowhere, and every request it logged (the driver's performance log) and every resource the page
loaded (its performance entries) is a file or data URL."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import types
from pathlib import Path
from typing import Any, Iterator

import pytest

from medcloak.engine import run
from medcloak.report import SECTIONS, Section, build_report, open_release

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
    pytest.skip("Chromium and chromedriver are not installed (Debian: apt-get install chromium chromium-driver)",
                allow_module_level=True)
webdriver = pytest.importorskip("selenium.webdriver")

SAMPLES = Path(__file__).resolve().parents[1] / "data_samples"
#: the sections built here: every one of the page
SECTIONS_HERE = SECTIONS


def _picture_section(ctx: Any) -> Section:
    """A section with two real pictures (grey ramps; no face), so that the check of pictures sees
    some whatever sections exist."""
    from PIL import Image

    files = []
    for i, size in enumerate(((64, 48), (32, 96))):
        img = Image.linear_gradient("L").resize(size)
        img.save(ctx.images / f"ramp{i}.png")
        files.append(f"img/ramp{i}.png")
    figures = "".join(f'<figure><img src="{f}" alt="ramp"><figcaption>{f}</figcaption></figure>' for f in files)
    return Section("testpictures", "Test pictures", figures, tuple(files))


@pytest.fixture
def picture_section(monkeypatch: pytest.MonkeyPatch) -> str:
    module = types.ModuleType("medcloak.report.testpictures")
    module.build = _picture_section  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, module.__name__, module)
    return "testpictures"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager: never fetch a driver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="medcloak-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--no-first-run",
                "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9",
                "--disable-background-networking", "--disable-component-update", f"--user-data-dir={profile}",
                "--window-size=1200,1600"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def load(driver: Any, index: Path) -> dict[str, Any]:
    """Open ``index`` from disk; what the checks need: the pictures that did not load, the
    requests the browser made for the page, the resources the page loaded, the sections."""
    driver.get("about:blank")
    driver.get_log("performance")  # what the start page fetched is not the report's
    driver.get(index.as_uri())
    driver.execute_script(
        "return new Promise(done => (document.readyState === 'complete') ? done() :"
        " addEventListener('load', () => done()))")
    requests: dict[str, str] = {}
    blocked: set[str] = set()  # stopped inside the browser (by the page's policy) before any I/O
    for raw in driver.get_log("performance"):
        message = json.loads(raw["message"])["message"]
        params = message["params"]
        if message["method"] == "Network.requestWillBeSent":
            requests[params["requestId"]] = params["request"]["url"]
        elif message["method"] == "Network.loadingFailed" and params.get("blockedReason"):
            blocked.add(params["requestId"])
    return {
        "requests": list(requests.values()),
        "outgoing": [url for rid, url in requests.items() if not local(url) and rid not in blocked],
        "images": driver.execute_script("return document.images.length"),
        "broken": driver.execute_script(
            "return [...document.images].filter(i => !(i.complete && i.naturalWidth > 0))"
            ".map(i => i.getAttribute('src'))"),
        "resources": driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)"),
        "sections": driver.execute_script(
            "return [...document.querySelectorAll('main > section')].map(s => ({id: s.id,"
            " heading: (s.querySelector('h2') || {}).textContent || '', errors: s.querySelectorAll('.error').length,"
            " visible: s.getBoundingClientRect().height > 0}))"),
        "incomplete": driver.execute_script("return document.querySelectorAll('.status.incomplete').length"),
        "toc": driver.execute_script("return [...document.querySelectorAll('nav a')].map(a => a.hash)"),
    }


def local(url: str) -> bool:
    return url.startswith(("file://", "data:"))


@pytest.fixture(scope="module")
def sample_release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real run on data_samples (DICOM, slides, BIDS)."""
    out = tmp_path_factory.mktemp("browser") / "release"
    run([SAMPLES], out, workers=1)
    return out


def test_the_report_renders_offline_with_every_picture(browser: Any, sample_release: Path,
                                                       picture_section: str, tmp_path: Path) -> None:
    ctx = open_release(sample_release, out=tmp_path / "report")
    sections = (*SECTIONS_HERE, picture_section)
    index = build_report(ctx, sections=sections)
    assert not ctx.failed
    seen = load(browser, index)
    assert seen["images"] >= 2 and seen["broken"] == []
    assert [s["id"] for s in seen["sections"]] == list(sections)
    for section in seen["sections"]:
        assert section["heading"].strip() and section["visible"] and section["errors"] == 0, section
    assert seen["incomplete"] == 0
    assert seen["toc"] == [f"#{s}" for s in sections]
    assert seen["requests"] and all(local(u) for u in seen["requests"]), seen["requests"]
    assert seen["outgoing"] == []
    assert all(local(u) for u in seen["resources"]), seen["resources"]


def test_the_checks_see_a_broken_picture_an_error_box_and_a_request_out(browser: Any, tmp_path: Path) -> None:
    """The checks above can fail: a page without the report's policy that asks for a remote
    picture is seen making that request, and its broken pictures are seen."""
    page = tmp_path / "bad.html"
    page.write_text('<!DOCTYPE html><html><body><main><section id="x"><h2>X</h2><div class="error">no</div>'
                    '</section></main><img src="missing.png"><img src="http://example.com/a.png"></body></html>')
    seen = load(browser, page)
    assert sorted(seen["broken"]) == ["http://example.com/a.png", "missing.png"]
    assert seen["outgoing"] == ["http://example.com/a.png"]
    assert seen["sections"][0]["errors"] == 1


def test_the_report_policy_stops_a_remote_picture_a_section_might_add(browser: Any, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from reportdata import write_release

    release, _ = write_release(tmp_path)
    module = types.ModuleType("medcloak.report.remote")
    module.build = lambda ctx: Section("remote", "Remote", '<img src="http://example.com/a.png" alt="x">')  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, module.__name__, module)
    seen = load(browser, build_report(open_release(release), sections=("summary", "remote")))
    assert seen["broken"] == ["http://example.com/a.png"]  # blocked by the page's policy, not fetched
    assert seen["outgoing"] == []


def test_the_pictures_of_research_volumes_load_offline(browser: Any, tmp_path: Path) -> None:
    """A release of issue 17's formats (ECAT 7, PAR/REC, MGH/MGZ, NRRD/NHDR, twix; made by their
    test builders, see ``test_report_volumes``): every volume's picture loads in the browser, the
    twix files are counted as not pictured, and nothing is fetched."""
    from test_report_volumes import make_inputs

    make_inputs(tmp_path / "in")
    key = tmp_path / "key"
    key.write_bytes(b"browser-research-secret-0123456789")
    key.chmod(0o600)
    run([tmp_path / "in"], tmp_path / "release", secret_file=key, options=["clean-recognizable-visual-features"])
    shutil.rmtree(tmp_path / "in")
    ctx = open_release(tmp_path / "release", out=tmp_path / "report")
    seen = load(browser, build_report(ctx, sections=("pixels",)))
    assert seen["broken"] == [] and seen["outgoing"] == []
    assert seen["images"] >= 10  # 8 volumes, the defaced head's pair
    assert all(local(u) for u in seen["resources"]), seen["resources"]
    text = browser.find_element("id", "pixels").text
    assert "Released, not pictured (2 objects)" in text and "raw k-space data, not an image" in text
