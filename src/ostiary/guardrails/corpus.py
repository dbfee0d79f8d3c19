"""A seeded synthetic corpus with gold spans, to measure the PII and secrets scanners.

`generate(n, seed)` returns `n` documents of about 2 KB in English, French, German, Spanish,
Italian and Dutch (or mixed), the same for the same arguments on every machine. Each document
mixes ordinary sentences with values of every entity the scanners know, written the ways people
write them (with and without separators, national and international phone formats, labelled in
the document's language), and with near misses that must *not* be found: 16-digit numbers that
fail Luhn, IBANs with a wrong check, order numbers, version strings, dates that are not birth
dates, commit hashes, request ids, UUIDs, placeholder passwords. Every generated value is valid
by its own rules (check digits computed, phone numbers accepted by `phonenumbers`), and each
document carries its gold spans (entity, start, end).

Choices that shape the figures, stated here so that they are read with them:
- National identifiers whose check is weak (NL BSN, DE IdNr, UK NHS, BE national number) and bare
  9-digit SSNs appear with a label naming them ("BSN", "Steuer-ID", ...), as in real forms; the
  scanner needs such a label for them, and no corpus can tell them from reference numbers without.
- Dates of birth always have a birth word near them; other dates are negatives.
- Values are synthetic: no real person's data, and secrets follow the providers' formats only.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import random
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

import phonenumbers
from stdnum import iban as _iban
from stdnum import luhn as _luhn
from stdnum.be import nn as _be_nn
from stdnum.de import idnr as _de_idnr
from stdnum.es import ccc as _es_ccc
from stdnum.es import dni as _es_dni
from stdnum.es import nie as _es_nie
from stdnum.fr import nir as _fr_nir
from stdnum.gb import nhs as _gb_nhs
from stdnum.it import codicefiscale as _it_cf
from stdnum.nl import bsn as _nl_bsn
from stdnum.us import ssn as _us_ssn

__all__ = ["LANGUAGES", "PII_GOLD_ENTITIES", "SECRET_GOLD_ENTITIES", "Document", "EntityScore", "GoldSpan", "generate", "misses", "score"]

LANGUAGES: Final = ("en", "fr", "de", "es", "it", "nl")


@dataclass(frozen=True, slots=True)
class GoldSpan:
    entity: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Document:
    text: str
    lang: str  # one of LANGUAGES, or "mixed"
    spans: tuple[GoldSpan, ...]


# -- ordinary sentences, with numbers that are no one's data ------------------------------------

_FILLER: Final[dict[str, tuple[str, ...]]] = {
    "en": (
        "Please summarise the attached notes for the steering committee.",
        "In 2023, revenue grew 15% to 3.2 million across 12 regions.",
        "The team shipped version 2 of the platform in March and fixed 48 bugs.",
        "Keep the answer under 200 words and use plain language.",
        "We expect the migration to take 3 to 4 weeks, depending on the vendor.",
        "Customer satisfaction reached 87 out of 100 in the last survey.",
        "The meeting is moved to Thursday at 10:30 in room 4.",
        "Could you rewrite this paragraph so that it sounds less formal?",
        "Our warehouse shipped 1,250 parcels last week, a record for the site.",
        "List the three main risks and one mitigation for each.",
        "The budget for Q3 is 45,000 euros, of which 60% is already committed.",
        "Explain the difference between a process and a thread in simple terms.",
    ),
    "fr": (
        "Merci de résumer les notes jointes pour le comité de pilotage.",
        "En 2023, le chiffre d'affaires a progressé de 15 % dans 12 régions.",
        "L'équipe a livré la version 2 de la plateforme en mars et corrigé 48 anomalies.",
        "La réponse doit tenir en moins de 200 mots, dans un langage simple.",
        "La migration devrait prendre 3 à 4 semaines selon le prestataire.",
        "La satisfaction client atteint 87 sur 100 lors de la dernière enquête.",
        "La réunion est déplacée à jeudi, 10 h 30, salle 4.",
        "Pouvez-vous reformuler ce paragraphe sur un ton moins formel ?",
        "Le budget du troisième trimestre est de 45 000 euros, dont 60 % déjà engagés.",
        "Citez les trois principaux risques et une mesure pour chacun.",
    ),
    "de": (
        "Bitte fassen Sie die beigefügten Notizen für den Lenkungsausschuss zusammen.",
        "Im Jahr 2023 stieg der Umsatz in 12 Regionen um 15 % auf 3,2 Millionen.",
        "Das Team hat im März Version 2 der Plattform ausgeliefert und 48 Fehler behoben.",
        "Die Antwort sollte unter 200 Wörtern bleiben und einfach formuliert sein.",
        "Die Migration dauert voraussichtlich 3 bis 4 Wochen, je nach Dienstleister.",
        "Die Kundenzufriedenheit lag bei der letzten Umfrage bei 87 von 100.",
        "Das Treffen wird auf Donnerstag, 10:30 Uhr, Raum 4 verschoben.",
        "Können Sie diesen Absatz weniger förmlich formulieren?",
        "Das Budget für das dritte Quartal beträgt 45.000 Euro, davon sind 60 % verplant.",
        "Nennen Sie die drei wichtigsten Risiken und je eine Gegenmaßnahme.",
    ),
    "es": (
        "Por favor, resume las notas adjuntas para el comité de dirección.",
        "En 2023 los ingresos crecieron un 15 % en 12 regiones.",
        "El equipo lanzó la versión 2 de la plataforma en marzo y corrigió 48 errores.",
        "La respuesta debe tener menos de 200 palabras y un lenguaje sencillo.",
        "La migración llevará de 3 a 4 semanas, según el proveedor.",
        "La satisfacción del cliente alcanzó 87 sobre 100 en la última encuesta.",
        "La reunión se traslada al jueves a las 10:30 en la sala 4.",
        "¿Puedes reescribir este párrafo con un tono menos formal?",
        "El presupuesto del tercer trimestre es de 45.000 euros, con el 60 % comprometido.",
        "Enumera los tres riesgos principales y una medida para cada uno.",
    ),
    "it": (
        "Per favore, riassumi le note allegate per il comitato direttivo.",
        "Nel 2023 il fatturato è cresciuto del 15% in 12 regioni.",
        "Il team ha rilasciato la versione 2 della piattaforma a marzo e corretto 48 bug.",
        "La risposta deve restare sotto le 200 parole, con un linguaggio semplice.",
        "La migrazione richiederà da 3 a 4 settimane, a seconda del fornitore.",
        "La soddisfazione dei clienti ha raggiunto 87 su 100 nell'ultimo sondaggio.",
        "La riunione è spostata a giovedì alle 10:30 nella sala 4.",
        "Puoi riscrivere questo paragrafo con un tono meno formale?",
        "Il budget del terzo trimestre è di 45.000 euro, di cui il 60% già impegnato.",
        "Elenca i tre rischi principali e una contromisura per ciascuno.",
    ),
    "nl": (
        "Vat de bijgevoegde notities samen voor de stuurgroep.",
        "In 2023 groeide de omzet met 15% in 12 regio's.",
        "Het team leverde in maart versie 2 van het platform op en loste 48 fouten op.",
        "Houd het antwoord onder de 200 woorden en gebruik eenvoudige taal.",
        "De migratie duurt naar verwachting 3 tot 4 weken, afhankelijk van de leverancier.",
        "De klanttevredenheid kwam bij de laatste enquête uit op 87 van de 100.",
        "De vergadering wordt verplaatst naar donderdag om 10:30 uur in zaal 4.",
        "Kun je deze alinea minder formeel herschrijven?",
        "Het budget voor het derde kwartaal is 45.000 euro, waarvan 60% al vastligt.",
        "Noem de drie belangrijkste risico's en per risico een maatregel.",
    ),
}

# -- labels per entity and language ("{}" is the value) -----------------------------------------

_T = dict[str, tuple[str, ...]]
_TEMPLATES: Final[dict[str, _T]] = {
    "EMAIL": {
        "en": ("You can reach her at {}.", "Send the report to {} before Friday.", "Contact: {}"),
        "fr": ("Vous pouvez la joindre à {}.", "Envoyez le rapport à {} avant vendredi.", "Contact : {}"),
        "de": ("Sie erreichen sie unter {}.", "Bitte den Bericht an {} schicken.", "Kontakt: {}"),
        "es": ("Puedes escribirle a {}.", "Envía el informe a {} antes del viernes.", "Contacto: {}"),
        "it": ("Potete scriverle a {}.", "Inviate il rapporto a {} entro venerdì.", "Contatto: {}"),
        "nl": ("Je kunt haar mailen op {}.", "Stuur het rapport naar {} voor vrijdag.", "Contact: {}"),
    },
    "PHONE": {
        "en": ("Call me on {} after 5 pm.", "Phone: {}", "His mobile is {}.", "Reach the desk at {}."),
        "fr": ("Appelez-moi au {} après 17 h.", "Tél. : {}", "Son portable est le {}.", "Joignable au {}."),
        "de": ("Rufen Sie mich unter {} an.", "Telefon: {}", "Seine Handynummer ist {}.", "Erreichbar unter {}."),
        "es": ("Llámame al {} por la tarde.", "Teléfono: {}", "Su móvil es el {}.", "Contacto en el {}."),
        "it": ("Chiamami al {} dopo le 17.", "Tel.: {}", "Il suo cellulare è {}.", "Raggiungibile al {}."),
        "nl": ("Bel me op {} na vijven.", "Telefoon: {}", "Zijn mobiele nummer is {}.", "Bereikbaar op {}."),
    },
    "CREDIT_CARD": {
        "en": ("Charge it to my card {} please.", "Card number: {}", "I paid with {} yesterday."),
        "fr": ("Débitez ma carte {} s'il vous plaît.", "Numéro de carte : {}", "J'ai payé avec {}."),
        "de": ("Bitte belasten Sie meine Karte {}.", "Kartennummer: {}", "Bezahlt mit {}."),
        "es": ("Cárgalo a mi tarjeta {}.", "Número de tarjeta: {}", "Pagué con {} ayer."),
        "it": ("Addebitate sulla mia carta {}.", "Numero carta: {}", "Ho pagato con {} ieri."),
        "nl": ("Schrijf het af van mijn kaart {}.", "Kaartnummer: {}", "Betaald met {}."),
    },
    "IBAN": {
        "en": ("Please wire the refund to {}.", "IBAN: {}", "My account is {}."),
        "fr": ("Merci de virer le remboursement sur {}.", "IBAN : {}", "Mon compte : {}."),
        "de": ("Bitte überweisen Sie auf {}.", "IBAN: {}", "Mein Konto: {}."),
        "es": ("Haz la transferencia a {}.", "IBAN: {}", "Mi cuenta es {}."),
        "it": ("Fate il bonifico su {}.", "IBAN: {}", "Il mio conto è {}."),
        "nl": ("Maak het bedrag over naar {}.", "IBAN: {}", "Mijn rekening is {}."),
    },
    "US_SSN": {"en": ("My SSN is {}.", "Social Security Number: {}", "SSN {} on file.")},
    "FR_NIR": {"fr": ("Mon numéro de sécurité sociale est le {}.", "N° de sécu : {}", "NIR {} à vérifier.")},
    "UK_NINO": {"en": ("My National Insurance number is {}.", "NI number: {}", "NINO {} attached.")},
    "UK_NHS": {"en": ("My NHS number is {}.", "NHS no: {}", "Patient NHS number {}.")},
    "DE_IDNR": {"de": ("Meine Steuer-ID lautet {}.", "Steuerliche Identifikationsnummer: {}", "IdNr {} bitte prüfen.")},
    "ES_DNI": {"es": ("Mi DNI es {}.", "DNI: {}", "Documento de identidad {}.")},
    "ES_NIE": {"es": ("Mi NIE es {}.", "NIE: {}", "Número de extranjero {}.")},
    "IT_CODICE_FISCALE": {"it": ("Il mio codice fiscale è {}.", "Codice fiscale: {}", "C.F. {}")},
    "NL_BSN": {"nl": ("Mijn BSN is {}.", "Burgerservicenummer: {}", "BSN {} graag controleren.")},
    "BE_NN": {
        "fr": ("Mon numéro de registre national est {}.", "Registre national : {}"),
        "nl": ("Mijn rijksregisternummer is {}.", "Rijksregisternummer: {}"),
    },
    "IP_ADDRESS": {
        "en": ("The login came from {} at night.", "Block the address {} on the firewall.", "Client IP: {}"),
        "fr": ("La connexion venait de {}.", "Bloquez l'adresse {} sur le pare-feu.", "IP client : {}"),
        "de": ("Der Login kam von {}.", "Bitte {} in der Firewall sperren.", "Client-IP: {}"),
        "es": ("El acceso vino de {}.", "Bloquea la dirección {} en el cortafuegos.", "IP del cliente: {}"),
        "it": ("L'accesso proveniva da {}.", "Bloccate l'indirizzo {} sul firewall.", "IP client: {}"),
        "nl": ("De login kwam van {}.", "Blokkeer het adres {} op de firewall.", "Client-IP: {}"),
    },
    "DATE_OF_BIRTH": {
        "en": ("I was born on {}.", "Date of birth: {}", "DOB {}, London.", "d.o.b. {}", "Patient (born {}) was admitted."),
        "fr": ("Je suis né le {}.", "Date de naissance : {}", "Née le {} à Lyon."),
        "de": ("Ich bin am {} geboren.", "Geburtsdatum: {}", "geboren am {} in Köln."),
        "es": ("Nací el {}.", "Fecha de nacimiento: {}", "Nacida el {} en Sevilla."),
        "it": ("Sono nato il {}.", "Data di nascita: {}", "Nata il {} a Torino."),
        "nl": ("Ik ben geboren op {}.", "Geboortedatum: {}", "Geboren op {} in Utrecht."),
    },
    "POSTAL_ADDRESS": {
        "en": ("Ship it to {}.", "Address: {}", "She lives at {} with her family."),
        "fr": ("Livrez au {}.", "Adresse : {}", "Il habite {} depuis 2010."),
        "de": ("Bitte liefern an {}.", "Adresse: {}", "Sie wohnt in der {} seit 2010."),
        "es": ("Envíalo a {}.", "Dirección: {}", "Vive en {} desde 2010."),
        "it": ("Spedite a {}.", "Indirizzo: {}", "Abita in {} dal 2010."),
        "nl": ("Stuur het naar {}.", "Adres: {}", "Ze woont op {} sinds 2010."),
    },
}

# Secrets are pasted the same way in every language: in config snippets, commands and sentences.
_SECRET_TEMPLATES: Final[dict[str, tuple[str, ...]]] = {
    "AWS_ACCESS_KEY": ("aws_access_key_id = {}", "export AWS_ACCESS_KEY_ID={}", "the key id is {} for prod"),
    "AWS_SECRET_KEY": ("aws_secret_access_key = {}", "export AWS_SECRET_ACCESS_KEY={}"),
    "GCP_API_KEY": ("const firebaseKey = \"{}\";", "maps key: {}", "https://maps.googleapis.com/maps/api/js?key={}"),
    "AZURE_STORAGE_KEY": (
        "DefaultEndpointsProtocol=https;AccountName=prodstore;AccountKey={};EndpointSuffix=core.windows.net",
    ),
    "OPENAI_API_KEY": ("OPENAI_API_KEY={}", "client = OpenAI(api_key=\"{}\")", "my key {} stopped working"),
    "ANTHROPIC_API_KEY": ("ANTHROPIC_API_KEY={}", "x-api-key: {}"),
    "GITHUB_TOKEN": ("git clone https://{}@github.com/acme/app.git", "GITHUB_TOKEN={}", "token {} expired"),
    "GITLAB_TOKEN": ("PRIVATE-TOKEN: {}", "gitlab token {}"),
    "SLACK_TOKEN": ("SLACK_BOT_TOKEN={}", "slack.token = \"{}\""),
    "SLACK_WEBHOOK": ("curl -X POST {} -d '{\"text\":\"hi\"}'", "webhook: {}"),
    "STRIPE_KEY": ("stripe.api_key = \"{}\"", "STRIPE_SECRET={}"),
    "TWILIO_API_KEY": ("TWILIO_API_KEY={}", "twilio key sid {}"),
    "SENDGRID_API_KEY": ("SENDGRID_API_KEY={}", "sg key {}"),
    "NPM_TOKEN": ("//registry.npmjs.org/:_authToken={}", "NPM_TOKEN={}"),
    "PRIVATE_KEY": ("{}", "key.pem:\n{}"),
    "JWT": ("Authorization: Bearer {}", "the session cookie is {}"),
    "PASSWORD": (
        "postgres://app:{}@db.internal:5432/orders",
        "mysql://root:{}@db-2.example.net/shop",
        "password: {}",
        "DB_PASSWORD={}",
        "My password is {} if you need to log in.",
        "Server=sql01;Database=crm;User Id=sa;Password={};",
    ),
    "GENERIC_SECRET": ("api_key = \"{}\"", "client_secret: {}", "\"auth_token\": \"{}\"", "SECRET_KEY={}"),
}

_NEGATIVES: Final[tuple[str, ...]] = (
    "Order #{order} was shipped on {date}.",
    "Invoice {order} is due on {date}.",
    "Please quote reference {order} in your reply.",
    "We upgraded to version {version} last night.",
    "The build {version} fixed the crash.",
    "Card {bad_card} was declined.",
    "The IBAN {bad_iban} was rejected by the bank.",
    "Commit {sha} introduced the regression.",
    "Request id: {hex32}",
    "Trace {uuid} shows the timeout.",
    "Between {year}-{year2} the plant produced {thousands} units.",
    "The meeting on {date} is confirmed.",
    "Run pip install scikit-learn==1.4.2 and sk-learn is not a package.",
    "The token count is 4096 and the context window is 128000.",
    "password: ******** (redacted by the admin)",
    "api_key: <YOUR_API_KEY>",
    "Set PASSWORD=${{DB_PASSWORD}} in the environment.",
    "ISBN {isbn} is out of print.",
    "Server version {version_ip} is installed.",
    "my_extremely_long_variable_name_for_testing = compute_total(items)",
    "Contract No. {contract} was renewed.",
    "Ticket #{ticket} is assigned to the support team.",
    "Serial SN-{serial} is under warranty.",
    "Flight LH{flight} departs at 10:45 from gate B{gate}.",
    "Room 12B, building 7, extension {ext}.",
    "We run Python {version} on {year} hardware, copyright {year}-{year2}.",
    "The total was 1.234.567,89 EUR, up from 987.654,32 EUR.",
    "The device MAC is 00:1A:2B:3C:4D:5E and the log time 10:30:45.",
    "The office is at 48.8566, 2.3522 on the map.",
    "password policy: min 12 chars, and the password is required for all users.",
    "hash: {hex32}",
    "See https://example.com/docs?page=2&lang=en for details.",
    "base_url: https://api.example.com/v1",
    "my_token_value = compute_token(user_id)",
    "Use the key_name setting and the token_limit option.",
)

_FIRST: Final = ("anna", "marc", "julia", "pierre", "lukas", "sofia", "marco", "eva", "noah", "lea", "tom", "ines")
_LAST: Final = ("martin", "muller", "garcia", "rossi", "dejong", "smith", "dubois", "schmidt", "lopez", "bianchi")
_DOMAINS: Final = ("example.com", "mail.example.org", "acme.io", "post.example.de", "example.fr", "correo.example.es")

_PHONE_REGIONS: Final[dict[str, tuple[str, ...]]] = {
    "en": ("US", "GB", "IE"),
    "fr": ("FR", "BE", "CH"),
    "de": ("DE", "AT", "CH"),
    "es": ("ES",),
    "it": ("IT",),
    "nl": ("NL", "BE"),
}

_MONTH_NAMES: Final[dict[str, tuple[str, ...]]] = {
    "en": ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"),
    "fr": ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre",
           "novembre", "décembre"),
    "de": ("Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August", "September", "Oktober",
           "November", "Dezember"),
    "es": ("enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto", "septiembre", "octubre",
           "noviembre", "diciembre"),
    "it": ("gennaio", "febbraio", "marzo", "aprile", "maggio", "giugno", "luglio", "agosto", "settembre",
           "ottobre", "novembre", "dicembre"),
    "nl": ("januari", "februari", "maart", "april", "mei", "juni", "juli", "augustus", "september", "oktober",
           "november", "december"),
}

_STREETS: Final[dict[str, tuple[str, ...]]] = {
    "en": ("Baker Street", "Elm Street", "Park Avenue", "Station Road", "Church Lane", "Maple Drive", "Oak Court"),
    "fr": ("rue de la Paix", "avenue Victor Hugo", "boulevard Saint-Michel", "rue des Lilas", "place Bellecour",
           "chemin des Vignes"),
    "de": ("Hauptstraße", "Bahnhofstraße", "Lindenweg", "Goethestraße", "Berliner Straße", "Schillerplatz"),
    "es": ("Calle Mayor", "Calle de Alcalá", "Avenida de la Constitución", "Paseo de Gracia", "Plaza Nueva"),
    "it": ("Via Roma", "Via dei Mille", "Corso Vittorio Emanuele", "Piazza Garibaldi", "Viale Europa"),
    "nl": ("Kerkstraat", "Prinsengracht", "Stationsweg", "Dorpsstraat", "Julianalaan", "Marktplein"),
}
_CITIES: Final[dict[str, tuple[tuple[str, str], ...]]] = {
    "en": (("London", "uk"), ("Springfield", "us"), ("Manchester", "uk"), ("Portland", "us")),
    "fr": (("Paris", "75002"), ("Lyon", "69003"), ("Bordeaux", "33000"), ("Lille", "59000")),
    "de": (("Berlin", "10115"), ("München", "80331"), ("Köln", "50667"), ("Hamburg", "20095")),
    "es": (("Madrid", "28013"), ("Barcelona", "08007"), ("Sevilla", "41001"), ("Valencia", "46002")),
    "it": (("Roma", "00184"), ("Milano", "20121"), ("Torino", "10121"), ("Napoli", "80133")),
    "nl": (("Amsterdam", "1012 AB"), ("Utrecht", "3511 LX"), ("Rotterdam", "3011 AD"), ("Leiden", "2311 EZ")),
}


# -- value generators ----------------------------------------------------------------------------


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(n))


def _alnum(rng: random.Random, n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _email(rng: random.Random, lang: str) -> str:
    sep = rng.choice((".", "_", "", "-"))
    tail = rng.choice(("", str(rng.randint(1, 99))))
    value = f"{rng.choice(_FIRST)}{sep}{rng.choice(_LAST)}{tail}@{rng.choice(_DOMAINS)}"
    return value.capitalize() if rng.random() < 0.2 else value


def _phone(rng: random.Random, lang: str) -> str:
    region = rng.choice(_PHONE_REGIONS[lang])
    kind = rng.choice((phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE))
    example = phonenumbers.example_number_for_type(region, kind)
    assert example is not None
    base = str(example.national_number)
    for _ in range(50):
        keep = max(2, len(base) - 6)
        number = phonenumbers.PhoneNumber(
            country_code=example.country_code, national_number=int(base[:keep] + _digits(rng, len(base) - keep))
        )
        if phonenumbers.is_valid_number(number):
            break
    else:
        number = example
    fmt = rng.choice(
        (
            phonenumbers.PhoneNumberFormat.INTERNATIONAL,
            phonenumbers.PhoneNumberFormat.INTERNATIONAL,
            phonenumbers.PhoneNumberFormat.NATIONAL,
            phonenumbers.PhoneNumberFormat.E164,
        )
    )
    text = phonenumbers.format_number(number, fmt)
    roll = rng.random()
    if fmt == phonenumbers.PhoneNumberFormat.INTERNATIONAL and roll < 0.15:
        text = "00" + text[1:]  # 0033 6 12 34 56 78
    elif fmt == phonenumbers.PhoneNumberFormat.NATIONAL and region in ("FR", "BE") and roll < 0.5:
        text = text.replace(" ", rng.choice((".", "\u00a0", "-")))  # 06.12.34.56.78
    elif fmt == phonenumbers.PhoneNumberFormat.NATIONAL and region == "US" and roll < 0.5:
        text = text.replace("(", "").replace(") ", "-")  # 202-555-0143
    return text


def _card_number(rng: random.Random) -> str:
    prefix, length = rng.choice((("4", 16), ("51", 16), ("55", 16), ("2221", 16), ("37", 15), ("34", 15), ("6011", 16)))
    body = prefix + _digits(rng, length - len(prefix) - 1)
    return body + _luhn.calc_check_digit(body)


def _format_card(rng: random.Random, number: str) -> str:
    if len(number) == 15:
        parts = [number[:4], number[4:10], number[10:]]
    else:
        parts = [number[i : i + 4] for i in range(0, len(number), 4)]
    return rng.choice((" ", "-", "", " ", "\u00a0")).join(parts)


def _card(rng: random.Random, lang: str) -> str:
    return _format_card(rng, _card_number(rng))


def _bban(rng: random.Random, cc: str) -> str:
    if cc == "DE":
        return _digits(rng, 18)
    if cc == "FR":
        return _digits(rng, 10) + _alnum(rng, 11, string.ascii_uppercase + string.digits) + _digits(rng, 2)
    if cc == "ES":
        number = _digits(rng, 8) + "00" + _digits(rng, 10)
        return number[:8] + _es_ccc.calc_check_digits(number) + number[10:]
    if cc == "IT":
        return rng.choice(string.ascii_uppercase) + _digits(rng, 10) + _alnum(rng, 12, string.ascii_uppercase + string.digits)
    if cc == "NL":
        return _alnum(rng, 4, string.ascii_uppercase) + _digits(rng, 10)
    if cc == "BE":
        first = _digits(rng, 10)
        check = int(first) % 97 or 97
        return f"{first}{check:02d}"
    return _alnum(rng, 4, string.ascii_uppercase) + _digits(rng, 14)  # GB


def _iban_compact(rng: random.Random) -> str:
    cc = rng.choice(("DE", "FR", "ES", "IT", "NL", "BE", "GB"))
    while True:  # Belgian IBANs must also name an existing bank: draw again until one does
        bban = _bban(rng, cc)
        value = cc + _iban.calc_check_digits(cc + "00" + bban) + bban
        if _iban.is_valid(value):
            return value


def _iban_value(rng: random.Random, lang: str) -> str:
    value = _iban_compact(rng)
    if rng.random() < 0.7:
        return " ".join(value[i : i + 4] for i in range(0, len(value), 4))
    return value


def _ssn(rng: random.Random, lang: str) -> str:
    while True:
        area = rng.randint(1, 899)
        if area == 666:
            continue
        value = f"{area:03d}{rng.randint(1, 99):02d}{rng.randint(1, 9999):04d}"
        if _us_ssn.is_valid(value):
            break
    sep = rng.choice(("-", "-", "-", " ", ""))
    return f"{value[:3]}{sep}{value[3:5]}{sep}{value[5:]}"


def _nir(rng: random.Random, lang: str) -> str:
    dept = rng.choice([d for d in range(1, 96) if d != 20])
    body = f"{rng.randint(1, 2)}{rng.randint(40, 99):02d}{rng.randint(1, 12):02d}{dept:02d}{rng.randint(1, 990):03d}{rng.randint(1, 999):03d}"
    value = body + _fr_nir.calc_check_digits(body)
    assert _fr_nir.is_valid(value)
    if rng.random() < 0.6:
        return " ".join((value[0], value[1:3], value[3:5], value[5:7], value[7:10], value[10:13], value[13:]))
    return value


_NINO_FIRST: Final = "ABCEGHJKLMNOPRSTWXYZ"
_NINO_SECOND: Final = "ABCEGHJKLMNPRSTWXYZ"


def _nino(rng: random.Random, lang: str) -> str:
    while True:
        prefix = rng.choice(_NINO_FIRST) + rng.choice(_NINO_SECOND)
        if prefix not in ("BG", "GB", "NK", "KN", "TN", "NT", "ZZ"):
            break
    digits = _digits(rng, 6)
    suffix = rng.choice("ABCD")
    if rng.random() < 0.5:
        return f"{prefix} {digits[:2]} {digits[2:4]} {digits[4:]} {suffix}"
    return f"{prefix}{digits}{suffix}"


def _with_check(rng: random.Random, body: Callable[[], str], valid: Callable[[str], bool]) -> str:
    """A value of `body()` plus the last digit that makes `valid` true (retrying new bodies)."""
    while True:
        b = body()
        for d in string.digits:
            if valid(b + d):
                return b + d


def _nhs(rng: random.Random, lang: str) -> str:
    value = _with_check(rng, lambda: str(rng.randint(1, 9)) + _digits(rng, 8), _gb_nhs.is_valid)
    return f"{value[:3]} {value[3:6]} {value[6:]}" if rng.random() < 0.6 else value


def _idnr_body(rng: random.Random) -> str:
    digits = rng.sample(string.digits, 9)  # nine distinct digits, one of them written twice
    digits.append(rng.choice(digits))
    rng.shuffle(digits)
    if digits[0] == "0":
        i = next(i for i, d in enumerate(digits) if d != "0")
        digits[0], digits[i] = digits[i], digits[0]
    return "".join(digits)


def _idnr(rng: random.Random, lang: str) -> str:
    value = _with_check(rng, lambda: _idnr_body(rng), _de_idnr.is_valid)
    return f"{value[:2]} {value[2:5]} {value[5:8]} {value[8:]}" if rng.random() < 0.5 else value


def _dni(rng: random.Random, lang: str) -> str:
    digits = _digits(rng, 8)
    return digits + rng.choice(("", "-")) + _es_dni.calc_check_digit(digits)


def _nie(rng: random.Random, lang: str) -> str:
    body = rng.choice("XYZ") + _digits(rng, 7)
    value = body + _es_nie.calc_check_digit(body)
    return f"{value[0]}-{value[1:8]}-{value[8]}" if rng.random() < 0.3 else value


_CF_MONTHS: Final = "ABCDEHLMPRST"


def _codice_fiscale(rng: random.Random, lang: str) -> str:
    letters = "".join(rng.choice(string.ascii_uppercase) for _ in range(6))
    day = rng.randint(1, 28) + rng.choice((0, 40))
    body = f"{letters}{rng.randint(40, 99):02d}{rng.choice(_CF_MONTHS)}{day:02d}{rng.choice('ABCDEFGHLM')}{rng.randint(1, 999):03d}"
    value = body + _it_cf.calc_check_digit(body)
    assert _it_cf.is_valid(value)
    return value


def _bsn(rng: random.Random, lang: str) -> str:
    value = _with_check(rng, lambda: str(rng.randint(1, 9)) + _digits(rng, 7), _nl_bsn.is_valid)
    return f"{value[:4]}.{value[4:6]}.{value[6:]}" if rng.random() < 0.3 else value


def _be_national_number(rng: random.Random, lang: str) -> str:
    while True:
        born = datetime.date(rng.randint(1940, 2005), rng.randint(1, 12), rng.randint(1, 28))
        body = born.strftime("%y%m%d") + f"{rng.randint(1, 997):03d}"
        base = int(("2" + body) if born.year >= 2000 else body)
        value = f"{body}{97 - base % 97:02d}"
        if _be_nn.is_valid(value):
            break
    if rng.random() < 0.5:
        return f"{value[:2]}.{value[2:4]}.{value[4:6]}-{value[6:9]}.{value[9:]}"
    return value


def _ip(rng: random.Random, lang: str) -> str:
    if rng.random() < 0.25:
        if rng.random() < 0.5:  # compressed, with a run of zeros
            return str(ipaddress.IPv6Address((0x2001_0DB8 << 96) | rng.getrandbits(32)))
        return str(ipaddress.IPv6Address(rng.getrandbits(128) & ((1 << 128) - 1) | (0x2001 << 112)))
    if rng.random() < 0.3:
        return f"192.168.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
    while True:
        ip = ipaddress.IPv4Address(rng.getrandbits(32))
        if ip.is_global:
            return str(ip)


def _dob(rng: random.Random, lang: str) -> str:
    d = datetime.date(rng.randint(1940, 2005), rng.randint(1, 12), rng.randint(1, 28))
    month = _MONTH_NAMES[lang][d.month - 1]
    style = rng.randint(0, 3)
    if style == 0:
        return d.strftime("%d/%m/%Y") if lang != "en" else d.strftime("%m/%d/%Y")
    if style == 1:
        return d.isoformat()
    if style == 2 and lang in ("de", "nl"):
        return d.strftime("%d.%m.%Y") if lang == "de" else d.strftime("%d-%m-%Y")
    if lang == "en":
        suffix = {1: "st", 2: "nd", 3: "rd"}.get(d.day % 10 if d.day not in (11, 12, 13) else 0, "th")
        return rng.choice(
            (
                f"{month} {d.day}, {d.year}",
                f"{d.day} {month} {d.year}",
                f"{month} {d.day}{suffix}, {d.year}",
                f"the {d.day}{suffix} of {month} {d.year}",
            )
        )
    if lang == "de":
        return f"{d.day}. {month} {d.year}"
    if lang == "es":
        return f"{d.day} de {month} de {d.year}"
    return f"{d.day} {month} {d.year}"


# Street names with no street-type word: found only when a postcode and a city follow them.
_UNTYPED_STREETS: Final[dict[str, tuple[str, ...]]] = {
    "de": ("Unter den Linden", "Am Markt", "An der Alster"),
    "nl": ("Damrak", "Rokin", "Lange Voorhout"),
}


def _address(rng: random.Random, lang: str) -> str:
    street = rng.choice(_STREETS[lang])
    if lang in _UNTYPED_STREETS and rng.random() < 0.1:
        street = rng.choice(_UNTYPED_STREETS[lang])
    number = str(rng.randint(1, 250)) + ("B" if lang == "en" and rng.random() < 0.15 else "")
    city, code = rng.choice(_CITIES[lang])
    if lang == "en":
        line = f"{number} {street}"
        if code == "uk":
            postcode = f"{rng.choice(('NW1', 'SW1A', 'M1', 'E14'))} {rng.randint(1, 9)}{rng.choice('ABDEFGHJ')}{rng.choice('LNPQRSTUWXYZ')}"
            return f"{line}, {city} {postcode}"
        return f"{line}, {city}, {rng.choice(('IL', 'OR', 'MA'))} {rng.randint(10000, 99999)}"
    if lang == "fr":
        line = f"{number}{rng.choice(('', '', ' bis'))} {street}"
    elif lang == "it" and rng.random() < 0.4:
        line = f"{street}, {number}"  # "Via Roma, 12"
    elif lang == "de" and street.endswith("straße") and rng.random() < 0.3:
        line = f"{street[:-3]}. {number}"  # "Hauptstr. 5"
    else:
        line = f"{street} {number}"
    return f"{line}, {code} {city}" if rng.random() < 0.8 else line


_PII_VALUES: Final[dict[str, Callable[[random.Random, str], str]]] = {
    "EMAIL": _email,
    "PHONE": _phone,
    "CREDIT_CARD": _card,
    "IBAN": _iban_value,
    "US_SSN": _ssn,
    "FR_NIR": _nir,
    "UK_NINO": _nino,
    "UK_NHS": _nhs,
    "DE_IDNR": _idnr,
    "ES_DNI": _dni,
    "ES_NIE": _nie,
    "IT_CODICE_FISCALE": _codice_fiscale,
    "NL_BSN": _bsn,
    "BE_NN": _be_national_number,
    "IP_ADDRESS": _ip,
    "DATE_OF_BIRTH": _dob,
    "POSTAL_ADDRESS": _address,
}


# -- secrets ---------------------------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _jwt(rng: random.Random) -> str:
    header = _b64url(json.dumps({"alg": rng.choice(("HS256", "RS256", "ES256")), "typ": "JWT"}).encode())
    payload = _b64url(json.dumps({"sub": _digits(rng, 10), "iat": rng.randint(1_600_000_000, 1_800_000_000)}).encode())
    return f"{header}.{payload}.{_b64url(rng.randbytes(32))}"


def _pem(rng: random.Random) -> str:
    kind = rng.choice(("RSA PRIVATE KEY", "PRIVATE KEY", "EC PRIVATE KEY", "OPENSSH PRIVATE KEY"))
    body = base64.b64encode(rng.randbytes(rng.choice((120, 240)))).decode()
    lines = "\n".join(body[i : i + 64] for i in range(0, len(body), 64))
    return f"-----BEGIN {kind}-----\n{lines}\n-----END {kind}-----"


def _password(rng: random.Random) -> str:
    words = ("Summer", "Tiger", "Blue", "Coffee", "Rocket", "Maple", "Delta")
    return rng.choice(words) + rng.choice(("!", "#", "$", "_", "")) + _digits(rng, rng.randint(2, 4)) + _alnum(rng, rng.randint(0, 4))


_SECRET_VALUES: Final[dict[str, Callable[[random.Random], str]]] = {
    "AWS_ACCESS_KEY": lambda r: r.choice(("AKIA", "ASIA")) + _alnum(r, 16, string.ascii_uppercase + string.digits),
    "AWS_SECRET_KEY": lambda r: _alnum(r, 40, string.ascii_letters + string.digits + "/+"),
    "GCP_API_KEY": lambda r: "AIza" + _alnum(r, 35, string.ascii_letters + string.digits + "_-"),
    "AZURE_STORAGE_KEY": lambda r: base64.b64encode(r.randbytes(64)).decode(),
    "OPENAI_API_KEY": lambda r: r.choice(("sk-proj-" + _alnum(r, 120, string.ascii_letters + string.digits + "_-"),
                                          "sk-" + _alnum(r, 20) + "T3BlbkFJ" + _alnum(r, 20))),
    "ANTHROPIC_API_KEY": lambda r: "sk-ant-api03-" + _alnum(r, 93, string.ascii_letters + string.digits + "_-") + "AA",
    "GITHUB_TOKEN": lambda r: r.choice(("ghp_", "gho_", "ghs_", "ghu_")) + _alnum(r, 36)
    if r.random() < 0.7
    else "github_pat_" + _alnum(r, 22) + "_" + _alnum(r, 59),
    "GITLAB_TOKEN": lambda r: "glpat-" + _alnum(r, 20, string.ascii_letters + string.digits + "_-"),
    "SLACK_TOKEN": lambda r: f"xox{r.choice('bpa')}-{_digits(r, 12)}-{_digits(r, 13)}-{_alnum(r, 24)}",
    "SLACK_WEBHOOK": lambda r: "https://hooks.slack.com/services/T"
    + _alnum(r, 8, string.ascii_uppercase + string.digits)
    + "/B"
    + _alnum(r, 10, string.ascii_uppercase + string.digits)
    + "/"
    + _alnum(r, 24),
    "STRIPE_KEY": lambda r: r.choice(("sk_live_", "rk_live_", "sk_test_")) + _alnum(r, r.choice((24, 99))),
    "TWILIO_API_KEY": lambda r: "SK" + _alnum(r, 32, "0123456789abcdef"),
    "SENDGRID_API_KEY": lambda r: "SG." + _alnum(r, 22, string.ascii_letters + string.digits + "_-") + "."
    + _alnum(r, 43, string.ascii_letters + string.digits + "_-"),
    "NPM_TOKEN": lambda r: "npm_" + _alnum(r, 36),
    "PRIVATE_KEY": _pem,
    "JWT": _jwt,
    "PASSWORD": _password,
    "GENERIC_SECRET": lambda r: _alnum(r, r.choice((24, 32, 40))),
}

PII_GOLD_ENTITIES: Final = tuple(_PII_VALUES)
SECRET_GOLD_ENTITIES: Final = tuple(_SECRET_VALUES)


# -- near misses -------------------------------------------------------------------------------------


def _bad_card(rng: random.Random) -> str:
    number = _card_number(rng)
    wrong = str((int(number[-1]) + rng.randint(1, 9)) % 10)
    return _format_card(rng, number[:-1] + wrong)


def _bad_iban(rng: random.Random) -> str:
    value = _iban_compact(rng)
    check = (int(value[2:4]) + rng.randint(1, 50)) % 97 + 2
    bad = f"{value[:2]}{check:02d}{value[4:]}"
    if _iban.is_valid(bad):
        bad = bad[:-1] + str((int(bad[-1]) + 1) % 10)
    return " ".join(bad[i : i + 4] for i in range(0, len(bad), 4))


def _negative(rng: random.Random) -> str:
    template = rng.choice(_NEGATIVES)
    fields = {
        "order": rng.choice((f"{rng.randint(10000, 99999999)}", f"A-{rng.randint(1000, 99999)}", _digits(rng, 10))),
        "date": rng.choice(("12/03/2024", "2024-05-17", "5 March 2023", "03.11.2022")),
        "version": rng.choice(("2.14.3", "v1.2.3", "10.4", "3.11.7")),
        "version_ip": f"{rng.randint(1, 12)}.{rng.randint(0, 9)}.{rng.randint(0, 9)}.{rng.randint(0, 99)}",
        "bad_card": _bad_card(rng),
        "bad_iban": _bad_iban(rng),
        "sha": _alnum(rng, 40, "0123456789abcdef"),
        "hex32": _alnum(rng, 32, "0123456789abcdef"),
        "uuid": "-".join(_alnum(rng, n, "0123456789abcdef") for n in (8, 4, 4, 4, 12)),
        "year": str(rng.randint(2015, 2020)),
        "year2": str(rng.randint(2021, 2024)),
        "thousands": f"{rng.randint(1, 9)} {rng.randint(100, 999)} {rng.randint(100, 999)}",
        "isbn": f"978-{rng.randint(0, 9)}-{rng.randint(10, 99)}-{_digits(rng, 6)}-{rng.randint(0, 9)}",
        "contract": f"{rng.randint(2015, 2024)}-{_digits(rng, 4)}-{_digits(rng, 2)}",
        "ticket": f"{rng.randint(2015, 2024)}{_digits(rng, 4)}-{_digits(rng, 4)}",
        "serial": f"{_digits(rng, 4)}-{_digits(rng, 4)}-{_digits(rng, 4)}",
        "flight": str(rng.randint(100, 9999)),
        "gate": str(rng.randint(1, 60)),
        "ext": str(rng.randint(1000, 9999)),
    }
    return template.format(**fields)


# -- documents -----------------------------------------------------------------------------------------


class _Builder:
    def __init__(self, lang: str) -> None:
        self.lang = lang
        self.parts: list[str] = []
        self.length = 0
        self.spans: list[GoldSpan] = []

    def add(self, text: str) -> None:
        # a label line ("Contact: ...") or a snippet ends its line; sentences follow each other
        prev = self.parts[-1] if self.parts else ""
        sep = " " if prev.endswith((".", "!", "?")) and "\n" not in text and not text[:1].islower() else "\n"
        if self.length:
            self.parts.append(sep)
            self.length += len(sep)
        self.parts.append(text)
        self.length += len(text)

    def add_value(self, template: str, entity: str, value: str) -> None:
        before, _, after = template.partition("{}")
        self.add(before + value + after)
        start = self.length - len(after) - len(value)
        self.spans.append(GoldSpan(entity, start, start + len(value)))

    def build(self) -> Document:
        return Document("".join(self.parts), self.lang, tuple(self.spans))


def _pii_template(rng: random.Random, entity: str, lang: str) -> tuple[str, str]:
    """A template for `entity` and the language its value is generated for."""
    by_lang = _TEMPLATES[entity]
    if lang in by_lang:
        return rng.choice(by_lang[lang]), lang
    value_lang = rng.choice(sorted(by_lang))  # a French NIR quoted in an English e-mail, say
    return rng.choice(by_lang[value_lang]), value_lang


def generate(
    n: int,
    seed: int = 0,
    *,
    target_chars: int = 2048,
    languages: Sequence[str] = LANGUAGES,
    values_per_doc: int = 6,
    negatives_per_doc: int = 3,
    mixed_share: float = 0.15,
) -> list[Document]:
    """`n` documents of about `target_chars` characters, deterministic for `seed`.

    Each document has `values_per_doc` gold values (PII and secrets, every entity in turn so that
    all are represented evenly) and `negatives_per_doc` near misses, in ordinary text of its
    language; a share `mixed_share` of documents mix languages sentence by sentence.
    `values_per_doc=0, negatives_per_doc=0` gives clean prose, for timing."""
    rng = random.Random(seed)
    entities = [*PII_GOLD_ENTITIES, *SECRET_GOLD_ENTITIES]
    turn = 0
    docs: list[Document] = []
    for _ in range(n):
        mixed = rng.random() < mixed_share
        lang = rng.choice(languages)
        b = _Builder("mixed" if mixed else lang)
        items: list[str | tuple[str, str]] = ["neg"] * negatives_per_doc
        for _ in range(values_per_doc):
            items.append(("value", entities[turn % len(entities)]))
            turn += 1
        rng.shuffle(items)
        for item in items:
            sentence_lang = rng.choice(languages) if mixed else lang
            b.add(rng.choice(_FILLER[sentence_lang]))
            if item == "neg":
                b.add(_negative(rng))
                continue
            entity = item[1]
            if entity in _PII_VALUES:
                template, value_lang = _pii_template(rng, entity, sentence_lang)
                b.add_value(template, entity, _PII_VALUES[entity](rng, value_lang))
            else:
                b.add_value(rng.choice(_SECRET_TEMPLATES[entity]), entity, _SECRET_VALUES[entity](rng))
        while b.length < target_chars:
            b.add(rng.choice(_FILLER[rng.choice(languages) if mixed else lang]))
        docs.append(b.build())
    return docs


# -- scoring a scanner against the corpus --------------------------------------------------------------


@dataclass(slots=True)
class EntityScore:
    """Span-level counts for one entity. A finding is a true positive when it overlaps a gold span
    of the same entity not yet matched (overlap matching); `exact` counts those whose offsets are
    also exactly the gold span's."""

    entity: str
    gold: int = 0
    tp: int = 0
    fp: int = 0
    exact: int = 0

    @property
    def fn(self) -> int:
        return self.gold - self.tp

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / self.gold if self.gold else 1.0

    def add(self, other: EntityScore) -> None:
        self.gold += other.gold
        self.tp += other.tp
        self.fp += other.fp
        self.exact += other.exact


