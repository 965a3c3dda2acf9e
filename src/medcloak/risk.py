"""Statistical disclosure control of a release's patient characteristics: k-anonymity,
l-diversity and the attribute combinations that single patients out, measured over the
quasi-identifiers the release carries. Pure: no I/O, no pydicom; the report
(:mod:`medcloak.report.risk`) feeds it the review records of the manifest, and
``medcloak run --k-anonymity`` (:mod:`medcloak.generalise`) feeds it what the pre-pass read.

What is counted, and why:

- **One row per patient, not per object.** An attacker links a person, not a file: a patient
  with 400 images of one series is one person in an equivalence class, not 400. Objects are
  grouped by their pseudonymous ``patient`` key; an object without one is a patient of its own
  (the cautious reading: nothing says it shares a person with any other object).
- **A patient seen with several values is the set of them.** A patient whose objects carry
  ages 040Y and 041Y is represented, for Patient's Age, by the pair {040Y, 041Y}: that pair is
  what the release shows of them, and it is as identifying as the pair is rare. The set is
  written canonically as its values sorted and joined by ``|``.
- **A missing value is a category of its own** (the empty string). The absence of Patient's Age
  is visible in the release and tells patients apart as a value does; a patient whose objects
  carry an age in some and none in others has the set {"", "040Y"}. This overstates the risk
  slightly rather than understating it.
- **Only the quasi-identifiers the release carries count.** Of the requested ones (default:
  :data:`medcloak.review_record.QUASI_IDENTIFIERS`), one that no object carries with a value is
  no quasi-identifier of this release; the result says which were used and which were absent.
  The sensitive attribute, if it is also requested as a quasi-identifier, is left out of them.
- **l-diversity** is the number of distinct (patient-level) values of the sensitive attribute
  among the patients of a class.

Memory: one small row per patient (a million objects of 50,000 patients is 50,000 rows, some
20 MB for ten attributes: a value is held once however many patients carry it, a set only for
a patient seen with several), and integer code arrays of that length for the counting (numpy).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from itertools import combinations
from typing import Any, Iterable, Mapping, Sequence

#: what stands for a missing value (its own category)
MISSING = ""
#: subsets of quasi-identifiers up to this size are searched for patients they single out
MAX_SUBSET = 3

#: a patient's row: attribute -> the values its objects carry (MISSING among them when an object
#: carries none): one value as itself, several as a set (see :func:`values`)
Row = dict[str, "str | set[str]"]


def values(cell: str | set[str] | frozenset[str]) -> frozenset[str] | set[str]:
    """The set of values of a row's cell."""
    return frozenset((cell,)) if isinstance(cell, str) else cell


class Patients:
    """Rows of patients, accumulated one object at a time (:meth:`add`), bounded by the number of
    patients. ``attributes``: the attributes to keep (quasi-identifiers and the sensitive one);
    ``carried``: which of them some object carried with a value."""

    def __init__(self, attributes: Iterable[str]) -> None:
        self.attributes = tuple(dict.fromkeys(attributes))
        self.rows: dict[str, Row] = {}
        self.carried: set[str] = set()
        self.objects = 0
        self.without_patient = 0
        #: objects of no patient: without a patient key and without a value of any attribute
        #: (a dataset's description, a README): they describe nobody
        self.unattached = 0

    def add(self, patient: str | None, values: Mapping[str, Any] | None) -> None:
        """One object of ``patient`` (None or empty: a patient of its own, unless it carries no
        value of any attribute: then it is of no patient, :attr:`unattached`) carrying ``values``
        (attribute -> value; absent, None or blank: missing)."""
        self.objects += 1
        if not patient and not any(str(v).strip() for a, v in (values or {}).items()
                                   if a in self.attributes and v is not None):
            self.unattached += 1
            return
        if not patient:
            self.without_patient += 1
            patient = f"\x00object {self.without_patient}"  # cannot collide with a pseudonym
        row = self.rows.get(patient)
        if row is None:
            row = self.rows[patient] = {}
        given = values or {}
        for attr in self.attributes:
            value = given.get(attr)
            text = "" if value is None else str(value).strip()
            if text:
                self.carried.add(attr)
                text = sys.intern(text)  # one copy of "040Y" for every patient aged 40
            cell = row.get(attr)
            if cell is None:
                row[attr] = text
            elif isinstance(cell, str):
                if cell != text:
                    row[attr] = {cell, text}
            else:
                cell.add(text)

    def add_record(self, review: Mapping[str, Any] | None) -> None:
        """One object from its review record (:mod:`medcloak.review_record`): its ``patient``
        key and its ``qi`` values."""
        review = review or {}
        self.add(review.get("patient"), review.get("qi"))


