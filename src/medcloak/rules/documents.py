"""Dummies of Encapsulated Document: an empty document of the MIME type the object declares.

The Basic Profile replaces Encapsulated Document (0042,0011) with a dummy. The dummy of its VR
(OB: eight zero bytes) makes an invalid object: MIME Type of Encapsulated Document (0042,0012)
still says PDF, STL or OBJ, Encapsulated Document Length (0042,0015) still gives the original's
length, and a viewer opening the document fails. So the dummy is a valid document of that type
holding nothing: a PDF of one blank page, a binary STL of no triangles, an OBJ or MTL file of one
comment line. Each is of even length, so OB needs no padding byte and the length attribute is
the value's length.

A type for which no empty document is valid gets none, and the object is not released (the
caller says why): a CDA document (``text/XML``) must name its patient, author and custodian,
and any other type is unknown here.
"""

from __future__ import annotations


def pdf(objects: list[bytes]) -> bytes:
    """A PDF 1.4 of ``objects`` (numbered from 1; the first the catalog), with a cross-reference
    table whose offsets are computed (readers check them), of even length."""
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")  # the binary comment line: a binary file
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    if len(out) % 2:
        out += b"\n"  # an empty line after the end-of-file marker: even length, as OB wants
    return bytes(out)


def _pdf() -> bytes:
    """A PDF of one blank US Letter page."""
    return pdf([
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << >> >>",
    ])


#: The empty documents, by MIME type (lower case).
EMPTY_DOCUMENTS: dict[str, bytes] = {
    "application/pdf": _pdf(),
    # binary STL: an 80-byte header (not starting with "solid", which would mean ASCII STL),
    # then the number of triangles, a little-endian uint32: 0
    "model/stl": b"\x00" * 80 + b"\x00\x00\x00\x00",
    # Wavefront OBJ and MTL: text files of statements; a comment line alone is a valid empty one
    "model/obj": b"# empty\n",
    "model/mtl": b"# empty\n",
}


def mime_type(value: str) -> str:
    """The bare MIME type of a declared value: lower case, parameters dropped."""
    return value.split(";", 1)[0].strip("\x00 ").lower()


def empty_document(mime: str) -> bytes | None:
    """A valid document of this MIME type holding nothing, or ``None`` when there is none."""
    return EMPTY_DOCUMENTS.get(mime_type(mime))
