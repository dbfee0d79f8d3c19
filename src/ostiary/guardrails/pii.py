"""PII scanner: typed spans of personal data in a text, validated, never copied.

Finds e-mail addresses, phone numbers of many countries (`phonenumbers`), payment cards (Luhn and
issuer prefix), IBANs (mod 97) and national identifiers with their check digits (`python-stdnum`:
US SSN, FR NIR, UK NINO and NHS number, DE Steuer-IdNr, ES DNI and NIE, IT codice fiscale, NL BSN,
BE national number), IP addresses (stdlib `ipaddress`), dates of birth (a date with a birth word
near it) and postal addresses (a house number next to a street-type word, then a postcode and city).

Speed is the design constraint: the gateway scans every prompt, so a 2 KB prompt without personal
data must cost a few tens of microseconds. Every structured value here but e-mails and IPv6
contains digits, so one compiled regex whose first character is a digit walks the text once. Its
alternatives only yield *candidates* (six digits or more, a digit glued to capitals, a number
followed by a month, a year or a street word, a house number where an address would end), and
ordinary prose numbers ("in 2023", "12 regions") fail inside the regex engine without reaching
Python. The validators (`phonenumbers`, `stdnum`, `ipaddress`) run on those few candidates only.
E-mails are looked for only when the text contains "@", IPv6 only when two colons stand close.

Scores: a value whose check digits prove it (IBAN, codice fiscale, NIR, a card of a known issuer)
scores high on its own. A value whose check is weak (the 9-, 10- and 11-digit mod-11 identifiers
pass by chance one time in eleven, an SSN has no check at all) scores below the default threshold
unless a context word ("BSN", "NHS", "SSN", ...) stands near it in the same sentence; "order",
"invoice", "version" and the like lower it. Overlapping candidates resolve to the highest score,
then to the most specific entity.

Not in scope: person names and places (an optional NER extra), addresses without a house number
or without a street-type word ("Unter den Linden 77"), Corsican NIRs (2A/2B), digits of scripts
other than ASCII and full-width.
"""

from __future__ import annotations

import datetime
import ipaddress
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from typing import Final

import phonenumbers
from phonenumbers import PhoneMetadata
from stdnum import iban as _iban
from stdnum import luhn as _luhn
from stdnum.be import nn as _be_nn
from stdnum.de import idnr as _de_idnr
from stdnum.es import dni as _es_dni
from stdnum.es import nie as _es_nie
from stdnum.fr import nir as _fr_nir
from stdnum.gb import nhs as _gb_nhs
from stdnum.it import codicefiscale as _it_cf
from stdnum.nl import bsn as _nl_bsn
from stdnum.us import ssn as _us_ssn

from ostiary.guardrails.base import Finding, choose_entities

__all__ = ["DEFAULT_REGIONS", "PII_ENTITIES", "PiiScanner"]

PII_ENTITIES: Final = (
    "EMAIL",
    "PHONE",
    "CREDIT_CARD",
    "IBAN",
    "US_SSN",
    "FR_NIR",
    "UK_NINO",
    "UK_NHS",
    "DE_IDNR",
    "ES_DNI",
    "ES_NIE",
    "IT_CODICE_FISCALE",
    "NL_BSN",
    "BE_NN",
    "IP_ADDRESS",
    "DATE_OF_BIRTH",
    "POSTAL_ADDRESS",
)

# Regions tried, in order, for a phone number written without "+country". Its national form must
# start with the region's trunk prefix (the 0 of most of Europe) and fit the region's numbering
# plan before `phonenumbers` is asked, so that ordinary numbers never reach it.
DEFAULT_REGIONS: Final = ("US", "GB", "FR", "DE", "ES", "IT", "NL", "BE", "CH", "AT", "IE", "PT")

# Tie-break between equal scores: the lower rank wins (a checked national id over a phone reading).
_RANK: Final = {e: i for i, e in enumerate(PII_ENTITIES)}
_RANK["PHONE"] = len(PII_ENTITIES)

_D = "[0-9]"  # full-width digits are mapped to ASCII before the scan (see `PiiScanner.scan`)
_SEP = "[ \u00a0\u202f\u2009\\-./\u2010\u2011\u2013]"  # spaces (incl. no-break), dashes, dot, slash
_SEP_P = "[ \u00a0\u202f\u2009\\-./\u2010\u2011\u2013()]"
_L = "A-Za-zÀ-ÖØ-öø-ÿ"  # Latin letters, spelled out: `[^\W\d_]` costs a Unicode lookup per char

# The end of an address whose house number comes last ("Calle Mayor 12, 28013 Madrid").
_ADDR_END = (
    rf"(?:[ ]?(?:bis|ter))?+(?:,(?![0-9])|[;)\n]|[ ]*$|\.(?:[ ]|$)|[ ]+{_D}{{4,5}}(?!{_D})|[ ]+[-–]"
    r"|[ ]+(?:seit|depuis|desde|dal|dalla|sinds|since)[ ])"
)

# English street types, checked inside the pass: German capitalises every noun ("12 Regionen"),
# so "a number and a capital" alone would send every German sentence with a number to Python.
_EN_STREET_TYPES = (
    "(?:St(?:reet)?|Ave(?:nue)?|R(?:oa)?d|Lane|Ln|Dr(?:ive)?|Boulevard|Blvd|Court|Ct|Pl(?:ace)?|Way|Terrace"
    "|Close|Sq(?:uare)?|Crescent|Parkway|Pkwy|Highway|Hwy|Row|Gardens|Grove|Mews|Walk|Circle|Trail|Alley|Hill)"
)

