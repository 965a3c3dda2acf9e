"""Valid dummies of Encapsulated Document (issue 14, item 6): the Basic Profile's dummy of a PDF,
STL, OBJ or MTL is an empty document of the same MIME type, Encapsulated Document Length says its
length, and readers of the type (pypdf, numpy-stl, where installed) and dciodvfy accept the
released object; a CDA document, which has no valid empty form, is not released, with the reason."""

from __future__ import annotations

import io
import re
import shutil
import struct
import subprocess

import pydicom
import pytest
from conftest import SECRET
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from medcloak.errors import DeidentificationError, SkippedObject
from medcloak.formats.dicom import deidentify_dicom
from medcloak.pseudonym import Keyring
from medcloak.rules.documents import EMPTY_DOCUMENTS, empty_document, pdf
from medcloak.rules.profile import load_profile

KEYRING = Keyring(SECRET)
PROFILE = load_profile(None, [])
NAME = "Featherstonehaugh Ilse"
SOP_CLASS = {"application/pdf": "1.2.840.10008.5.1.4.1.1.104.1", "text/XML": "1.2.840.10008.5.1.4.1.1.104.2",
             "model/stl": "1.2.840.10008.5.1.4.1.1.104.3", "model/obj": "1.2.840.10008.5.1.4.1.1.104.4",
             "model/mtl": "1.2.840.10008.5.1.4.1.1.104.5"}


def _pdf_with_text(text: str) -> bytes:
    """A one-page PDF that shows ``text`` (offsets computed as a reader checks them)."""
    stream = b"BT /F1 12 Tf 72 720 Td (%s) Tj ET" % text.encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        (b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
         b"/Resources << /Font << /F1 5 0 R >> >> >>"),
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    return pdf(objects)


def _stl_with_name(name: str) -> bytes:
    triangle = struct.pack("<12fH", 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0)
    return f"solid-free header {name}".encode().ljust(80, b" ") + struct.pack("<I", 1) + triangle


DOCUMENTS = {
    "application/pdf": lambda name: _pdf_with_text(f"Report for {name}"),
    "model/stl": _stl_with_name,
    "model/obj": lambda name: f"# scanned for {name}\nv 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n".encode(),
    "model/mtl": lambda name: f"# {name}\nnewmtl skin\nKd 0.8 0.6 0.5\n".encode(),
    "text/XML": lambda name: f"<ClinicalDocument><title>{name}</title></ClinicalDocument>".encode(),
}


def encapsulated(tmp_path, mime: str, name: str = NAME, burned: str = "YES"):
    document = DOCUMENTS[mime](name)
    ds = Dataset()
    ds.SOPClassUID = SOP_CLASS[mime]
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = name.replace(" ", "^"), "QX7781234", "", "F"
    ds.StudyDate, ds.StudyTime, ds.ReferringPhysicianName, ds.StudyID, ds.AccessionNumber = (
        "20240131", "101500", "", "1", "")
    ds.Modality = "DOC" if mime in ("application/pdf", "text/XML") else "M3D"
    ds.SeriesNumber, ds.InstanceNumber = 1, 1
    ds.Manufacturer, ds.ConversionType = "", "WSD"
    ds.ContentDate, ds.ContentTime, ds.AcquisitionDateTime = "20240131", "101500", "20240131101500"
    ds.BurnedInAnnotation = burned
    ds.DocumentTitle = "Report"
    ds.ConceptNameCodeSequence = Sequence()
    ds.MIMETypeOfEncapsulatedDocument = mime
    ds.EncapsulatedDocument = document + b"\x00" * (len(document) % 2)
    ds.EncapsulatedDocumentLength = len(document)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    path = tmp_path / f"{mime.replace('/', '_')}.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def _released(path, profile=PROFILE):
    released = deidentify_dicom(path, profile, KEYRING)
    return released, pydicom.dcmread(io.BytesIO(released.data))


# -- the empty documents themselves ----------------------------------------------------------


def test_empty_documents_are_of_even_length_and_carry_nothing():
    for mime, document in EMPTY_DOCUMENTS.items():
        assert len(document) % 2 == 0, mime
    assert empty_document("APPLICATION/PDF; version=1.4") == EMPTY_DOCUMENTS["application/pdf"]
    assert empty_document("text/XML") is None and empty_document("") is None


def test_empty_pdf_read_by_pypdf_strictly():
    pypdf = pytest.importorskip("pypdf")
    reader = pypdf.PdfReader(io.BytesIO(EMPTY_DOCUMENTS["application/pdf"]), strict=True)
    assert len(reader.pages) == 1 and reader.pages[0].extract_text() == ""
    with pytest.raises(pypdf.errors.PdfReadError):  # the VR's dummy is no PDF
        pypdf.PdfReader(io.BytesIO(b"\x00" * 8), strict=True)
    # and the test's PDF with text is read too (the reader would notice a broken one)
    text = pypdf.PdfReader(io.BytesIO(_pdf_with_text(NAME)), strict=True).pages[0].extract_text()
    assert NAME in text


