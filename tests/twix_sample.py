"""Small Siemens twix files made from the format's public description (twixtools' and mapVBVD's
documentation of the layout; no twix sample is freely licensed and small): VB (one measurement)
and VD/VE (a MultiRaidFileHeader and several measurements).

Each measurement header has the six buffers a scanner writes (``Config``, ``Dicom``, ``Meas``,
``MeasYaps``, ``Phoenix``, ``Spice``), in XProtocol (``<ParamString."Key"> { "value" }``) with
ASCCONV sections (``key = value``), and the identifiers of :data:`PLANTED` in every key the
format documents for them; then measurement data blocks: per line, a measurement data header
(VB: 128 bytes per channel; VD: a 192-byte scan header and a 32-byte header per channel, its
type 2 and length in its first word) and complex float samples drawn from a seeded generator,
ending with an ACQEND block.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

#: identifying values planted in the headers (none may remain in a release)
PLANTED = {
    "name": "Surname^Givenname", "id": "NF00482913", "birth": "19610704", "physician": "Drreferring^Hildegard",
    "operator": "Operatorsson^Klaus", "institution": "Sankt Ignatius Klinik", "serial": "SN66123",
    "date": "20240311", "time": "101512.250000", "comment": "tumour of Mrs Surname",
    "protocol": "Surname_headscan", "station": "IGNATIUS-MR1", "loid": "LOID-NF00482913-7",
}
#: text that stays (the review record's kept text)
SEQUENCE = "%SiemensSeq%\\gre"


def _xprot(pairs: list[tuple[str, str, str]]) -> str:
    body = "".join(f'  <Param{kind}."{key}">  {{ {value} }}\n' for kind, key, value in pairs)
    return f'<XProtocol>\n{{\n  <Name> "Buffer"\n{body}}}\n'


def _asc(lines: list[tuple[str, str]]) -> str:
    return "### ASCCONV BEGIN ###\n" + "".join(f"{k:<40} = {v}\n" for k, v in lines) + "### ASCCONV END ###\n"


def buffers(p: dict[str, str] = PLANTED) -> list[tuple[str, bytes]]:
    """The six header buffers with every planted identifier."""
    people = [
        ("String", "PatientName", f'"{p["name"]}"'), ("String", "tPatientName", f'"{p["name"]}"'),
        ("String", "PatientID", f'"{p["id"]}"'), ("Long", "PatientBirthDay", p["birth"]),
        ("String", "PatientsBirthDate", f'"{p["birth"]}"'), ("Long", "PatientSex", "2"),
        ("Double", "flUsedPatientWeight", "<Precision> 16  71.5"), ("String", "PatientAge", '"062Y"'),
        ("String", "PatientLOID", f'"{p["loid"]}"'), ("String", "StudyLOID", f'"{p["loid"]}1"'),
        ("String", "tReferringPhysician", f'"{p["physician"]}"'), ("String", "PerfPhysiciansName", f'"{p["physician"]}"'),
        ("String", "OperatorsName", f'"{p["operator"]}"'), ("String", "InstitutionName", f'"{p["institution"]}"'),
        ("String", "InstitutionAddress", '"Ignatiusweg 4, Kleinstadt"'), ("String", "DeviceSerialNumber", f'"{p["serial"]}"'),
        ("String", "StationName", f'"{p["station"]}"'), ("String", "StudyDate", f'"{p["date"]}"'),
        ("String", "StudyTime", f'"{p["time"]}"'), ("String", "SeriesDate", f'"{p["date"]}"'),
        ("String", "tFrameOfReference", f'"1.3.12.2.1107.5.2.43.{p["serial"][2:]}.1.{p["date"]}101512"'),
        ("String", "tProtocolName", f'"{p["protocol"]}"'), ("String", "PatientComments", f'"{p["comment"]}"'),
        ("String", "StudyDescription", f'"study of {p["name"]}"'),
        ("String", "tSequenceFileName", f'"{SEQUENCE}"'), ("Long", "lBaseResolution", "8"),
    ]
    config = _xprot(people[:6] + [("String", "PatientPosition", '"HFS"'), ("Long", "NImageLins", "4")])
    dicom = _xprot(people + [("String", "Manufacturer", '"SIEMENS"'), ("String", "SoftwareVersions", '"syngo MR E11"')])
    meas = _xprot(people[10:] + [("Long", "alTR", "5000")])
    yaps = _asc([
        ("tProtocolName", f'"{p["protocol"]}"'), ("sPatient.tPatientName", f'"{p["name"]}"'),
        ("sProtConsistencyInfo.tBaselineString", '"N4_VE11C_LATEST_20160120"'), ("tSequenceFileName", f'"{SEQUENCE}"'),
        ("sKSpace.lBaseResolution", "8"), ("tComment", f'"{p["comment"]}"'), ("lPatientBirthDay", p["birth"]),
        ("sStudyDate", f'"{p["date"]}"'),
        ("sProtConsistencyInfo.tReferenceImage0", f'"1.3.12.2.1107.5.2.43.{p["serial"][2:]}.{p["date"]}1015"'),
    ])
    phoenix = _xprot([("String", "tProtocolName", f'"{p["protocol"]}"')]) + (
        '<XProtocol> { <ParamString."Embedded"> { "' + _asc([("tProtocolName", f'""{p["protocol"]}""'),
                                                             ("tPatientName", f'""{p["name"]}""')]).replace('"', '""')
        .replace('""""', '""') + '" } }\n')
    spice = _xprot([("String", "PatientID", f'"{p["id"]}"'), ("String", "StudyComments", f'"{p["comment"]}"')])
    return [(n, t.encode("latin-1") + b"\x00") for n, t in (("Config", config), ("Dicom", dicom), ("Meas", meas),
                                                          ("MeasYaps", yaps), ("Phoenix", phoenix), ("Spice", spice))]