# The one pass. Its first character is a digit, so the engine skips everything else in a tight
# loop; what follows is written for CPython's engine, which pays for every operation at every
# digit: no case-insensitive parts, no Unicode classes, possessive quantifiers (no backtracking),
# the cheapest tests first. It only finds candidates; Python validates them.
_PASS = re.compile(
    rf"""[0-9](?:
    # glued to capitals: IBAN "DE89 3704", NINO "AB123456C", NIE "X1234567L", codice fiscale
    (?P<code>(?<=[A-Z].)[0-9][0-9A-Z \u00a0]{{3}})
  | (?<![\w].)(?:  # the first digit of a number
        # six digits or more, single separators between groups, or a dotted quad
        (?P<num>(?=(?:{_SEP_P}{{0,3}}+[0-9]){{5}}|[0-9]{{0,2}}\.[0-9]{{1,3}}\.[0-9]{{1,3}}\.[0-9])
            (?:[0-9]|{_SEP}(?=\(?[0-9])|\((?=[0-9])|\){_SEP}?(?=\(?[0-9]))*+)
        # a short number and what follows: a month and a year, a year, a street
      | (?P<short>[0-9]{{0,4}}+(?:
            (?:st|nd|rd|th|er|º)?+[.,]?[ ](?:[{_L}]{{3,10}}+\.?[ ](?:de[ ]|del[ ])?[0-9]{{4}}
                                              |(?:de|of)[ ][{_L}]{{3,10}}+[ ](?:de[ ])?[0-9]{{4}}
                                              |[0-9]{{4}}(?![0-9]))
          | [A-Za-z]?+(?:[ ]?(?:bis|ter))?+,?[ ]
            (?:(?:r(?:ue|oute)|a(?:v|venue|ll[ée]e)|b(?:d|oulevard)|p(?:lace|assage|romenade)|impasse
                 |c(?:hemin|ours)|quai|square|faubourg|esplanade)[ .]
              |[A-Z0-9][A-Za-z0-9'-]*+[ ](?:[A-Z0-9][A-Za-z0-9'-]*+[ ]){{0,2}}{_EN_STREET_TYPES}\b)))
        # a house number after a word, where an address would end (not a year): street words?
      | (?P<after>(?:(?<=[{_L}][ ].)|(?<=[{_L}]\.[ ].)|(?<=[{_L}],[ ].)|(?<=[º°].)|(?<=[º°][ ].))
            (?!(?<=1)9[0-9]{{2}}(?![0-9])|(?<=2)0[0-9]{{2}}(?![0-9]))
            [0-9]{{0,3}}+[A-Za-z]?+(?={_ADDR_END}))
    )
)""",
    re.VERBOSE,
)

# Suffixes of Dutch and German street names written as one word, then the house number:
# "Kerkstraat 12", "Hauptstraße 5", "Hauptstr. 5".
_COMPOUND_SUFFIXES: Final = (
    "straße", "strasse", "str.", "weg", "allee", "platz", "gasse", "ufer", "damm", "chaussee",
    "straat", "laan", "plein", "gracht", "kade", "singel", "dijk", "steeg", "markt",
)
# Street types that stand before the name (ES, IT, and FR/DE/NL when written apart), lower case.
_TYPE_FIRST: Final = frozenset(
    (
        "calle", "c/", "avenida", "avda", "avda.", "av.", "paseo", "plaza", "pza.", "camino", "carrer",
        "ronda", "travesía", "carretera", "via", "viale", "v.le", "piazza", "piazzale", "p.za", "corso",
        "c.so", "largo", "vicolo", "lungomare", "strada", "contrada", "rue", "avenue", "boulevard",
        "place", "allée", "chemin", "quai", "straße", "strasse", "weg", "allee", "platz",
    )
)
_NAME_PARTICLES: Final = frozenset(
    (
        "de", "del", "la", "las", "los", "dei", "della", "delle", "degli", "di", "dal", "van", "von",
        "der", "den", "des", "le", "les", "l'", "d'", "et", "y", "e", "san", "santa", "sant'", "sankt",
        "sint", "st.", "am", "an", "auf",
    )
)
_NUMBER_MARKS: Final = frozenset({"nº", "n°", "no", "no.", "nr", "nr.", "n.", "num.", "número", "numero", "n"})

_FULL_WIDTH_DIGITS: Final = tuple(chr(0xFF10 + i) for i in range(10))
_PREV_OK = _TYPE_FIRST | _NAME_PARTICLES | _NUMBER_MARKS

_DIGITS = str.maketrans({fw: str(i) for i, fw in enumerate(_FULL_WIDTH_DIGITS)})
_NON_DIGITS = re.compile(r"[^0-9]")


def _nfkc(raw: str) -> str:
    """Full-width letters and digits to ASCII, no-break spaces to spaces, for the validators."""
    return unicodedata.normalize("NFKC", raw)


