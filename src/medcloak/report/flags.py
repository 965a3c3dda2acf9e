"""Which kept text values look identifying, for the report's pooled text review: person names,
dates, IDs, phone numbers, e-mail and postal addresses. It is a curator's safety net, not a
detector the release relies on (the profile decides what stays): it must catch the usual shapes
of these values and stay quiet on the clean descriptors real files carry ("CHEST", "T1 MPRAGE
SAG", "HEAD^ROUTINE", "ORIGINAL\\PRIMARY"), or the curator learns to ignore it.

Shapes are regular expressions over the value; person names also use the attribute (a DICOM
attribute of VR PN is a person's name whatever its value, found in pydicom's dictionary, imported
lazily) and two word lists: words of imaging and of clinical departments and vendors that are not
names (``HEAD^ROUTINE`` is a study description, ``DOE^JOHN`` a name), and common given names,
which make an all-capitals ``JOHN SMITH`` a name. :func:`kinds` returns every kind a value looks
like, in :data:`KINDS` order.
"""

from __future__ import annotations

import functools
import re

KINDS = ("name", "date", "id", "phone", "email", "address")

_MONTH = (r"(?:jan(?:uary|vier|uar)?|feb(?:ruary|ruar)?|f[ée]vr(?:ier)?|mar(?:ch|s)?|m[äa]rz|apr(?:il)?|"
          r"avr(?:il)?|ma[iy]|mei|june?|juin|juni|july?|juil(?:let)?|juli|aug(?:ust)?|ao[uû]t|"
          r"sep(?:t(?:ember|embre)?)?|o[ck]t(?:ober|obre)?|nov(?:ember|embre)?|de[cz](?:ember|embre)?|d[ée]c)")
_DATE_SHAPES = (
    # ISO and year-first: 2023-04-05, 2023/4/5, 2023.04.05
    r"(?<![\d.])(?:19|20)\d\d([-/.])(?:0?[1-9]|1[0-2])\1(?:0?[1-9]|[12]\d|3[01])(?![\d])",
    # day or month first with a four-digit year: 05/04/2023, 4-5-2023, 05.04.2023
    r"(?<![\d.])\d{1,2}([-/.])\d{1,2}\2(?:19|20)\d\d(?![\d.])",
    # two-digit year, slashes or dashes only: 05/04/23
    r"(?<![\d./-])\d{1,2}([-/])\d{1,2}\3\d\d(?![\d/-])",
    # 5 April 2023, 5th of April, 2023, 05-APR-2023, 5.Apr.23
    r"(?<!\d)\d{1,2}(?:st|nd|rd|th|er)?\.?[\s.-]*(?:of\s+)?" + _MONTH + r"\.?,?[\s.-]*(?:19|20)?\d\d(?!\d)",
    # April 5, 2023 ; Apr 5th 2023 ; April 2023
    r"\b" + _MONTH + r"\.?\s+(?:\d{1,2}(?:st|nd|rd|th)?,?\s+)?(?:19|20)\d\d(?!\d)",
)
# dates written as dates (an ID check skips them)
_WRITTEN_DATES = re.compile("|".join(_DATE_SHAPES), re.IGNORECASE)
# and DICOM DA and DT: 20230405, 20230405120000.000 (a digit run: an ID too)
_DATES = re.compile("|".join(_DATE_SHAPES + (
    r"(?<![\d.])(?:19|20)\d\d(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])(?:\d{2,6}(?:\.\d{1,6})?)?(?!\d)",)),
    re.IGNORECASE)

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")

_PHONES = re.compile("|".join((
    # international: +44 20 7946 0018, 0049-30-1234567, +1 (555) 123-4567
    r"(?<![\w.+])\+\d{1,3}[\s.-]?(?:\(0?\d{0,4}\)[\s.-]?)?\d{1,4}(?:[\s.-]?\d{2,5}){1,4}(?![\w.])",
    r"(?<![\w.+-])00\d{1,3}(?:[\s.-]\(?\d{1,8}\)?){2,5}(?![\w.])",
    # (555) 123-4567, (020) 7946 0018
    r"\(\d{2,5}\)\s?\d{3,4}[\s-]?\d{3,4}(?![\w.])",
    # trunk prefix 0: 020 7946 0018, 030-1234567, 06-12345678
    r"(?<![\w.])0\d{1,4}[\s-]\d{3,4}[\s-]?\d{2,4}(?![\w.])",
    # North American: 555-123-4567, 555.123.4567
    r"(?<![\w.])\d{3}([-.])\d{3}\1\d{4}(?![\w.])",
    # a label then digits: Tel: 1234 5678, phone 12345678
    r"\b(?:tel|t[ée]l[ée]phone|phone|fax|telefon|mobile?|mob|pager|bleep|ext)\b\.?:?\s*\+?\(?\d[\d\s().-]{4,}",
)), re.IGNORECASE)

