"""``medcloak run --k-anonymity K``: generalise the patient characteristics a release keeps until
every patient is in an equivalence class of at least K patients, and record what was done.

How, and why so:

1. **A pre-pass reads them first** (:func:`read_patients`). Before any object is released, the
   header of every DICOM input is read (pydicom, up to the last tag needed, those tags only)
   and put through the profile's own walk, so what is measured is the value the release would
   carry (kept, shifted, emptied or dummy); a header seen already (the same identity and values,
   as most objects of a patient are) is not walked again. Its patient is keyed as the run keys
   it (the keyring's patient pseudonym). One row per patient (:class:`medcloak.risk.Patients`).
2. **One global recoding, with the fewest generalisation steps** (:func:`choose`). Each
   quasi-identifier has a ladder (:data:`LADDERS`): Patient's Age to 5-, 10- and 20-year bands,
   Patient's Size to 5, 10 and 20 cm ranges, Patient's Weight to 5, 10 and 20 kg ranges, then
   suppressed; a categorical one (sex, ethnic group, body part, manufacturer, model,
   institution) kept or suppressed (emptied for everyone). The recodings are tried by their
   total number of steps; the first that leaves at most :data:`SUPPRESSION_BUDGET` of the
   patients in classes smaller than K wins (fewest such patients, then fewest attributes
   suppressed whole, breaking ties). Global: the same value becomes the same band for every
   patient, so the release stays consistent.
3. **Suppression as a last resort.** The quasi-identifiers of the patients still in classes
   smaller than K are emptied; they then share the class of patients with none, which must
   itself hold K (a recoding for which it would not is not chosen).
4. **The plan travels to the workers** in the DICOM handler's settings (:class:`Plan`, frozen,
   picklable, small: levels, the suppressed patients' pseudonyms, and the inputs the pre-pass
   could not read) and is applied to every released data set after the profile (:func:`apply`):
   an age band as its lower bound (``040Y`` stands for 40 to 44 years; 90 and over are one
   band), a size or weight as its range's midpoint (``1.725`` for 1.70 to 1.75 m), every value
   valid for its VR. An input whose header the pre-pass could not read is quarantined: its
   characteristics were not counted.
5. **It is documented** in the release's ``DEIDENTIFICATION.json``/``.txt`` and the audit's
   ``run.json`` (:meth:`Plan.describe`): the levels chosen and the counts (patients, patients
   suppressed), never a patient.
6. **It is checked on what was released** (:func:`released`): a patient all of whose objects
   were quarantined leaves a class the pre-pass counted them in. The run measures the classes
   of the patients it released; if one is smaller than K, the documentation says k-anonymity
   was not met and the command warns (the run does not undo what it released: a curator fixes
   the quarantined objects and runs again, or releases without them knowingly).

Dates are not generalised here: the study year is a quasi-identifier only when long dates are
kept, and recoding one date would break the intervals between an object's dates; the date
options govern them. ``StudyYear`` is therefore left out of the run's quasi-identifiers (the
report still measures it). Only DICOM objects are read and generalised: the other formats'
characteristics are not patient data of this kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from .risk import MISSING, Patients, canonical, class_sizes, values

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

    from .model import Source
    from .pseudonym import Keyring
    from .rules.profile import Profile

#: the quasi-identifiers the run generalises, with their tags
TAGS = {
    "PatientSex": 0x00100040, "PatientAge": 0x00101010, "PatientSize": 0x00101020,
    "PatientWeight": 0x00101030, "EthnicGroup": 0x00102160, "BodyPartExamined": 0x00180015,
    "Manufacturer": 0x00080070, "ManufacturerModelName": 0x00081090, "InstitutionName": 0x00080080,
}
#: each one's ladder: the levels above 0 (kept as it is); the last is always suppression
LADDERS: dict[str, tuple[str, ...]] = {
    "PatientAge": ("5-year bands", "10-year bands", "20-year bands", "suppressed"),
    "PatientSize": ("5 cm ranges", "10 cm ranges", "20 cm ranges", "suppressed"),
    "PatientWeight": ("5 kg ranges", "10 kg ranges", "20 kg ranges", "suppressed"),
    **{a: ("suppressed",) for a in ("PatientSex", "EthnicGroup", "BodyPartExamined", "Manufacturer",
                                    "ManufacturerModelName", "InstitutionName")},
}
#: band widths by level: years, millimetres, grams
WIDTHS = {"PatientAge": (5, 10, 20), "PatientSize": (50, 100, 200), "PatientWeight": (5000, 10000, 20000)}
#: ages at and over this are one band
AGE_TOP = 90
#: the share of patients whose characteristics may be suppressed, at most, before a recoding
#: is passed over for a coarser one
SUPPRESSION_BUDGET = 0.05
#: what the pre-pass reads of a header besides the quasi-identifiers: the patient's identity
#: (see medcloak.formats.dicom.patient_identity), the character set, the study date
IDENTITY_TAGS = (0x00080005, 0x00100010, 0x00100020, 0x00100021, 0x00100030, 0x0020000D, 0x00080016, 0x00080020)


def recode(attr: str, value: str, level: int) -> str:
    """``value`` of ``attr`` at ``level`` of its ladder; MISSING when suppressed or when a value
    to band is no number (a band cannot be told from it)."""
    if level <= 0 or value == MISSING:
        return value
    ladder = LADDERS[attr]
    if level >= len(ladder):
        return MISSING
    width = WIDTHS[attr][level - 1]
    if attr == "PatientAge":
        years = _age_years(value)
        if years is None:
            return MISSING
        return f"{min(years, AGE_TOP) // width * width:03d}Y"
    try:
        number = float(value)
    except ValueError:
        return MISSING
    if not (0 <= number < 1e6):
        return MISSING
    unit = round(number * 1000)  # millimetres, grams
    low = unit // width * width
    return _ds((low + width / 2) / 1000)


def _age_years(value: str) -> int | None:
    """Whole years of an AS value (``040Y``, ``003M``, ``010W``, ``020D``)."""
    text = value.strip().upper()
    if len(text) != 4 or not text[:3].isdigit() or text[3] not in "DWMY":
        return None
    n = int(text[:3])
    return {"Y": n, "M": n // 12, "W": n * 7 // 365, "D": n // 365}[text[3]]


def _ds(number: float) -> str:
    """A DS value (at most 16 characters) without trailing zeros."""
    text = f"{number:.4f}".rstrip("0").rstrip(".")
    return text[:16]


def _text(ds: Dataset, tag: int) -> str:
    elem = ds.get_item(tag)
    if elem is None or elem.value is None:
        return ""
    value = elem.value
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v).strip() for v in value)
    return str(value).strip().strip("\x00").strip()


def released_qi(ds: Dataset) -> dict[str, str]:
    """The quasi-identifiers of a (released or walked) data set, as the review record names them
    (:data:`medcloak.review_record.QUASI_IDENTIFIERS`): blank ones left out; ``StudyYear`` from
    Study Date."""
    out = {attr: _text(ds, tag) for attr, tag in TAGS.items()}
    date = _text(ds, 0x00080020)
    if len(date) >= 4 and date[:4].isdigit():
        out["StudyYear"] = date[:4]
    return {k: v for k, v in out.items() if v}


@dataclass(frozen=True)
class Plan:
    """A chosen recoding: ``levels`` ((attribute, level) for every quasi-identifier the release
    carries), the pseudonyms of the patients whose characteristics are suppressed, the inputs
    the pre-pass could not read (quarantined), and counts for the documentation."""

    k: int
    levels: tuple[tuple[str, int], ...]
    suppressed: frozenset[str] = frozenset()
    unread: frozenset[str] = frozenset()
    patients: int = 0
    objects: int = 0
    k_before: int = 0
    k_after: int = 0
    below_before: int = 0
    steps: int = 0
    candidates: int = 0
    #: after the run: the smallest class among the patients released, and how many of them are
    #: in classes smaller than k (None before; see :func:`released`)
    k_released: int | None = None
    below_released: int | None = None

    def level(self, attr: str) -> int:
        return dict(self.levels).get(attr, 0)

    def describe(self) -> dict[str, Any]:
        """What the release's documentation and the audit's run record say: counts only."""
        return {
            "k": self.k,
            "quasi_identifiers": {a: ("kept as released" if lvl == 0 else LADDERS[a][lvl - 1]) for a, lvl in self.levels},
            "generalisation_steps": self.steps,
            "patients": self.patients,
            "patients_suppressed": len(self.suppressed),
            "smallest_class_before": self.k_before,
            "patients_below_k_before": self.below_before,
            "smallest_class_after": self.k_after,
            **({} if self.k_released is None else {
                "smallest_class_released": self.k_released,
                "patients_below_k_released": self.below_released,
            }),
            "age_band": "an age band is written as its lower bound (040Y: 40 to 44 years at 5-year bands); "
                        f"{AGE_TOP} and over are one band",
            "ranges": "a size or weight range is written as its midpoint (1.725 m: 1.70 to 1.75 m)",
            "suppressed": "a suppressed quasi-identifier is emptied",
            "not_generalised": "dates (the study year) follow the date options; formats other than DICOM",
        }

    def sentence(self) -> str:
        changed = [f"{a} to {LADDERS[a][lvl - 1]}" for a, lvl in self.levels if lvl]
        over = ", ".join(a for a, _ in self.levels) or "no kept patient characteristic"
        done = (f"generalised: {', '.join(changed) or 'nothing'}; characteristics of {len(self.suppressed)} of "
                f"{self.patients} patients suppressed.")
        if self.below_released:
            return (f"k-anonymity NOT met: {self.below_released} released patients are in classes smaller than "
                    f"{self.k} over {over} (smallest {self.k_released}): objects of other patients of their "
                    f"classes were not released; {done}")
        return (f"k-anonymity: every patient is in a class of at least {self.k} patients over {over} "
                f"(smallest class {self.k_after if self.k_released is None else self.k_released}); {done}")


def read_patients(sources: Iterable[Source], profile: Profile, keyring: Keyring) -> tuple[Patients, set[str]]:
    """The pre-pass: one row per patient (keyed by the patient's pseudonym) of the
    quasi-identifiers the release would carry, and the inputs whose header could not be read."""
    import warnings

    from pydicom.filereader import read_partial

    from .formats.dicom import MEDIA_DIRECTORY, patient_identity
    from .formats.dicom_check import check_inflation
    from .rules.actions import Context, Walker

    from .review_record import quasi_identifiers

    # the quasi-identifiers the report measures: device and institution only where kept on purpose
    patients = Patients(a for a in quasi_identifiers(profile.options) if a in TAGS)
    unread: set[str] = set()
    tags = sorted(set(IDENTITY_TAGS) | set(TAGS.values()))
    last = max(tags)
    # the walk's result of headers seen already (the same identity and values): most objects of
    # a patient share them, so the profile walks each once
    walked: dict[tuple[Any, ...], dict[str, str]] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom's warnings quote values
        for source in sources:
            if source.format not in ("dicom", "dicom-slide"):
                continue
            try:
                check_inflation(source.path)
                with open(source.path, "rb") as fh:  # the header up to the last tag needed
                    ds = read_partial(fh, stop_when=lambda tag, vr, length: tag > last, force=True,
                                      specific_tags=tags)
                meta = getattr(ds, "file_meta", None)
                if meta is not None and str(meta.get("MediaStorageSOPClassUID", "")) == MEDIA_DIRECTORY:
                    continue  # a DICOMDIR is never released
                identity = patient_identity(ds)
                seen = (identity, *(_text(ds, t) for t in tags if t not in (0x0020000D, 0x00080016)))
                qi = walked.get(seen)
                if qi is None:
                    days, seconds = keyring.date_offset(identity)
                    walker = Walker(Context(profile, keyring, identity, days, seconds))
                    if profile.strict:  # the IOD's allow-list first, as the run does
                        from .rules.strict import prune

                        prune(ds, profile, walker._remove)
                    walker.walk(ds)
                    walker.finish()
                    qi = walked[seen] = released_qi(ds)
            except Exception:  # noqa: BLE001 - not counted: the run quarantines it (see apply)
                unread.add(str(source.path))
                continue
            patients.add(keyring.patient_id(identity), qi)
    return patients, unread


def _columns(patients: Patients, attrs: list[str]) -> tuple[dict[tuple[str, int], Any], dict[tuple[str, int], Any]]:
    """Each attribute's patient codes at each level of its ladder, and which patients carry
    nothing of it there."""
    import numpy as np

    cols: dict[tuple[str, int], Any] = {}
    empty: dict[tuple[str, int], Any] = {}
    n = len(patients.rows)
    for attr in attrs:
        for level in range(len(LADDERS[attr]) + 1):
            index: dict[str, int] = {}
            col = np.empty(n, dtype=np.int64)
            for i, row in enumerate(patients.rows.values()):
                col[i] = index.setdefault(canonical(recode(attr, v, level) for v in values(row[attr])), len(index))
            cols[(attr, level)] = col
            empty[(attr, level)] = col == index.get(MISSING, -1)
    return cols, empty


def choose(patients: Patients, k: int, unread: Iterable[str] = (), budget: float = SUPPRESSION_BUDGET) -> Plan:
    """The recoding with the fewest steps that leaves at most ``budget`` of the patients to
    suppress (see the module's description). Raises :class:`UsageError` when there are fewer
    than ``k`` patients (no recoding can help)."""
    import dataclasses

    import numpy as np

    from .errors import UsageError

    n = len(patients.rows)
    if 0 < n < k:
        raise UsageError(f"--k-anonymity {k}: the inputs hold {n} patients, fewer than {k}")
    attrs = [a for a in TAGS if a in patients.carried]
    cols, nothing = _columns(patients, attrs)
    names = list(patients.rows)
    base = class_sizes([cols[(a, 0)] for a in attrs], n)
    k_before = int(base.min()) if n else 0
    below_before = int((base < k).sum())
    ladders = [range(len(LADDERS[a]) + 1) for a in attrs]
    nodes = sorted(product(*ladders), key=lambda lv: (sum(lv), lv))
    allowed = int(budget * n)
    best: tuple[tuple[int, int, int, tuple[int, ...]], Any] | None = None
    tried = 0
    for levels in nodes:
        steps = sum(levels)
        if best is not None and steps > best[0][0]:
            break
        tried += 1
        columns = [cols[(a, lvl)] for a, lvl in zip(attrs, levels)]
        sizes = class_sizes(columns, n)
        below = sizes < k
        count = int(below.sum())
        if count > allowed:
            continue
        if count:
            # the suppressed join the patients with nothing carried; that class must hold k
            empty = np.ones(n, dtype=bool)
            for attr, lvl in zip(attrs, levels):
                empty &= nothing[(attr, lvl)]
            if int((empty | below).sum()) < k:
                continue
        whole = sum(lvl == len(LADDERS[a]) for a, lvl in zip(attrs, levels))
        key = (steps, count, whole, levels)
        if best is None or key < best[0]:
            best = (key, below)
    if best is None:  # n == 0: nothing to generalise
        return Plan(k, (), unread=frozenset(unread), candidates=tried)
    (steps, count, _, levels), below = best
    suppressed = frozenset(names[i] for i in np.flatnonzero(below).tolist())
    plan = Plan(k, tuple(zip(attrs, levels)), suppressed, frozenset(unread), patients=n, objects=patients.objects,
                k_before=k_before, below_before=below_before, steps=steps, candidates=tried)
    return dataclasses.replace(plan, k_after=measure_plan(patients, plan))


def recoded(patients: Patients, plan: Plan) -> Patients:
    """``patients`` as the plan releases them."""
    out = Patients(patients.attributes)
    for name, row in patients.rows.items():
        cells: dict[str, set[str]] = {}
        for attr in patients.attributes:
            lvl = plan.level(attr) if name not in plan.suppressed else len(LADDERS.get(attr, ())) + 1
            cells[attr] = {recode(attr, v, lvl) if attr in LADDERS else v for v in values(row[attr])}
        out.rows[name] = cells  # type: ignore[assignment]
        out.carried |= {a for a, vs in cells.items() if vs - {MISSING}}
    out.objects = patients.objects
    return out


def measure_plan(patients: Patients, plan: Plan) -> int:
    """The smallest class once the plan is applied (over the attributes it covers)."""
    after = recoded(patients, plan)
    attrs = [a for a, _ in plan.levels]
    from .risk import codes

    sizes = class_sizes([codes(after, a) for a in attrs], len(after.rows))
    return int(sizes.min()) if len(sizes) else 0


def released(plan: Plan, patients: Patients, kept: Iterable[str]) -> Plan:
    """``plan`` with the figures of the patients the run released (``kept``: their pseudonyms):
    a patient whose every object was quarantined or skipped leaves the class the pre-pass
    counted them in, which may then be smaller than k."""
    import dataclasses

    from .risk import codes

    kept = set(kept)
    subset = Patients(patients.attributes)
    subset.rows = {name: row for name, row in patients.rows.items() if name in kept}
    after = recoded(subset, plan)
    sizes = class_sizes([codes(after, a) for a, _ in plan.levels], len(after.rows))
    return dataclasses.replace(plan, k_released=int(sizes.min()) if len(sizes) else 0,
                               below_released=int((sizes < plan.k).sum()))


def apply(ds: Dataset, plan: Plan, patient: str, path: str, noted: dict[str, str] | None = None) -> dict[str, int]:
    """Recode the released data set ``ds`` of ``patient`` by the plan, in place; the counts of
    what was done, for the manifest. ``noted``: the review record's actions by attribute, given
    ``replaced`` (a value recoded) or ``emptied`` (suppressed) for each attribute changed. Raises :class:`DeidentificationError` for an input whose
    header the pre-pass could not read (its characteristics were not counted)."""
    from .errors import DeidentificationError

    if str(path) in plan.unread:
        raise DeidentificationError("k-anonymity: the pre-pass could not read this object's header, "
                                    "so its patient characteristics were not counted")
    suppress = patient in plan.suppressed
    changed = 0
    for attr, level in plan.levels:
        if not level and not suppress:
            continue
        tag = TAGS[attr]
        elem = ds.get_item(tag)
        if elem is None:
            continue
        value = _text(ds, tag)
        new = MISSING if suppress else recode(attr, value, level)
        if new != value:
            ds[tag].value = new
            changed += 1
            if noted is not None:
                noted[attr] = "emptied" if suppress else "replaced"
    counts: dict[str, int] = {}
    if changed:
        counts["k-anonymity-generalised"] = changed
    if suppress:
        counts["k-anonymity-suppressed"] = 1
    return counts


def patients_of(reviews: Iterable[Mapping[str, Any]]) -> Patients:
    """Rows of the quasi-identifiers the run generalises, from records ``{"patient", "qi"}``."""
    patients = Patients(TAGS)
    for review in reviews:
        patients.add_record(review)
    return patients