# Anchored patterns, run at a candidate only (so their cost hardly matters).
_IBAN = re.compile(r"[A-Z]{2}[0-9]{2}(?:(?:[ \u00a0]?[A-Z0-9]{4}){2,7}(?:[ \u00a0]?[A-Z0-9]{1,4})?|[A-Z0-9]{11,30})")
_NINO = re.compile(r"[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?[0-9]{2} ?[0-9]{2} ?[0-9]{2} ?[A-D](?!\w)")
_NINO_BAD_PREFIX: Final = frozenset({"BG", "GB", "NK", "KN", "TN", "NT", "ZZ"})
_CF = re.compile(r"[A-Z]{6}[0-9LMNPQRSTUV]{2}[ABCDEHLMPRST][0-9LMNPQRSTUV]{2}[A-Z][0-9LMNPQRSTUV]{3}[A-Z](?!\w)")
_NIE = re.compile(r"[XYZ]-?[0-9]{7}-?[A-Z](?!\w)")
_DNI_TAIL = re.compile(r"-?([A-Z])(?!\w)")
_NUM_DATE = re.compile(
    r"([0-9]{1,2})[./-]([0-9]{1,2})[./-]([0-9]{4}|[0-9]{2})|([0-9]{4})[-./]([0-9]{1,2})[-./]([0-9]{1,2})"
)
_IPV4_SHAPE = re.compile(r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}")
_THOUSANDS = re.compile(r"[0-9]{1,3}(?:([.,])[0-9]{3})(?:\1[0-9]{3})*")
_SSN_SHAPE = re.compile(r"[0-9]{3}-[0-9]{2}-[0-9]{4}")
_YEAR_RANGE = re.compile(r"(?:19|20)[0-9]{2} ?[-/–] ?(?:19|20)?[0-9]{2}")
_MDATE = re.compile(
    rf"{_D}{{1,2}}(?:st|nd|rd|th|er|º)?\.?[ ](?:de[ ]|of[ ])?([{_L}]{{3,10}})\.?[ ](?:de[ ]|del[ ])?{_D}{{4}}(?!{_D})"
)
_MDATE_TAIL = re.compile(rf"{_D}{{1,2}}(?:st|nd|rd|th)?,?[ ]{_D}{{4}}(?!{_D})")
_MONTH_BEFORE = re.compile(rf"([{_L}]{{3,10}})\.?[ ]\Z")
_V6_HINT = re.compile(r":[0-9A-Fa-f]{0,4}:")
_EMAIL_DOMAIN = re.compile(r"@((?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+[^\W\d_]{2,24})(?![\w-]|\.[^\W_])")
_HEX: Final = frozenset("0123456789abcdefABCDEF")

_MONTHS: Final = frozenset(
    (
        "january", "february", "march", "april", "may", "june", "july", "august", "september",
        "october", "november", "december", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep",
        "sept", "oct", "nov", "dec", "janvier", "février", "fevrier", "mars", "avril", "mai", "juin",
        "juillet", "août", "aout", "septembre", "octobre", "novembre", "décembre", "decembre", "januar",
        "jänner", "februar", "märz", "maerz", "april", "mai", "juni", "juli", "august", "september",
        "oktober", "november", "dezember", "enero", "febrero", "marzo", "abril", "mayo", "junio",
        "julio", "agosto", "septiembre", "setiembre", "octubre", "noviembre", "diciembre", "gennaio",
        "febbraio", "marzo", "aprile", "maggio", "giugno", "luglio", "agosto", "settembre", "ottobre",
        "novembre", "dicembre", "januari", "februari", "maart", "april", "mei", "juni", "juli",
        "augustus", "september", "oktober", "november", "december",
    )
)


def _words(*ws: str) -> re.Pattern[str]:
    """A case-insensitive search for any of `ws` as whole words, run on small windows only."""
    # longest first, so that "d.o.b." wins over "d.o.b" and the match ends after the period
    alternatives = "|".join(re.escape(w) for w in sorted(ws, key=len, reverse=True))
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)


_BOUNDARY = re.compile(r"[.!?;][ \n]")


def _near(rx: re.Pattern[str], text: str, s: int, e: int, before: int, after: int) -> bool:
    """Whether `rx` matches within `before` chars before [s, e) or `after` chars after it, in the
    same sentence ("Born in Lyon. Meeting on 12/03/2024" gives the meeting no birth context)."""
    last = None
    for last in rx.finditer(text, max(0, s - before), s):
        pass
    if last is not None and _same_clause(text[last.end() : s]):
        return True
    if after:
        nxt = rx.search(text, e, e + after)
        if nxt is not None and _same_clause(text[e : nxt.start()]):
            return True
    return False


def _same_clause(gap: str) -> bool:
    """No sentence end in `gap`, and a line break only right after a label ("Date of birth:\n")."""
    if _BOUNDARY.search(gap):
        return False
    nl = gap.find("\n")
    return nl < 0 or not gap[:nl].strip(" \t:.-–")


_CTX: Final[dict[str, re.Pattern[str]]] = {
    "PHONE": _words(
        "phone", "tel", "tél", "téléphone", "telephone", "telefon", "teléfono", "telefono", "telefoon",
        "mobile", "mobil", "móvil", "movil", "cellulare", "cell", "portable", "call", "gsm", "fax",
        "whatsapp", "handy", "contact", "appelez", "rufen", "llame", "chiamare", "bel",
    ),
    "CREDIT_CARD": _words(
        "card", "carte", "karte", "kreditkarte", "tarjeta", "carta", "kaart", "creditcard", "visa",
        "mastercard", "amex", "cb", "credit", "crédit", "payment", "paiement", "zahlung", "pago",
        "pagamento", "betaling", "cvv", "expiry",
    ),
    "US_SSN": _words("ssn", "social security", "soc. sec.", "social security number"),
    "FR_NIR": _words("nir", "insee", "sécurité sociale", "securite sociale", "sécu", "numéro de sécu"),
    "UK_NINO": _words("national insurance", "nino", "ni number", "ni no", "ni"),
    "UK_NHS": _words("nhs", "nhs number", "nhs no"),
    "DE_IDNR": _words(
        "steuer-id", "steuerid", "steuer-idnr", "idnr", "identifikationsnummer", "steueridentifikationsnummer",
        "tax id", "tin", "steuernummer",
    ),
    "ES_DNI": _words("dni", "nif", "documento", "identidad", "d.n.i."),
    "ES_NIE": _words("nie", "extranjero", "extranjería"),
    "IT_CODICE_FISCALE": _words("codice fiscale", "cf", "c.f.", "cod. fisc."),
    "NL_BSN": _words("bsn", "burgerservicenummer", "sofinummer", "sofi-nummer", "sofi"),
    "BE_NN": _words(
        "rijksregisternummer", "rijksregister", "registre national", "numéro national", "national number",
        "niss", "insz", "nn",
    ),
    "POSTAL_ADDRESS": _words(
        "address", "adresse", "anschrift", "dirección", "direccion", "domicilio", "indirizzo", "adres",
        "lives at", "wohnt", "woont", "domicile", "habite", "vive en", "abita", "residenza", "resides",
    ),
}
_DOB_CTX = _words(
    "born", "birth", "birthday", "date of birth", "dob", "d.o.b", "d.o.b.", "né", "née", "né(e)",
    "naissance", "geboren", "geburtsdatum", "geburtstag", "geb", "geb.", "nacido", "nacida", "nací", "naci",
    "nació", "nacimiento", "nato", "nata", "nascita", "geboortedatum",
)
# Words that make a number an order, a reference or a version rather than personal data.
_NEG_CTX = _words(
    "order", "commande", "bestellung", "bestellnummer", "pedido", "ordine", "bestelling", "invoice",
    "facture", "rechnung", "factura", "fattura", "factuur", "tracking", "ticket", "ref", "reference",
    "référence", "referenz", "referencia", "riferimento", "sku", "serial", "isbn", "version", "build",
    "release", "transaction", "trx", "case", "item", "article", "artikel", "part",
)
_VERSION_CTX = _words("version", "v", "release", "build", "versión", "versione", "versie")