_STREET_WORDS = (r"(?:street|st|road|rd|avenue|ave|lane|ln|drive|dr|boulevard|blvd|way|court|ct|place|pl|"
                 r"square|sq|terrace|close|crescent|highway|hwy|parkway|pkwy|row|gardens|grove|mews|walk)")
_ADDRESSES = [
    # 221B Baker Street, 12 High St., 1600 Pennsylvania Avenue NW
    re.compile(r"(?<![\w.])\d{1,5}[A-Za-z]?,?\s+(?:[A-Za-z'.-]+\s+){1,4}" + _STREET_WORDS + r"\b\.?", re.IGNORECASE),
    # Hauptstraße 12, Kalverstraat 92, Rosenweg 3a
    re.compile(r"\b[A-ZÄÖÜ][a-zäöüß]+(?:stra(?:ß|ss)e|str\.|weg|allee|gasse|platz|laan|straat|gracht|plein|"
               r"ring|damm|kade|singel|dreef)\s*\d{1,4}[a-z]?\b"),
    # 12 rue de la Paix, 3bis avenue Foch
    re.compile(r"(?<![\w.])\d{1,4}(?:\s?(?:bis|ter))?,?\s+(?:rue|avenue|av\.|boulevard|bd|chemin|all[ée]e|quai|"
               r"impasse)\s+\w", re.IGNORECASE),
    # via Roma 12, calle Mayor 5, rua Augusta 10
    re.compile(r"\b(?:via|viale|piazza|corso|calle|avenida|plaza|rua|travessa)\s+[^\d\\^]{2,40}?\s\d{1,4}\b",
               re.IGNORECASE),
    # postcodes: UK (SW1A 1AA), US ZIP+4 and state ZIP, Dutch (1012 AB), German-style 12345 Berlin, Canada
    re.compile(r"\b(?:[A-Z]{1,2}\d[A-Z\d]?|GIR)\s+\d[ABD-HJLNP-UW-Z]{2}\b"),
    re.compile(r"(?<![\d.-])\d{5}-\d{4}(?![\d.-])"),
    re.compile(r"\b(?:A[KLRZ]|C[AOT]|D[CE]|FL|GA|HI|I[ADLN]|K[SY]|LA|M[ADEINOST]|N[CDEHJMVY]|O[HKR]|PA|RI|"
               r"S[CD]|T[NX]|UT|V[AT]|W[AIVY])\s+\d{5}(?!\d)"),
    re.compile(r"(?<![\w.])[1-9]\d{3}\s?(?!MS|MM|CM|KV|MA|HZ|SA|SD|SS|MB|KB|GB|BQ)[A-Z]{2}\b"),
    re.compile(r"(?<![\w.])(?:[A-Z]{1,2}-)?\d{5}\s+[A-ZÄÖÜ][a-zäöüßéè]{2,}(?:[\s-][A-Z][a-zäöüßéè]+)?\b"),
    re.compile(r"\b[A-Z]\d[A-Z]\s\d[A-Z]\d\b"),
    # a number, then a country at the end of an address line
    re.compile(r"\d.*,\s*(?:Austria|Belgium|Canada|Denmark|England|Finland|France|Germany|Ireland|Italy|"
               r"Netherlands|Norway|Portugal|Scotland|Spain|Sweden|Switzerland|Wales|United Kingdom|UK|USA|"
               r"U\.S\.A\.|United States|Australia|Japan|China|India|Brazil)\s*\.?$", re.IGNORECASE),
]
# one pattern for all, each part with its own case rule (one search instead of ten)
_ADDRESS = re.compile("|".join((f"(?i:{p.pattern})" if p.flags & re.IGNORECASE else f"(?:{p.pattern})")
                               for p in _ADDRESSES))
_DIGIT = re.compile(r"\d")
_PARTS = re.compile(r"[\\=]")  # a DICOM value's values, and a person name's component groups

_ID_LABEL = re.compile(r"\b(?:MRN|URN|NHS|SSN|BSN|ID|acc(?:ession)?|case|pat(?:ient)?|hosp(?:ital)?|"
                       r"record|chart)\b\.?\s*(?:no\.?|nr\.?|number|num|#|id)?\s*[:#=]?\s*[A-Z]{0,3}-?\d{3,}",
                       re.IGNORECASE)