class _SpanScanner(Protocol):
    def scan(self, text: str) -> list[Any]: ...


def score(scanner: _SpanScanner, docs: Sequence[Document], entities: Sequence[str]) -> dict[str, EntityScore]:
    """Per-entity span-level scores of `scanner` on `docs`, counting the gold spans of `entities`
    only (the other scanner's gold is ignored); every finding of the scanner counts."""
    scores = {e: EntityScore(e) for e in entities}
    wanted = set(entities)
    for doc in docs:
        gold = [g for g in doc.spans if g.entity in wanted]
        for g in gold:
            scores[g.entity].gold += 1
        matched = [False] * len(gold)
        for f in scanner.scan(doc.text):
            s = scores.setdefault(f.entity, EntityScore(f.entity))
            for i, g in enumerate(gold):
                if not matched[i] and g.entity == f.entity and f.start < g.end and g.start < f.end:
                    matched[i] = True
                    s.tp += 1
                    s.exact += f.start == g.start and f.end == g.end
                    break
            else:
                s.fp += 1
    return scores


def misses(scanner: _SpanScanner, docs: Sequence[Document], entity: str, limit: int = 10) -> list[str]:
    """Up to `limit` gold values of `entity` that `scanner` missed, with 30 chars of context: for
    reading why, not for reports (the values are synthetic)."""
    out: list[str] = []
    for doc in docs:
        found = scanner.scan(doc.text)
        for g in doc.spans:
            if g.entity == entity and not any(f.entity == entity and f.start < g.end and g.start < f.end for f in found):
                out.append(doc.text[max(0, g.start - 30) : g.end + 30])
                if len(out) >= limit:
                    return out
    return out