# House number first (EN, FR): "221B Baker Street", "1600 Pennsylvania Avenue NW", "10 rue de la Paix"
_FR_NAME = (
    r"(?:(?:de[ ]la|de[ ]l'|de|du|des|d'|l'|la|le|les|aux|au)[ ]*)?[A-Za-zÀ-ÖØ-öø-ÿ][\w'’-]*"
    r"(?:[ ](?:(?:de|du|des|la|le|les|et|sur|aux|au|en)[ ]|d'|l')*[A-ZÀ-ÖØ-Þ0-9][\w'’-]*)*"
)
_ADDR_NUMBER_FIRST = re.compile(
    rf"""[0-9]{{1,5}}(?:[ ]?(?:bis|ter)|[A-Za-z])?,?[ ]+
    (?:(?:[Rr]ue|[Aa]v|[Aa]venue|[Bb]d|[Bb]oulevard|[Pp]lace|[Aa]ll[ée]e|[Ii]mpasse|[Cc]hemin|[Qq]uai|[Rr]oute
          |[Cc]ours|[Ss]quare|[Pp]assage|[Ff]aubourg|[Ee]splanade|[Pp]romenade)\.?[ ]+{_FR_NAME}
      | (?:[NSEW]\.?[ ])?(?:[A-Z0-9][\w'.-]*[ ]){{1,4}}
        (?:Street|St|Avenue|Ave|Road|Rd|Lane|Ln|Drive|Dr|Boulevard|Blvd|Court|Ct|Place|Pl|Way|Terrace
          |Close|Square|Sq|Crescent|Parkway|Pkwy|Highway|Hwy|Row|Gardens|Grove|Mews|Walk|Circle|Trail
          |Alley|Hill)\b\.?(?:[ ](?:NW|NE|SW|SE|N|S|E|W)\b)?
    )""",
    re.VERBOSE,
)
# After the street: a postcode and a city (FR/DE/ES/IT/BE/CH/AT, NL "1012 AB", UK, US "City, ST 12345")
_CITY = r"[A-ZÀ-ÖØ-Þ][\w'’-]*(?:[ -](?:[A-ZÀ-ÖØ-Þ][\w'’-]*|sur|sous|en|am|an|der|im|di|de|del|la|le|aan|den))*"
_ADDR_TAIL = re.compile(
    rf"""(?:,[ ]*|[ ]+[-–][ ]+|[ ]*\n[ ]*|[ ]+)
    (?:(?:[A-Z]{{1,2}}-)?[0-9]{{4,5}}[ ]+{_CITY}
      | [0-9]{{4}}[ ]?[A-Z]{{2}}[ ]+{_CITY}
      | [A-Z][\w'.-]*(?:[ ][A-Z][\w'.-]*)*,[ ]*[A-Z]{{2}}[ ]+[0-9]{{5}}(?:-[0-9]{{4}})?
      | [A-Z][\w'.-]*(?:[ ][A-Z][\w'.-]*)*,?[ ]+[A-Z]{{1,2}}[0-9][A-Z0-9]?[ ]?[0-9][A-Z]{{2}}\b
    )""",
    re.VERBOSE,
)
_HOUSE_NUMBER = re.compile(r"[0-9]{1,4}[A-Za-z]?(?![0-9])")
_POSTCODE_TAIL = re.compile(
    r",?[ ]+(?:[A-Z]{1,2}-)?(?:[0-9]{5}|[0-9]{4}[ ]?[A-Z]{2}|(?!(?:19|20)[0-9]{2})[0-9]{4})[ ]+[A-ZÀ-ÖØ-Þ][a-zà-öø-ÿ]"
)
_BIS = re.compile(r"[ ]?(?:bis|ter)\b")

# Issuer prefixes of the card networks (Visa, Mastercard, Amex, Discover, Diners, JCB, UnionPay,
# Maestro): a Luhn-valid number outside them is far more often a reference than a card.
_IIN = re.compile(r"4|5[1-5]|2(?:22[1-9]|2[3-9]|[3-6]|7[01]|720)|3[47]|6(?:011|4[4-9]|5|2)|3(?:0[0-5]|[689])|35|5[06-8]|6[37]")

_NANP: Final = frozenset({"US", "CA"})
# How NIRs and North-American numbers are written: other groupings are something else.
_NIR_GROUPS: Final = ([15], [13, 2], [1, 2, 2, 2, 3, 3, 2], [1, 2, 2, 5, 3, 2])
_NANP_GROUPS: Final = ([10], [11], [3, 3, 4], [1, 3, 3, 4])