_DIGIT_RUN = re.compile(r"(?<![\d.])\d{6,}(?![\d.])")
_UID = re.compile(r"(?<![\d.])\d+(?:\.\d+){5,}(?![\d.])")
_GROUPED_DIGITS = re.compile(r"(?<![\w.])\d{2,}(?:[-/]\d{2,}){1,4}(?![\w.])")
_FOUR_DIGITS = re.compile(r"\d{4}")
#: medcloak's own patient pseudonym (:meth:`medcloak.pseudonym.Keyring.patient_id`): not an identifier
_PSEUDONYM = re.compile(r"^MC[A-Z2-7]{14}$")
#: coded concepts' attributes: codes and their meanings come from a vocabulary, not a person
CODED = frozenset(("CodeValue", "LongCodeValue", "URNCodeValue", "CodingSchemeDesignator", "CodingSchemeVersion",
                   "CodeMeaning", "ContextIdentifier", "MappingResource", "MappingResourceName",
                   "CodingSchemeName", "ContextGroupVersion"))
#: attributes whose values are defined terms of the standard, never flagged by their value
DEFINED_TERMS = frozenset(("SpecificCharacterSet", "TransferSyntaxUID", "SOPClassUID", "ImageType"))
_TOKEN_SPLIT = re.compile(r"[\s_^\\/,;:=()\[\]{}|\"']+")
_NOT_ID_TOKEN = re.compile(
    r"^(?:\d+(?:x\d+)+|[\d.]+(?:mm|cm|ms|us|s|kv|kvp|ma|mas|t|deg|hz|khz|mhz|mb|kb|gb|px|dpi|bit|bits|fps))$",
    re.IGNORECASE)

#: words that are not people's names: anatomy, imaging, clinical departments, vendors
VOCABULARY = frozenset("""
head neck brain skull face orbit orbits sinus sinuses chest thorax lung lungs heart cardiac coronary abdomen
abdominal pelvis pelvic spine cervical thoracic lumbar sacrum knee hip hips shoulder ankle foot feet hand hands wrist
elbow arm leg legs breast breasts liver kidney kidneys renal prostate bladder bowel colon body whole wb extremity
extremities upper lower left right bilateral bil lt rt ap pa lat lateral oblique axial sagittal coronal sag cor ax tra
transverse routine standard protocol study series scan scans exam examination view views image images localizer
localiser scout survey topogram plain contrast pre post with without w wo and or of the for in to on at a an delayed
early late arterial venous portal phase phases dynamic perfusion diffusion weighted flair mprage tse fse spin echo
gradient recon reconstruction reformat reformats mip mpr minip volume vol soft tissue bone lung window thin thick
slice slices high low resolution res fast quick full short long helical spiral sequential angio angiography cta mra
venogram dwi adc swi dti bold fmri rest resting task functional anatomical anatomy screening follow followup up
acute chronic trauma stroke tumor tumour mass lesion pain emergency er ed urgent elective primary original secondary
derived other none unknown research test phantom qa qc calibration original primary localizer monitoring mammo
mammography mammogram tomosynthesis ultrasound us echo doppler xr xray x ray dx cr ct mr mri pet spect nm rf xa dr
px rg sc ot pt sr io op general medical systems healthcare healthineers health siemens philips ge toshiba canon
hitachi fujifilm fuji agfa kodak carestream hologic varian elekta konica minolta samsung esaote mindray shimadzu
inc ltd gmbh corp co llc bv nv ag sa plc srl kg spa oy ab as
planmed sectra bruker neusoft united imaging uih vital images hospital clinic clinical centre center university
universitair medisch centrum institute department dept radiology imaging nuclear medicine diagnostic diagnostics
service services unit room station console scanner system workstation site lab laboratory pathology histology
slide stain tissue specimen sample microscopy whole slide aperio leica hamamatsu zeiss olympus ventana 3dhistech
mirax openslide philips sectra huron digital image images label macro thumbnail overview baseline tumor normal
cancer carcinoma biopsy resection frozen section block case sub ses run acq rec dir echo part anat func dwi fmap
perf t1w t2w bold sbref magnitude phase fieldmap epi ge se ir stir fiesta ssfp bssfp haste true fisp trufi vibe
lava starvibe mdixon dixon fat water sat suppression suppressed in opp out inphase outphase fs nfs fatsat cine
tagging flow quantitative mapping map t1map t2map ecv lge late gadolinium enhancement gad gd contrast native
non enhanced unenhanced plus minus iso isotropic 3d 2d mpr vr volume rendering summary report key object selection
presentation state dose structured secondary capture document encapsulated waveform raw data private public
anonymous anonymized anonymised deidentified removed redacted cleaned empty yes no true false male female
adult child pediatric paediatric infant neonatal neonate ct abdomen pelvis brain head routine
abd abdo pel cap kub ivp ugi ercp mrcp mrv ctv iv po oral rectal neuro msk gi gu ent ob gyn obgyn peds paeds ped
dexa dxa fluoro fluoroscopy mpi mibg fdg psma pet/ct petct bone scan sestamibi thyroid parathyroid renogram dmsa
c t l cspine tspine lspine sinus iac iacs tmj orbits pituitary sella temporal facial mandible maxilla dental
carotid carotids aorta aortic runoff run-off pulmonary pe embolism calcium score scoring ccta cardiac heart valve
sternum rib ribs clavicle scapula humerus forearm femur tibia fibula calcaneus toe toes finger fingers thumb
hindfoot forefoot shoulder joint joints arthrogram myelogram cisternogram venography
w wo wwo w/o w/wo with without pre post contrast iv oral enhanced
r l rt lt bilat both side sided
""".split())