def canonical(cell: Iterable[str] | str) -> str:
    """A patient's set of values of one attribute (a cell of its row, or any iterable of
    values) as one string: sorted, joined by ``|``."""
    if isinstance(cell, str):
        return cell
    return "|".join(sorted(set(cell)))


@dataclass(frozen=True)
class Risk:
    """The figures of one measurement. ``k``: the smallest class size (0 without patients);
    ``below``: patients in classes smaller than ``threshold``; ``histogram``: (class size,
    classes of that size, patients in them), by size; ``l_min`` and ``l_histogram`` ((l,
    classes)): the l-diversity of ``sensitive`` (None without one); ``uniques``: (subset of
    quasi-identifiers, patients unique on it) for every subset of up to :data:`MAX_SUBSET` of
    them, most uniques first; ``minimal``: the smallest subsets that single out a patient (no
    smaller subset within them does); ``unique_all``: patients unique on all of them."""

    patients: int
    objects: int
    without_patient: int
    quasi: tuple[str, ...]
    absent: tuple[str, ...]
    threshold: int
    k: int
    below: int
    classes: int
    histogram: tuple[tuple[int, int, int], ...]
    sensitive: str | None
    l_min: int | None
    l_histogram: tuple[tuple[int, int], ...]
    uniques: tuple[tuple[tuple[str, ...], int], ...]
    minimal: tuple[tuple[tuple[str, ...], int], ...]
    unique_all: int
    #: objects of no patient (see :attr:`Patients.unattached`)
    unattached: int = 0

    @property
    def share_below(self) -> float:
        return self.below / self.patients if self.patients else 0.0

    def verdict(self) -> str:
        """The one-line verdict."""
        if not self.patients:
            return "no released object carries a patient: nothing to measure"
        if not self.quasi:
            return (f"the release carries none of the quasi-identifiers asked for: its {self.patients} "
                    f"patients are all in one class")
        return (f"{self.below} of {self.patients} patients ({100 * self.share_below:.1f} %) are in classes "
                f"smaller than k={self.threshold}; the smallest class has {self.k} "
                f"(over {', '.join(self.quasi)})")


def codes(patients: Patients, attr: str) -> Any:
    """The patients' canonical values of ``attr`` as integer codes (numpy int64), in the
    order of ``patients.rows``."""
    import numpy as np

    index: dict[str, int] = {}
    out = np.empty(len(patients.rows), dtype=np.int64)
    for i, row in enumerate(patients.rows.values()):
        out[i] = index.setdefault(canonical(row[attr]), len(index))
    return out


def class_ids(columns: Sequence[Any], n: int) -> Any:
    """Each patient's equivalence class over ``columns`` (integer code arrays), as dense
    integers: the columns combined in mixed radix while the key fits 62 bits, re-numbered
    whenever it would not (so no key overflows), and re-numbered at the end."""
    import numpy as np

    key = np.zeros(n, dtype=np.int64)
    span = 1
    for col in columns:
        width = int(col.max()) + 1 if n else 1
        if span * width >= 1 << 62:
            key = np.unique(key, return_inverse=True)[1].astype(np.int64).reshape(-1)
            span = int(key.max()) + 1 if n else 1
        key = key * width + col
        span *= width
    return np.unique(key, return_inverse=True)[1].astype(np.int64).reshape(-1)