class _Region:
    """What a national-format number must look like in one region before `phonenumbers` parses it."""

    __slots__ = ("code", "lengths", "pattern", "prefix")

    def __init__(self, code: str) -> None:
        md = PhoneMetadata.metadata_for_region(code)
        if md is None or md.general_desc is None:
            raise ValueError(f"unknown phone region {code!r}")
        self.code = code
        self.prefix: str = md.national_prefix or ""
        self.lengths = frozenset(md.general_desc.possible_length or ())
        self.pattern = re.compile(md.general_desc.national_number_pattern or r"[0-9]+")

    def accepts(self, digits: str) -> bool:
        national = digits
        if self.prefix:
            if digits.startswith(self.prefix):
                national = digits[len(self.prefix) :]
            elif self.code not in _NANP:  # in Europe the trunk 0 is always written
                return False
        return len(national) in self.lengths and self.pattern.fullmatch(national) is not None


Candidate = tuple[int, int, str, float]  # start, end, entity, score
_Handler = Callable[[str, int, int, list[Candidate]], "int | None"]


class PiiScanner:
    """Finds personal data; see the module docstring. Pure and thread-safe once built.

    `entities` restricts the search (default: all of `PII_ENTITIES`); `regions` are tried in order
    for phone numbers written without "+country"; findings scoring below `min_score` are dropped.
    """

    name = "pii"

    def __init__(
        self,
        entities: Iterable[str] | None = None,
        *,
        regions: Sequence[str] = DEFAULT_REGIONS,
        min_score: float = 0.5,
    ) -> None:
        chosen = choose_entities(PII_ENTITIES, entities, "PII")
        self.entities = chosen
        self.min_score = min_score
        self._regions = tuple(_Region(r.upper()) for r in regions)
        self._digits = bool(chosen - {"EMAIL"})
        self._handlers: dict[str, _Handler] = {
            "code": self._code,
            "num": self._number,
            "short": self._short,
            "after": self._after,
        }

    def scan(self, text: str) -> list[Finding]:
        # Full-width digits ("４１１１") become ASCII, one char for one, so offsets stay true and
        # the hot regex keeps a plain [0-9] (a wider class costs on every char of every prompt).
        if not text.isascii() and any(d in text for d in _FULL_WIDTH_DIGITS):
            text = text.translate(_DIGITS)
        cands: list[Candidate] = []
        if "@" in text and "EMAIL" in self.entities:
            self._emails(text, cands)
        if ":" in text and "IP_ADDRESS" in self.entities and _V6_HINT.search(text):
            self._ipv6(text, cands)
        if self._digits:
            self._digit_pass(text, cands)
        return self._resolve(cands)

    def _digit_pass(self, text: str, out: list[Candidate]) -> None:
        handlers = self._handlers
        search = _PASS.search
        pos = 0
        while (m := search(text, pos)) is not None:
            kind = m.lastgroup
            assert kind is not None
            s, e = m.start(), m.end()
            end = handlers[kind](text, s, e, out)
            # A found value is skipped whole; a failed number too (its tail is no better a
            # candidate); anything else moves on by one digit.
            pos = end if end is not None else e if kind == "num" else s + 1

    # -- numbers ---------------------------------------------------------------------------------

    def _number(self, text: str, s: int, e: int, out: list[Candidate]) -> int | None:
        if s > 0 and text[s - 1] in "+(":
            s -= 1
            if s > 0 and text[s - 1] == "+":  # "+(33) ..."
                s -= 1
        norm = text[s:e]
        digits = _NON_DIGITS.sub("", norm)

        if _IPV4_SHAPE.fullmatch(norm) and (end := self._ipv4(text, s, e, norm, out)) is not None:
            return end  # (a dotted quad that is no address may be a phone: "012.70.57.27")
        date = _NUM_DATE.fullmatch(norm)
        if date is not None:
            if "DATE_OF_BIRTH" in self.entities and _valid_date(date) and _near(_DOB_CTX, text, s, e, 48, 20):
                out.append((s, e, "DATE_OF_BIRTH", 0.9))
            return e
        if s >= 2 and text[s - 1] in " -" and text[s - 2].isupper():  # "AB 12 34 56 C", "X-1234567-L"
            end = self._code(text, s, e, out)
            if end is not None:
                return end

        # A run glued to a word on either side is part of a token (a UUID, a hash, a file name).
        n = len(text)
        glued_right = e < n and (text[e].isalnum() or text[e] == "_")
        glued_left = s >= 2 and text[s - 1] in "-_" and text[s - 2].isalnum()
        if glued_left or (glued_right and not (len(digits) == 8 and text[e].isupper())):
            return None

        found: list[Candidate] = []
        if not norm.startswith("+"):
            self._identifiers(text, s, e, norm, digits, found)
        if "PHONE" in self.entities and 7 <= len(digits) <= 15 and not any(c[3] >= 0.85 for c in found):
            phone = self._phone(text, s, e, norm, digits)
            if phone is not None:
                found.append(phone)
        if found:
            out.extend(found)
            return max(c[1] for c in found)
        # "Hauptstraße 5 10115 Berlin": a house number and a postcode read as one number
        first = len(norm) - len(norm.lstrip("0123456789"))
        if 0 < first <= 4 and first < len(norm) and norm[first] == " ":
            return self._after(text, s, s + first, out)
        return None

    def _identifiers(self, text: str, s: int, e: int, norm: str, digits: str, out: list[Candidate]) -> None:
        want = self.entities
        n = len(digits)
        groups, seps = _groups(norm)

        if 13 <= n <= 19 and "CREDIT_CARD" in want and _card_grouping(groups, seps) and _luhn.is_valid(digits):
            known = _IIN.match(digits) is not None
            score = 0.9 if known else 0.45
            if self._context(text, s, e, "CREDIT_CARD"):
                score += 0.1 if known else 0.3
            out.append((s, e, "CREDIT_CARD", score))
        if n == 15 and "FR_NIR" in want and groups in _NIR_GROUPS and digits[0] in "12378" and _fr_nir.is_valid(digits):
            out.append((s, e, "FR_NIR", 0.95 if self._context(text, s, e, "FR_NIR") else 0.9))
        if n == 9:
            if "US_SSN" in want and _us_ssn.is_valid(digits):
                grouped = groups == [3, 2, 4] and len(set(seps)) == 1
                base = 0.85 if grouped and seps[0] == "-" else 0.7 if grouped and seps[0] == " " else 0.35
                out.append((s, e, "US_SSN", self._boost(text, s, e, "US_SSN", base, 0.55)))
            if "NL_BSN" in want and _nl_bsn.is_valid(digits):
                out.append((s, e, "NL_BSN", self._boost(text, s, e, "NL_BSN", 0.3, 0.6)))
        elif n == 10:
            if "UK_NHS" in want and _gb_nhs.is_valid(digits):
                base = 0.45 if groups == [3, 3, 4] else 0.3
                out.append((s, e, "UK_NHS", self._boost(text, s, e, "UK_NHS", base, 0.5)))
        elif n == 11:
            if "DE_IDNR" in want and _de_idnr.is_valid(digits):
                out.append((s, e, "DE_IDNR", self._boost(text, s, e, "DE_IDNR", 0.35, 0.55)))
            if "BE_NN" in want and _be_nn.is_valid(digits):
                out.append((s, e, "BE_NN", self._boost(text, s, e, "BE_NN", 0.35, 0.55)))
        elif n == 8 and "ES_DNI" in want:
            tail = _DNI_TAIL.match(text, e)
            if tail is not None and _es_dni.is_valid(digits + tail.group(1)):
                out.append((s, tail.end(), "ES_DNI", self._boost(text, s, e, "ES_DNI", 0.8, 0.15)))

    def _phone(self, text: str, s: int, e: int, norm: str, digits: str) -> Candidate | None:
        norm = _nfkc(norm)
        if (
            _THOUSANDS.fullmatch(norm)
            or _YEAR_RANGE.fullmatch(norm)
            or _SSN_SHAPE.fullmatch(norm)
            or norm.count("/") > 1
        ):
            return None  # 1.234.567, 2019-2023, ddd-dd-dddd, 400/413/422: no one writes phones so
        if norm.startswith("+") or digits.startswith("00"):
            try:
                parsed = phonenumbers.parse(norm if norm.startswith("+") else "+" + digits[2:], None)
            except phonenumbers.NumberParseException:
                return None
            if not phonenumbers.is_valid_number(parsed):
                return None
            score = 0.8
        else:
            for region in self._regions:
                if not region.accepts(digits):
                    continue
                try:
                    parsed = phonenumbers.parse(norm, region.code)
                except phonenumbers.NumberParseException:
                    continue
                if phonenumbers.is_valid_number(parsed):
                    if region.code in _NANP and _groups(norm)[0] not in _NANP_GROUPS:
                        continue  # "2023-0045-77" is a contract number, not (202) 300-4577
                    break
            else:
                return None
            # a number written in groups looks like a phone number; a bare run of digits is
            # as often a reference, so it needs a context word
            score = 0.6 if len(_groups(norm)[0]) > 1 else 0.4
        if self._context(text, s, e, "PHONE"):
            score += 0.3
        if _near(_NEG_CTX, text, s, e, 32, 0):
            score -= 0.4
        return (s, e, "PHONE", min(score, 1.0))

    # -- identifiers that start with letters ----------------------------------------------------

    def _code(self, text: str, p: int, e: int, out: list[Candidate]) -> int | None:
        """`p` is the first digit of something after capitals: a codice fiscale, an IBAN, a NINO
        ("AB123456C", "AB 12 34 56 C") or a NIE ("X1234567L", "X-1234567-L")."""
        want = self.entities
        for start in (p - 6, p - 3, p - 2, p - 1):
            if start < 0 or (start > 0 and (text[start - 1].isalnum() or text[start - 1] == "_")):
                continue
            if not text[start].isupper():
                continue
            if start == p - 6:
                if "IT_CODICE_FISCALE" in want and (cf := _CF.match(text, start)) and _it_cf.is_valid(cf.group()):
                    score = self._boost(text, start, cf.end(), "IT_CODICE_FISCALE", 0.95, 0.05)
                    out.append((start, cf.end(), "IT_CODICE_FISCALE", score))
                    return cf.end()
            elif start == p - 3:
                if text[p - 1] == " " and "UK_NINO" in want and (end := self._nino(text, start, out)):
                    return end
            elif start == p - 2:
                if text[p - 1].isupper() and "IBAN" in want and (shape := _IBAN.match(text, start)):
                    end = _valid_iban(shape)
                    if end:
                        out.append((start, end, "IBAN", 0.95))
                        return end
                    if shape.end() - start >= 18:  # IBAN-shaped with a wrong check: skip it whole
                        return shape.end()
                if "UK_NINO" in want and (end := self._nino(text, start, out)):
                    return end
                if "ES_NIE" in want and (end := self._nie(text, start, out)):
                    return end
            elif "ES_NIE" in want and (end := self._nie(text, start, out)):
                return end
        return None

    def _nino(self, text: str, start: int, out: list[Candidate]) -> int | None:
        m = _NINO.match(text, start)
        if m is None or text[start : start + 2] in _NINO_BAD_PREFIX:
            return None
        out.append((start, m.end(), "UK_NINO", self._boost(text, start, m.end(), "UK_NINO", 0.7, 0.25)))
        return m.end()

    def _nie(self, text: str, start: int, out: list[Candidate]) -> int | None:
        m = _NIE.match(text, start)
        if m is None or not _es_nie.is_valid(m.group()):
            return None
        out.append((start, m.end(), "ES_NIE", self._boost(text, start, m.end(), "ES_NIE", 0.85, 0.1)))
        return m.end()

    # -- IP addresses, e-mails ------------------------------------------------------------------

    def _ipv4(self, text: str, s: int, e: int, norm: str, out: list[Candidate]) -> int | None:
        try:
            ip = ipaddress.IPv4Address(norm)
        except ValueError:
            return None
        if "IP_ADDRESS" in self.entities and not _near(_VERSION_CTX, text, s, e, 12, 0):
            out.append((s, e, "IP_ADDRESS", _ip_score(ip)))
        return e

    def _ipv6(self, text: str, out: list[Candidate]) -> None:
        n = len(text)
        pos = 0
        while (m := _V6_HINT.search(text, pos)) is not None:
            s, e = m.start(), m.end()
            while s > 0 and (text[s - 1] in _HEX or text[s - 1] == ":"):
                s -= 1
            while e < n and (text[e] in _HEX or text[e] in ":."):
                e += 1
            while e > s and (text[e - 1] == "." or (text[e - 1] == ":" and text[e - 2] != ":")):
                e -= 1  # sentence punctuation, not part of the address
            pos = max(e, m.end())
            if (s > 0 and (text[s - 1].isalnum() or text[s - 1] == "_")) or (
                e < n and (text[e].isalnum() or text[e] == "_")
            ):
                continue  # "std::vector", "Foo::bar": inside a word
            try:
                ip = ipaddress.IPv6Address(text[s:e])
            except ValueError:
                continue
            out.append((s, e, "IP_ADDRESS", _ip_score(ip)))

    def _emails(self, text: str, out: list[Candidate]) -> None:
        for m in _EMAIL_DOMAIN.finditer(text):
            at = m.start()
            s = at
            while s > 0 and at - s < 64 and (text[s - 1].isalnum() or text[s - 1] in "._%+-"):
                s -= 1
            while s < at and text[s] in ".-":
                s += 1
            if s == at or text[at - 1] == ".":
                continue
            if _in_url(text, s):
                continue  # userinfo of scheme://user:pass@host: a credential, not an address
            out.append((s, m.end(), "EMAIL", 0.95))

    # -- short numbers: dates of birth, house numbers -------------------------------------------

    def _short(self, text: str, s: int, e: int, out: list[Candidate]) -> int | None:
        if (m := _MDATE.match(text, s)) is not None:
            if m.group(1).lower() in _MONTHS:
                return self._birth_date(text, s, m.end(), out)
        elif (m := _MDATE_TAIL.match(text, s)) is not None:  # "March 12, 1985": month before
            w = _MONTH_BEFORE.search(text, max(0, s - 14), s)
            if w is not None and w.group(1).lower() in _MONTHS:
                return self._birth_date(text, w.start(), m.end(), out)
        if "POSTAL_ADDRESS" not in self.entities:
            return None
        if (a := _ADDR_NUMBER_FIRST.match(text, s)) is not None:
            return self._add_address(text, s, a.end(), out)
        if s >= 2 and text[s - 1] == " " and text[s - 2].isalpha():  # "Kerkstraat 12, 1012 AB ..."
            h = _HOUSE_NUMBER.match(text, s)
            if h is not None:
                return self._after(text, s, h.end(), out)
        return None

    def _birth_date(self, text: str, s: int, e: int, out: list[Candidate]) -> int:
        if "DATE_OF_BIRTH" in self.entities:
            year = int(text[e - 4 : e])
            if 1900 <= year <= datetime.date.today().year and _near(_DOB_CTX, text, s, e, 48, 20):
                out.append((s, e, "DATE_OF_BIRTH", 0.9))
        return e

    def _after(self, text: str, s: int, e: int, out: list[Candidate]) -> int | None:
        """A house number at [s, e) after the street name: "Calle Mayor 12", "Hauptstraße 5"."""
        if "POSTAL_ADDRESS" not in self.entities:
            return None
        # Cheap rejection first: the word before the number must be capitalised ("Mayor 12"), a
        # street word, a particle ("dei 22") or a number mark ("nº 3"): "in room 4." is not.
        j = text.rfind(" ", max(0, s - 40), s - 1)
        prev = text[j + 1 : s].rstrip(" ,")
        if not prev or not (prev[0].isupper() or prev.lower() in _PREV_OK or prev.lower().endswith(_COMPOUND_SUFFIXES)):
            return None
        bis = _BIS.match(text, e)
        end = bis.end() if bis else e
        start = _street_start(text, s)
        if start is None:
            # No street word ("Unter den Linden 77", "Damrak 11"): a postcode and a city right
            # after the number still make it an address, with capitalised words before it.
            if _POSTCODE_TAIL.match(text, end) is None or (start := _name_start(text, s)) is None:
                return None
            return self._add_address(text, start, end, out, base=0.6)
        return self._add_address(text, start, end, out)

    def _add_address(self, text: str, start: int, end: int, out: list[Candidate], base: float = 0.75) -> int:
        tail = _ADDR_TAIL.match(text, end)
        if tail is not None:
            end = tail.end()
        out.append((start, end, "POSTAL_ADDRESS", self._boost(text, start, end, "POSTAL_ADDRESS", base, 0.15)))
        return end

    # -- scoring and overlaps -------------------------------------------------------------------

    def _context(self, text: str, s: int, e: int, entity: str) -> bool:
        return _near(_CTX[entity], text, s, e, 48, 16)

    def _boost(self, text: str, s: int, e: int, entity: str, base: float, boost: float) -> float:
        score = base + boost if self._context(text, s, e, entity) else base
        if boost >= 0.3 and _near(_NEG_CTX, text, s, e, 24, 0):
            score -= 0.3  # a weakly checked id right after "order"/"invoice" is a reference
        return min(score, 1.0)

    def _resolve(self, cands: list[Candidate]) -> list[Finding]:
        if not cands:
            return []
        kept: list[Candidate] = []
        threshold = self.min_score
        for c in sorted(
            (c for c in cands if c[3] >= threshold and c[2] in self.entities),
            key=lambda c: (-c[3], _RANK[c[2]], c[0] - c[1]),
        ):
            if all(c[1] <= k[0] or c[0] >= k[1] for k in kept):
                kept.append(c)
        kept.sort()
        return [Finding(entity, s, e, round(score, 3)) for s, e, entity, score in kept]