#: common given names (English, Dutch, German, French, Spanish, Italian), for names in capitals
GIVEN_NAMES = frozenset("""
james john robert michael william david richard joseph thomas charles christopher daniel matthew anthony mark donald
steven paul andrew joshua kenneth kevin brian george timothy ronald edward jason jeffrey ryan jacob gary nicholas eric
jonathan stephen larry justin scott brandon benjamin samuel gregory alexander frank patrick raymond jack dennis jerry
tyler aaron jose adam nathan henry douglas zachary peter kyle walter ethan jeremy harold keith christian roger noah
gerald carl terry sean austin arthur lawrence jesse dylan bryan joe jordan billy bruce albert willie gabriel logan
alan juan wayne roy ralph randy eugene vincent russell elijah louis bobby philip johnny mary patricia jennifer linda
elizabeth barbara susan jessica sarah karen lisa nancy betty margaret sandra ashley kimberly emily donna michelle
carol amanda dorothy melissa deborah stephanie rebecca sharon laura cynthia kathleen amy angela shirley anna brenda
pamela emma nicole helen samantha katherine christine debra rachel carolyn janet catherine maria heather diane ruth
julie olivia joyce virginia victoria kelly lauren christina joan evelyn judith megan andrea cheryl hannah jacqueline
martha gloria teresa ann sara madison frances kathryn janice jean abigail alice judy sophia grace denise amber doris
marilyn danielle beverly isabella theresa diana natalie brittany charlotte marie kayla alexis lori jan jans johannes
hendrik pieter piet kees klaas willem joost maud sanne anouk lieke daan bram sem lucas luuk thijs jeroen bas ruud
wouter gerrit henk bert marieke annemarie ingrid els anke hans klaus jurgen jürgen wolfgang uwe dieter helmut gunter
stefan andreas markus tobias lukas leon felix maximilian sabine ursula monika petra gabriele birgit katrin julia
jean pierre michel philippe alain jacques francois françois nicolas laurent julien sebastien sébastien antoine
camille manon chloe chloé lea léa sophie nathalie isabelle sylvie valerie valérie celine céline juan carlos jose josé
luis javier miguel antonio manuel francisco pedro pablo sergio alejandro carmen lucia lucía elena rosa marco giuseppe
giovanni francesco alessandro luca matteo lorenzo andrea giulia chiara francesca sofia martina alessia federica
""".split())

_ALPHA_WORDS = re.compile(r"^(?:[^\W\d_]|['’.\- ])+$")  # letters of any script, and name punctuation
#: a capitalised name word: Smith, O'Brien, McDonald, Jean-Luc, Müller
_NAME_WORD = r"(?:Ma?c)?[A-ZÀ-ÖØ-Þ][a-zß-öø-ÿ]*(?:['’-][A-ZÀ-ÖØ-Þ]?[a-zß-öø-ÿ]+)*"
_TITLE = re.compile(r"\b(?:Dr|Mr|Mrs|Ms|Miss|Mx|Prof|Herr|Frau|Mme|Mlle|Dott|Sr|Sra|Sig|Dhr|Mevr)\.?\s+"
                    + _NAME_WORD)
_SURNAME_COMMA = re.compile(r"^\s*((?:Ma?c)?[A-ZÀ-ÖØ-Þ][A-Za-zß-öø-ÿ'’-]+),"
                            r"\s*([A-Z][a-zà-ÿ'’-]*\.?(?:\s*[A-Z][a-zà-ÿ'’-]*\.?){0,2})\s*$")
_TITLE_CASE = re.compile(rf"^{_NAME_WORD}(?:\s+[A-Z]\.?)?(?:\s+(?:van|von|de|der|den|da|di|le|la|du|del|ten|ter)?"
                         rf"\s*{_NAME_WORD}){{1,2}}$")
