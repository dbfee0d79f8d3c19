"""SecretsScanner: every provider format, private keys, JWTs, passwords and high-entropy values in
context found with exact offsets; placeholders, identifiers, hashes and UUIDs not found; findings
that never carry the value; the corpus figures."""

from __future__ import annotations

import base64
import dataclasses
import json
import random

import pytest

from ostiary.guardrails.corpus import SECRET_GOLD_ENTITIES, generate, score
from ostiary.guardrails.secrets import SECRET_ENTITIES, SecretsScanner, shannon_entropy

SCANNER = SecretsScanner()


def found(text: str, scanner: SecretsScanner = SCANNER) -> list[tuple[str, str]]:
    return [(f.entity, text[f.start : f.end]) for f in scanner.scan(text)]


def b64url(obj: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


JWT = f"{b64url({'alg': 'HS256', 'typ': 'JWT'})}.{b64url({'sub': '1234567890'})}.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\n-----END RSA PRIVATE KEY-----"
AZURE_KEY = base64.b64encode(bytes(range(64))).decode()

POSITIVES = [
    ("AWS_ACCESS_KEY", "aws_access_key_id = [[AKIAIOSFODNN7EXAMPLE]]"),
    ("AWS_SECRET_KEY", "aws_secret_access_key = [[wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY]]"),
    ("GCP_API_KEY", 'const key = "[[AIzaSyD-1234567890abcdefghijklmnopqrstu]]";'),
    ("AZURE_STORAGE_KEY", f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=[[{AZURE_KEY}]];EndpointSuffix=core.windows.net"),
    ("OPENAI_API_KEY", "my key [[sk-proj-abcDEF1234567890abcdefGHIJKLmnop1234567890]] stopped working"),
    ("OPENAI_API_KEY", 'client = OpenAI(api_key="[[sk-abcdefghij1234567890T3BlbkFJabcdefghij1234567890]]")'),
    ("ANTHROPIC_API_KEY", "x-api-key: [[sk-ant-api03-" + "Ab1_" * 23 + "xAA]]"),
    ("GITHUB_TOKEN", "GITHUB_TOKEN=[[ghp_16C7e42F292c6912E7710c838347Ae178B4a]]"),
    ("GITHUB_TOKEN", "git clone https://[[ghs_16C7e42F292c6912E7710c838347Ae178B4a]]@github.com/acme/app.git"),
    ("GITHUB_TOKEN", "[[github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcd]]"),
    ("GITLAB_TOKEN", "PRIVATE-TOKEN: [[glpat-xxxxXXXX1234yyyyZZZZ]]"),
    ("SLACK_TOKEN", "SLACK_BOT_TOKEN=[[xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx]]"),
    ("SLACK_WEBHOOK", "curl -X POST [[https://hooks.slack.com/services/T0000000/B0000000/XXXXXXXXXXXXXXXXXXXXXXXX]] -d x"),
    ("STRIPE_KEY", 'stripe.api_key = "[[sk_live_4eC39HqLyjWDarjtT1zdp7dc]]"'),
    ("STRIPE_KEY", "STRIPE_SECRET=[[rk_live_51H8abcdEFGH1234567890ab]]"),
    ("TWILIO_API_KEY", "TWILIO_API_KEY=[[SK0123456789abcdef0123456789abcdef]]"),
    ("SENDGRID_API_KEY", "sg key [[SG.abcdefghijklmnopqrstuv.abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ]]"),
    ("NPM_TOKEN", "//registry.npmjs.org/:_authToken=[[npm_abcdefghijklmnopqrstuvwxyzABCDEFGHIJ]]"),
    ("PRIVATE_KEY", f"key.pem:\n[[{PEM}]]\nthanks"),
    ("PRIVATE_KEY", '{"type": "service_account", "private_key": "[[-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBg\\n-----END PRIVATE KEY-----]]\\n"}'),
    ("JWT", f"Authorization: Bearer [[{JWT}]]"),
    ("PASSWORD", "postgres://app:[[S3cr3t!pass]]@db.internal:5432/app"),
    ("PASSWORD", "Server=sql01;Database=crm;User Id=sa;Password=[[Delta32]];"),
    ("PASSWORD", "password: [[hunter2x]]"),
    ("PASSWORD", "DB_PASSWORD=[[Tr0ub4dor&3]]"),
    ("PASSWORD", "My password is [[correct-Horse9]] if you need it."),
    ("PASSWORD", "Le mot de passe est [[Soleil2024!]] pour le wifi."),
    ("GENERIC_SECRET", "api_key = '[[f8Kx92LmQp0Zr7TyW3vB5nC1]]'"),
    ("GENERIC_SECRET", '"client_secret": "[[9aF3kL0qZx7Vb2Nm5Rt8Yw1Hc4Jd6Gs]]"'),
]


def _split(marked: str) -> tuple[str, str]:
    before, rest = marked.split("[[")
    value, after = rest.split("]]")
    return before + value + after, value


@pytest.mark.parametrize(("entity", "marked"), POSITIVES)
def test_finds_each_format_with_exact_offsets(entity: str, marked: str) -> None:
    text, value = _split(marked)
    assert (entity, value) in found(text)


NEGATIVES = [
    "password: ********",
    "api_key: <YOUR_API_KEY>",
    "Set PASSWORD=${DB_PASSWORD} in the environment.",
    "token: ${TOKEN} and secret = os.environ['SECRET']",
    "The password is required for all users; password policy: min 12 chars.",
    "Commit 3f9a2b7c8d1e4f5a6b7c8d9e0f1a2b3c4d5e6f7a, request id: 550e8400-e29b-41d4-a716-446655440000",
    "hash: 5f4dcc3b5aa765d61d8327deb882cf99",
    "Run pip install scikit-learn==1.4.2; sk-learn is not a package.",
    "my_extremely_long_variable_name_for_testing = compute_total(items)",
    "Note: Summarise the state-of-the-art approaches in three bullet points.",
    "See https://example.com/docs?page=2&lang=en and base_url: https://api.example.com/v1",
    "The token count is 4096 and the context window is 128000.",
    "eyJub3RhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.c2lnbmF0dXJl",  # JSON header without "alg"
    "https://host.example.com:8080/path@v2",
    "The key_name setting and the monkey: BananaBread42 entry.",
    'h["api-key"] = d.api_key.get_secret_value()',  # a reference to a secret, in code
    'assert t.buckets[0].key == "tpm:key:ost-alice"',  # a comparison, not an assignment
    "password = settings.db_password",
]


@pytest.mark.parametrize("text", NEGATIVES)
def test_non_secrets_are_not_found(text: str) -> None:
    assert found(text) == []


def test_a_truncated_private_key_is_still_found() -> None:
    text = "here: -----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\nQyNTUxOQAAACB\n\nthat was all"
    (entity, value), = found(text)
    assert entity == "PRIVATE_KEY"
    assert value.startswith("-----BEGIN OPENSSH PRIVATE KEY-----") and value.endswith("QyNTUxOQAAACB")


def test_provider_format_wins_over_generic_in_an_assignment() -> None:
    # the value is both high-entropy under a secret-like name and an OpenAI key: one finding
    text = 'OPENAI_API_KEY="sk-proj-abcDEF1234567890abcdefGHIJKLmnop1234567890"'
    assert [e for e, _ in found(text)] == ["OPENAI_API_KEY"]


def test_findings_never_carry_the_value() -> None:
    text = "GITHUB_TOKEN=ghp_16C7e42F292c6912E7710c838347Ae178B4a password: hunter2x"
    findings = SCANNER.scan(text)
    assert len(findings) == 2
    for f in findings:
        assert {fl.name for fl in dataclasses.fields(f)} == {"entity", "start", "end", "score"}
        assert text[f.start : f.end] not in repr(f)


def test_entities_entropy_and_threshold_are_configurable() -> None:
    text = "api_key = 'f8Kx92LmQp0Zr7TyW3vB5nC1' and ghp_16C7e42F292c6912E7710c838347Ae178B4a"
    assert [e for e, _ in found(text, SecretsScanner(entities=["github_token"]))] == ["GITHUB_TOKEN"]
    assert [e for e, _ in found(text, SecretsScanner(entropy_threshold=6.0))] == ["GITHUB_TOKEN"]
    with pytest.raises(ValueError, match="FOO"):
        SecretsScanner(entities=["FOO"])


def test_shannon_entropy() -> None:
    assert shannon_entropy("") == 0.0
    assert shannon_entropy("aaaa") == 0.0
    assert shannon_entropy("abcd") == pytest.approx(2.0)
    assert shannon_entropy("0123456789abcdef") == pytest.approx(4.0)


def test_unicode_text_around_secrets() -> None:
    text = "Schlüssel für die Überweisung — ghp_16C7e42F292c6912E7710c838347Ae178B4a — danke İstanbul"
    assert found(text) == [("GITHUB_TOKEN", "ghp_16C7e42F292c6912E7710c838347Ae178B4a")]


def test_scanner_meets_the_issue_target_on_a_small_corpus() -> None:
    docs = generate(120, seed=12)
    scores = score(SCANNER, docs, SECRET_GOLD_ENTITIES)
    tp = sum(s.tp for s in scores.values())
    gold = sum(s.gold for s in scores.values())
    assert tp / gold >= 0.95
    assert set(SECRET_ENTITIES) == set(SECRET_GOLD_ENTITIES)


def test_random_text_never_breaks_the_scanner() -> None:
    # a scanner that raises blocks the request: arbitrary input must give findings, not errors
    rng = random.Random(5)
    pieces = ["sk-", "ghp_", "://", "@", ":", "=", "eyJ", "-----BEGIN ", "PRIVATE KEY-----", "AKIA", "AIza", "SK",
              "password", "token", " ", "\n", "_", ".", "-", "Ab9", "xoxb-", "SG.", '"', "'"]
    for _ in range(2000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 30)))
        for f in SCANNER.scan(text):
            assert 0 <= f.start < f.end <= len(text)