def _street_start(text: str, s: int) -> int | None:
    """Where the street name before the house number at `s` starts, if the words before it name
    a street: a one-word Dutch or German name ("Kerkstraat", "Hauptstr."), or a street type and
    capitalised words ("Calle Mayor", "Via dei Mille", "Berliner Straße")."""
    lo = max(0, s - 64)
    window = text[lo:s]
    if window.endswith(", "):  # "Via Roma, 12"
        window = window[:-2] + " "
    cut = max(window.rfind(","), window.rfind(";"), window.rfind(":"), window.rfind("\n"), window.rfind("("))
    if cut >= 0:
        window = window[cut + 1 :]
    words = window.split()
    if words and words[-1].lower() in _NUMBER_MARKS:
        words.pop()
    if not words:
        return None
    last = words[-1]
    low = last.lower()
    first = 0  # how many words from the right the name has, once found
    if last[0].isupper() and low.endswith(_COMPOUND_SUFFIXES):
        first = 2 if low in _TYPE_FIRST and len(words) >= 2 and words[-2][0].isupper() else 1
    else:
        for k in range(2, min(len(words), 7) + 1):
            w = words[-k]
            if w.lower() in _TYPE_FIRST:
                first = k
                break
            if not (w[0].isupper() or w[0].isdigit() or w.lower() in _NAME_PARTICLES):
                return None
        if not first:
            return None
    end = s
    for w in words[-1 : -first - 1 : -1]:
        end = text.rfind(w, lo, end)
    return end