_INITIAL_SURNAME = re.compile(rf"^\s*[A-Z]\.\s*(?:[A-Z]\.\s*)?{_NAME_WORD}\s*$")
_CAPITALS = re.compile(r"^[A-ZÀ-ÖØ-Þ'’-]+(?:\s+[A-Z]\.?)?(?:\s+[A-ZÀ-ÖØ-Þ'’-]+){1,2}$")


def _words(text: str) -> list[str]:
    return [w for w in re.split(r"[\s.'’-]+", text.lower()) if w]


def _not_vocabulary(text: str) -> bool:
    """Whether ``text`` holds a word that is not in :data:`VOCABULARY` (so may be a name)."""
    return any(w not in VOCABULARY for w in _words(text))


def _looks_like_name(part: str) -> bool:
    if "^" in part:
        components = [c.strip() for c in part.split("^")]
        named = [c for c in components if c]
        if named and all(_ALPHA_WORDS.match(c) for c in named) and (len(named) >= 2 or components[0]):
            return _not_vocabulary(" ".join(named))
        return False
    if _TITLE.search(part) or (_INITIAL_SURNAME.match(part) and _not_vocabulary(part.rsplit(".", 1)[-1])):
        return True
    found = _SURNAME_COMMA.match(part)
    if found:
        given = _words(found.group(2))
        initials = all(len(w) == 1 for w in given)
        return _not_vocabulary(found.group(1)) and (initials or _not_vocabulary(found.group(2)))
    if _TITLE_CASE.match(part) or _CAPITALS.match(part):
        # two or three words: a name when it starts or ends with a common given name
        words = _words(part)
        return (words[0] in GIVEN_NAMES or words[-1] in GIVEN_NAMES) and all(w not in VOCABULARY for w in words)
    return False


def _looks_like_id(value: str) -> bool:
    if _PSEUDONYM.match(value):
        return False
    value = _PHONES.sub(" ", _WRITTEN_DATES.sub(" ", value))  # a written date or a phone number is not an ID
    if _ID_LABEL.search(value) or _DIGIT_RUN.search(value) or _UID.search(value):
        return True
    for found in _GROUPED_DIGITS.finditer(value):
        if sum(c.isdigit() for c in found.group()) >= 7:
            return True
    for token in _TOKEN_SPLIT.split(value):
        # letters with a run of four digits or more (ACC2023001, AB1234); not a size or a version
        token = token.strip("#.-")
        if (len(token) >= 6 and _FOUR_DIGITS.search(token) and any(c.isalpha() for c in token)
                and not _NOT_ID_TOKEN.match(token)):
            return True
    return False


def _looks_like_phone(value: str) -> bool:
    for found in _PHONES.finditer(value):
        if 7 <= sum(c.isdigit() for c in found.group()) <= 15:
            return True
    return False


@functools.lru_cache(maxsize=4096)
def person_name_attribute(attribute: str) -> bool:
    """Whether the record's attribute name (a keyword, a ``>``-joined sequence path, or a private
    ``(gggg,xxee) creator``) is a DICOM attribute of VR PN."""
    keyword = attribute.rsplit(">", 1)[-1].strip()
    if not keyword or not keyword.isidentifier():
        return False
    from pydicom.datadict import dictionary_VR, tag_for_keyword

    tag = tag_for_keyword(keyword)
    if tag is None:
        return False
    try:
        return "PN" in dictionary_VR(tag)
    except KeyError:
        return False


@functools.lru_cache(maxsize=8192)
def kinds(value: str, attribute: str = "") -> tuple[str, ...]:
    """The kinds (of :data:`KINDS`) that ``value`` of ``attribute`` looks like; () when none."""
    found: list[str] = []
    keyword = attribute.rsplit(">", 1)[-1].strip()
    if attribute and person_name_attribute(attribute):
        found.append("name")
    if keyword in DEFINED_TERMS:
        return tuple(found)
    coded = keyword in CODED
    parts = [p for p in _PARTS.split(value) if p.strip()]
    if not found and not coded and any(_looks_like_name(p) for p in parts):
        found.append("name")
    if _DIGIT.search(value):  # every date, ID, phone number and postal address holds a digit
        if _DATES.search(value):
            found.append("date")
        if not coded and _looks_like_id(value):
            found.append("id")
        if _looks_like_phone(value):
            found.append("phone")
    if "@" in value and _EMAIL.search(value):
        found.append("email")
    if _DIGIT.search(value) and _ADDRESS.search(value):
        found.append("address")
    return tuple(found)