def test_empty_stl_read_by_numpy_stl(tmp_path):
    mesh = pytest.importorskip("stl.mesh")
    document = EMPTY_DOCUMENTS["model/stl"]
    assert len(document) == 84 and not document.startswith(b"solid")
    assert struct.unpack("<I", document[80:]) == (0,)
    path = tmp_path / "empty.stl"
    path.write_bytes(document)
    assert len(mesh.Mesh.from_file(str(path), calculate_normals=False).vectors) == 0


def test_empty_obj_and_mtl_are_comment_lines():
    for mime in ("model/obj", "model/mtl"):
        lines = EMPTY_DOCUMENTS[mime].decode("ascii").splitlines()
        assert lines and all(line.startswith("#") for line in lines)


# -- released objects ------------------------------------------------------------------------


@pytest.mark.parametrize("mime", ["application/pdf", "model/stl", "model/obj", "model/mtl"])
def test_document_replaced_by_an_empty_one_of_its_type(tmp_path, mime):
    released, out = _released(encapsulated(tmp_path, mime))
    assert b"featherstonehaugh" not in released.data.lower()
    assert out.MIMETypeOfEncapsulatedDocument == mime
    assert bytes(out.EncapsulatedDocument) == EMPTY_DOCUMENTS[mime]
    assert out.EncapsulatedDocumentLength == len(out.EncapsulatedDocument)
    assert out.BurnedInAnnotation == "NO"  # the empty document shows no one


def test_released_pdf_opens_as_a_pdf(tmp_path):
    pypdf = pytest.importorskip("pypdf")
    _, out = _released(encapsulated(tmp_path, "application/pdf"))
    data = bytes(out.EncapsulatedDocument)[: out.EncapsulatedDocumentLength]
    assert len(pypdf.PdfReader(io.BytesIO(data), strict=True).pages) == 1


def test_clean_document_object_released_too(tmp_path):
    """Both ways: an object whose document names no one is released as well (the document is
    still replaced: the Basic Profile's D)."""
    _, out = _released(encapsulated(tmp_path, "application/pdf", name="Anonymous", burned="NO"))
    assert bytes(out.EncapsulatedDocument) == EMPTY_DOCUMENTS["application/pdf"]


def test_document_kept_by_a_site_override_is_untouched(tmp_path):
    site = tmp_path / "site.toml"
    site.write_text('[attributes]\nEncapsulatedDocument = "keep"\n')
    profile = load_profile(str(site), [])
    path = encapsulated(tmp_path, "model/obj", name="Anonymous", burned="NO")
    _, out = _released(path, profile)
    assert bytes(out.EncapsulatedDocument).startswith(b"# scanned for Anonymous")
    # a kept document that says YES is still quarantined: its flag speaks of the original
    with pytest.raises(DeidentificationError, match="Burned In Annotation"):
        _released(encapsulated(tmp_path, "model/obj"), profile)


@pytest.mark.parametrize("mime", ["text/XML", "application/x-unknown"])
def test_no_valid_empty_document_means_not_released_with_the_reason(tmp_path, mime):
    DOCUMENTS.setdefault("application/x-unknown", lambda name: name.encode())
    SOP_CLASS.setdefault("application/x-unknown", "1.2.840.10008.5.1.4.1.1.104.1")
    with pytest.raises(SkippedObject, match=re.escape(mime.lower()) + ": no valid empty document"):
        _released(encapsulated(tmp_path, mime))


def test_mime_type_that_is_free_text_is_not_logged(tmp_path):
    path = encapsulated(tmp_path, "text/XML")
    ds = pydicom.dcmread(path)
    ds.MIMETypeOfEncapsulatedDocument = "Ilse Featherstonehaugh"
    ds.save_as(path)
    with pytest.raises(SkippedObject) as caught:
        _released(path)
    assert "Featherstonehaugh" not in str(caught.value) and "unrecognised" in str(caught.value)


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dciodvfy not installed")
@pytest.mark.parametrize("mime", ["application/pdf", "model/stl", "model/obj", "model/mtl"])
def test_released_object_no_new_dciodvfy_errors(tmp_path, mime):
    path = encapsulated(tmp_path, mime)
    released, _ = _released(path)
    out = tmp_path / "out.dcm"
    out.write_bytes(released.data)

    def errors(p):
        run = subprocess.run(["dciodvfy", str(p)], capture_output=True, text=True, check=False)
        return {re.sub(r"[0-9.]{6,}", "", line) for line in (run.stdout + run.stderr).splitlines()
                if line.startswith("Error")}

    assert not errors(out) - errors(path)