def _in_url(text: str, s: int) -> bool:
    """Whether `s` is inside a "scheme://..." token (no whitespace between)."""
    lo = max(0, s - 256)
    token_start = max(text.rfind(" ", lo, s), text.rfind("\n", lo, s), text.rfind("\t", lo, s)) + 1
    return text.find("://", max(token_start, lo), s) >= 0


def _name_start(text: str, s: int) -> int | None:
    """Start of the capitalised words (particles allowed inside) right before the number at `s`:
    "An der Alster 16" -> "An"; none when the word before is not capitalised."""
    lo = max(0, s - 48)
    window = text[lo:s]
    cut = max(window.rfind(","), window.rfind(";"), window.rfind(":"), window.rfind("\n"), window.rfind("."))
    words = window[cut + 1 :].split()
    k = 0
    while k < min(len(words), 4) and (words[-k - 1][0].isupper() or (k and words[-k - 1] in _NAME_PARTICLES)):
        k += 1
    while k and not words[-k][0].isupper():  # the name starts with a capital, not a particle
        k -= 1
    if not k:
        return None
    end = s
    for w in words[-1 : -k - 1 : -1]:
        end = text.rfind(w, lo, end)
    return end


def _ip_score(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> float:
    # 127.0.0.1 and 0.0.0.0 name no one; private ranges still identify a machine in an organisation.
    return 0.3 if ip.is_loopback or ip.is_unspecified else 0.85


def _groups(raw: str) -> tuple[list[int], list[str]]:
    """Lengths of the digit groups of `raw` and the separators between them."""
    groups: list[int] = []
    seps: list[str] = []
    run = 0
    for ch in raw:
        if ch.isdigit():
            run += 1
        elif run:
            groups.append(run)
            seps.append(ch)
            run = 0
    if run:
        groups.append(run)
    return groups, seps


def _card_grouping(groups: list[int], seps: list[str]) -> bool:
    """Cards are written in one block, in fours, or 4-6-5 / 4-6-4 (Amex, Diners), one separator kind."""
    if len(groups) == 1:
        return True
    if len(set(seps)) != 1 or seps[0] not in " -\u00a0\u202f\u2009":
        return False
    if groups in ([4, 6, 5], [4, 6, 4]):
        return True
    return all(g == 4 for g in groups[:-1]) and 1 <= groups[-1] <= 4


def _valid_date(m: re.Match[str]) -> bool:
    if m.group(1) is not None:
        a, b, y = int(m.group(1)), int(m.group(2)), m.group(3)
        year = int(y) if len(y) == 4 else 1900 + int(y)
        return any(_is_date(year, mo, d) for d, mo in ((a, b), (b, a)))
    return _is_date(int(m.group(4)), int(m.group(5)), int(m.group(6)))


def _is_date(year: int, month: int, day: int) -> bool:
    if not 1900 <= year <= datetime.date.today().year:
        return False
    try:
        datetime.date(year, month, day)
    except ValueError:
        return False
    return True


def _valid_iban(m: re.Match[str]) -> int:
    """End of the valid IBAN that `m` (an IBAN shape) starts with, 0 if none; retries without
    trailing groups that a greedy match took from the following text ("... 0130 00 AB12 ...")."""
    start = m.start()
    candidate = m.group()
    while len(candidate) >= 15:
        if _iban.is_valid(_nfkc(candidate)):
            return start + len(candidate)
        cut = max(candidate.rfind(" "), candidate.rfind("\u00a0"))
        if cut <= 4:
            return 0
        candidate = candidate[:cut]
    return 0