def class_sizes(columns: Sequence[Any], n: int) -> Any:
    """The size of each patient's class over ``columns``."""
    import numpy as np

    ids = class_ids(columns, n)
    return np.bincount(ids)[ids] if n else np.zeros(0, dtype=np.int64)


def used_quasi(patients: Patients, quasi: Iterable[str], sensitive: str | None = None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(used, absent): the requested quasi-identifiers some object carries, and the others."""
    asked = [q for q in dict.fromkeys(quasi) if q != sensitive]
    return tuple(q for q in asked if q in patients.carried), tuple(q for q in asked if q not in patients.carried)


def measure(patients: Patients, quasi: Iterable[str], threshold: int = 5, sensitive: str | None = None,
            max_subset: int = MAX_SUBSET) -> Risk:
    """The figures of ``patients`` over ``quasi`` (those carried), with classes smaller than
    ``threshold`` counted, and the l-diversity of ``sensitive``."""
    import numpy as np

    n = len(patients.rows)
    used, absent = used_quasi(patients, quasi, sensitive)
    cols = {q: codes(patients, q) for q in used}
    ids = class_ids([cols[q] for q in used], n)
    counts = np.bincount(ids) if n else np.zeros(0, dtype=np.int64)
    sizes = counts[ids] if n else counts
    hist: dict[int, int] = {}
    for c in counts.tolist():
        hist[c] = hist.get(c, 0) + 1
    histogram = tuple((size, m, size * m) for size, m in sorted(hist.items()))
    l_min: int | None = None
    l_hist: tuple[tuple[int, int], ...] = ()
    if sensitive is not None and n:
        if sensitive not in patients.attributes:
            raise ValueError(f"the sensitive attribute {sensitive!r} was not accumulated")
        sens = codes(patients, sensitive)
        pairs = np.unique(np.stack([ids, sens], axis=1), axis=0)
        ls = np.bincount(pairs[:, 0], minlength=len(counts))
        l_min = int(ls.min())
        lh: dict[int, int] = {}
        for v in ls.tolist():
            lh[v] = lh.get(v, 0) + 1
        l_hist = tuple(sorted(lh.items()))
    uniques: list[tuple[tuple[str, ...], int]] = []
    for size in range(1, min(max_subset, len(used)) + 1):
        for subset in combinations(used, size):
            u = int((class_sizes([cols[q] for q in subset], n) == 1).sum()) if n else 0
            uniques.append((subset, u))
    minimal: list[tuple[tuple[str, ...], int]] = []
    for subset, u in uniques:  # by size: a subset is minimal when none of its parts singles out
        if u and not any(set(m) < set(subset) for m, _ in minimal):
            minimal.append((subset, u))
    order = {s: i for i, (s, _) in enumerate(uniques)}
    uniques.sort(key=lambda su: (-su[1], len(su[0]), order[su[0]]))
    return Risk(
        patients=n, objects=patients.objects, without_patient=patients.without_patient,
        unattached=patients.unattached, quasi=used,
        absent=absent, threshold=threshold, k=int(counts.min()) if n else 0,
        below=int((sizes < threshold).sum()) if n else 0, classes=len(counts), histogram=histogram,
        sensitive=sensitive, l_min=l_min, l_histogram=l_hist, uniques=tuple(uniques), minimal=tuple(minimal),
        unique_all=int((sizes == 1).sum()) if n else 0,
    )


def measure_records(reviews: Iterable[Mapping[str, Any] | None], quasi: Iterable[str] | None = None,
                    threshold: int = 5, sensitive: str | None = None) -> Risk:
    """:func:`measure` of review records (None for the default quasi-identifiers)."""
    from .review_record import QUASI_IDENTIFIERS

    quasi = tuple(QUASI_IDENTIFIERS if quasi is None else quasi)
    patients = Patients(quasi + ((sensitive,) if sensitive else ()))
    for review in reviews:
        patients.add_record(review)
    return measure(patients, quasi, threshold, sensitive)