def header(bufs: list[tuple[str, bytes]], pad_to: int = 32, least: int = 0) -> bytes:
    """A measurement header: length, count, then each buffer's name, length and text; padded
    (to ``least`` bytes at least: a VB header is longer than 10000 bytes, as readers expect)."""
    body = b"".join(n.encode() + b"\x00" + struct.pack("<I", len(t)) + t for n, t in bufs)
    size = max(8 + len(body), least)
    size += -size % pad_to
    return struct.pack("<II", size, len(bufs)) + body + b"\x00" * (size - 8 - len(body))


def data(ve: bool, lines: int = 4, samples: int = 16, channels: int = 2, seed: int = 0, sync: int = 0) -> bytes:
    """Measurement data blocks, one per line, and ACQEND; first, when ``sync``, a block of sync
    data (not k-space: physiological data, say) of that many bytes after its header, which
    readers skip by its DMA length."""
    rng = np.random.default_rng(seed)
    out = []
    if sync:
        head = 192 if ve else 128
        block = bytearray(head)
        struct.pack_into("<IiI", block, 0, head + sync, 7, 0)
        struct.pack_into("<Q", block, 40 if ve else 20, 1 << 5)  # SYNCDATA
        out.append(bytes(block) + bytes(range(256)) * (sync // 256) + bytes(sync % 256))
    for lin in range(lines + 1):
        last = lin == lines
        eval_mask = 1 if last else 0
        ns, nc = (0, 0) if last else (samples, channels)
        if ve:
            dma = 192 + nc * (32 + ns * 8)
            scan = bytearray(192)
            struct.pack_into("<IiI", scan, 0, dma, 7, lin + 1)
            struct.pack_into("<QHH", scan, 40, eval_mask, ns, nc)
            struct.pack_into("<H", scan, 52, lin)
            out.append(bytes(scan))
            for ch in range(nc):
                chan = bytearray(32)
                struct.pack_into("<IiI", chan, 0, 2 | (32 + ns * 8) << 8, 7, lin + 1)  # type 2, length
                struct.pack_into("<H", chan, 24, ch)
                out.append(bytes(chan) + rng.standard_normal(2 * ns).astype("<f4").tobytes())
        else:
            for ch in range(max(nc, 1)):
                mdh = bytearray(128)
                struct.pack_into("<IiI", mdh, 0, 128 if last else nc * (128 + ns * 8), 7, lin + 1)
                struct.pack_into("<QHH", mdh, 20, eval_mask, ns, nc)
                struct.pack_into("<H", mdh, 32, lin)
                struct.pack_into("<H", mdh, 124, ch)
                out.append(bytes(mdh) + rng.standard_normal(2 * ns).astype("<f4").tobytes())
    return b"".join(out)


def make_vb(path: Path, lines: int = 4, sync: int = 0, planted: dict[str, str] = PLANTED) -> Path:
    path.write_bytes(header(buffers(planted), least=16384) + data(False, lines, sync=sync))
    return path


def make_vd(path: Path, count: int = 2, lines: int = 4, sync: int = 0, planted: dict[str, str] = PLANTED) -> Path:
    """A VD/VE file: the measurement table (patient and protocol names in every entry) padded to
    10240 bytes, then ``count`` measurements, each aligned to 512 bytes (its length in the table
    counting the padding)."""
    raid_len = 10240
    body = b""
    entries = []
    for k in range(count):
        meas = header(buffers(planted)) + data(True, lines, seed=k, sync=sync)
        meas += b"\x00" * (-len(meas) % 512)
        entries.append((raid_len + len(body), len(meas)))
        body += meas
    table = bytearray(raid_len)
    struct.pack_into("<II", table, 0, 0, count)
    for k, (off, length) in enumerate(entries):
        at = 8 + k * 152
        struct.pack_into("<IIQQ", table, at, 100 + k, 2000 + k, off, length)
        table[at + 24: at + 24 + len(planted["name"])] = planted["name"].encode()
        table[at + 88: at + 88 + len(planted["protocol"])] = planted["protocol"].encode()
    path.write_bytes(bytes(table) + body)
    return path


def read_kspace(path: Path) -> list[list[tuple[int, np.ndarray]]]:
    """Every measurement's lines as twixtools reads them: (line counter, complex samples)."""
    import scipy.integrate

    if not hasattr(scipy.integrate, "cumtrapz"):  # twixtools 1.0 imports a name SciPy 1.14 removed
        scipy.integrate.cumtrapz = scipy.integrate.cumulative_trapezoid
    import gc
    import warnings

    import twixtools

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)  # the reader leaves its file to the collector
        scans = twixtools.read_twix(str(path), verbose=False, parse_geometry=False)
        gc.collect()
    return [[(int(m.cLin), np.asarray(m.data)) for m in scan["mdb"]] for scan in scans]


#: header values an image reconstruction reads (buffer, key as pymapvbvd names it)
IMAGE_KEYS = (("Config", "NImageLins"), ("Config", "PatientPosition"), ("Meas", "lBaseResolution"), ("Meas", "alTR"),
              ("MeasYaps", ("sKSpace", "lBaseResolution")), ("Dicom", "tSequenceFileName"), ("Dicom", "Manufacturer"))


def read_mapvbvd(path: Path) -> list[tuple[np.ndarray, dict[str, dict[object, object]]]]:
    """Every measurement as pymapvbvd (PyPI ``pymapvbvd``) reads it: its readouts in file order
    (columns x channels x readouts, oversampling kept) and its header buffers' values."""
    import gc
    import warnings

    import mapvbvd

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)  # the reader leaves its file to the collector
        scans = mapvbvd.mapVBVD(str(path), quiet=True, removeOS=False)
        scans = scans if isinstance(scans, list) else [scans]
        out = []
        for scan in scans:
            kspace = np.asarray(scan.image.unsorted())
            out.append((kspace, {buf: dict(scan.hdr[buf]) for buf in scan.hdr}))
        del scans
        gc.collect()
    return out
