"""`ostiary eval run` through a real gateway (mock model with known answers): a passing gate and a
failing one, the JSON, JUnit and HTML reports, the stored run and its audit record, a baseline."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree as ET

from tests.support import ROOT, gateway


def _eval(cfg: Path, url: str, suite: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ostiary", "eval", "run", str(suite), "--url", url, "--config",
                           str(cfg), "--no-progress", *extra], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          check=False, env={**os.environ, "OSTIARY_KEY": "none"})


def test_a_passing_and_a_failing_gate(tmp_path: Path) -> None:
    cfg = tmp_path / "gateway.yaml"
    cfg.write_text(f"server: {{data_dir: {tmp_path / 'data'}}}\n"
                   "routes:\n  - name: mock-1\n    deployments: [{provider: mock, model: mock-1}]\n")
    (tmp_path / "capitals.jsonl").write_text(
        "".join(json.dumps({"input": q, "expected": q, "reference": f"Mock answer to: {q}"}) + "\n"
                for q in ("capital of France", "capital of Peru", "capital of Japan")))
    good = tmp_path / "good.yaml"
    good.write_text("name: capitals\ndataset: capitals.jsonl\ntarget: {route: mock-1}\nrepeats: 2\nassertions:\n"
                    "  - {type: contains, threshold: 1.0}\n  - {type: rouge_l, field: reference, threshold: 0.9}\n"
                    "  - {type: chrf, field: reference, threshold: 90}\n  - {type: latency_ms, max: 5000, threshold: 1}\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: capitals-strict\ndataset: capitals.jsonl\ntarget: {route: mock-1}\nassertions:\n"
                   "  - {type: contains, value: Lima, threshold: 0.9}\n  - {type: regex, value: '^Mock', threshold: 1}\n")
    with gateway(cfg) as (url, _):
        ok = _eval(cfg, url, good, "--json", str(tmp_path / "r.json"), "--junit", str(tmp_path / "r.xml"),
                   "--html", str(tmp_path / "r.html"))
        assert ok.returncode == 0, ok.stdout + ok.stderr
        again = _eval(cfg, url, good, "--baseline", "last")
        failed = _eval(cfg, url, bad, "--junit", str(tmp_path / "bad.xml"))
        missing = _eval(cfg, url, tmp_path / "nope.yaml")
    assert "capitals: PASSED" in ok.stdout and "signature chrf: nrefs:1|" in ok.stdout
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["passed"] and report["rows"] == 3 and len(report["items"]) == 6
    assert {r["assertion"]: r["passed"] for r in report["results"]} == {
        "contains": True, "rouge_l": True, "chrf": True, "latency_ms": True}
    junit = ET.parse(tmp_path / "r.xml").getroot()
    assert junit.get("tests") == "4" and junit.get("failures") == "0"
    assert "<h1>capitals: PASSED</h1>" in (tmp_path / "r.html").read_text()
    assert again.returncode == 0 and "baseline 1.0" in again.stdout
    assert failed.returncode == 1 and "capitals-strict: FAILED" in failed.stdout
    bad_junit = ET.parse(tmp_path / "bad.xml").getroot()
    assert bad_junit.get("failures") == "1"
    assert [c.get("name") for c in bad_junit if c.find("failure") is not None] == ["contains"]
    assert missing.returncode == 2
    with sqlite3.connect(tmp_path / "data" / "ostiary.db") as conn:
        runs = conn.execute("SELECT suite, passed, dataset_sha256 FROM eval_runs ORDER BY started_at").fetchall()
        audited = conn.execute("SELECT count(*) FROM admin_events WHERE action = 'eval.run'").fetchone()[0]
    assert [(s, bool(p)) for s, p, _ in runs] == [("capitals", True), ("capitals", True), ("capitals-strict", False)]
    assert runs[0][2] == report["dataset_sha256"] and audited == 3


def test_known_answers_and_an_injected_error_spike_through_the_gateway(tmp_path: Path) -> None:
    cfg = tmp_path / "gateway.yaml"
    cfg.write_text(f"server: {{data_dir: {tmp_path / 'data'}}}\nroutes:\n"
                   "  - name: steady\n    deployments: [{provider: mock, id: steady, model: mock-1, mock: {answers: "
                   "[{when: 'capital of France', reply: 'Paris is the capital.'}]}}]\n"
                   "  - name: flaky\n    retry: {attempts: 1}\n    deployments: [{provider: mock, id: flaky, model: mock-1, mock: "
                   "{error_rate: 0.5, answers: [{when: 'capital of France', reply: 'Paris is the capital.'}]}}]\n")
    (tmp_path / "rows.jsonl").write_text('{"input": "What is the capital of France?", "expected": "Paris"}\n' * 4)
    for route in ("steady", "flaky"):
        (tmp_path / f"{route}.yaml").write_text(f"name: {route}\ndataset: rows.jsonl\ntarget: {{route: {route}}}\n"
                                                "concurrency: 1\nassertions: [{type: contains, threshold: 0.9}]\n")
    with gateway(cfg) as (url, _):
        steady = _eval(cfg, url, tmp_path / "steady.yaml", "--json", str(tmp_path / "steady.json"))
        flaky = _eval(cfg, url, tmp_path / "flaky.yaml", "--json", str(tmp_path / "flaky.json"))
    assert steady.returncode == 0, steady.stdout + json.dumps(
        [i["error"] for i in json.loads((tmp_path / "steady.json").read_text())["items"]])
    assert [i["answer"] for i in json.loads((tmp_path / "steady.json").read_text())["items"]] == \
        ["Paris is the capital."] * 4
    assert flaky.returncode == 1
    report = json.loads((tmp_path / "flaky.json").read_text())
    assert report["errors"] == 2 and report["results"][0]["mean"] == 0.5


def test_llm_judges_grade_through_the_gateway_and_pairwise_cancels_position(tmp_path: Path) -> None:
    cfg = tmp_path / "gateway.yaml"
    cfg.write_text(f"server: {{data_dir: {tmp_path / 'data'}}}\nroutes:\n"
                   "  - name: assistant\n    deployments: [{provider: mock, model: a, mock: {answers: [\n"
                   "      {when: France, reply: Paris}, {when: Peru, reply: Lima}, {when: Japan, reply: 'I do not know'}]}}]\n"
                   # The judge: a rubric grade by whether the answer is a city; a preference for Tokyo
                   # wherever it stands (A or B), else a tie.
                   "  - name: judge\n    deployments: [{provider: mock, model: j, mock: {answers: [\n"
                   "      {when: 'grade:\\s*<answer>(Paris|Lima)</answer>', reply: '{\"score\": 5, \"reason\": \"right\"}'},\n"
                   "      {when: 'Answer to grade', reply: '{\"score\": 1, \"reason\": \"wrong\"}'},\n"
                   "      {when: 'Answer A:\\s*<answer>Tokyo', reply: '{\"winner\": \"A\"}'},\n"
                   "      {when: 'Answer B:\\s*<answer>Tokyo', reply: 'B'},\n"
                   "      {when: 'Answer A', reply: 'tie'}]}}]\n")
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps({"input": f"capital of {c}", "expected": e}) + "\n"
                                                 for c, e in (("France", "Paris"), ("Peru", "Lima"), ("Japan", "Tokyo"))))
    suite = tmp_path / "judged.yaml"
    suite.write_text("name: judged\ndataset: rows.jsonl\ntarget: {route: assistant}\nassertions:\n"
                     "  - {type: judge, judge: judge, rubric: 'The answer names the capital city.', threshold: 0.6}\n"
                     "  - {type: pairwise, judge: judge, threshold: 0.5}\n")
    with gateway(cfg) as (url, _):
        done = _eval(cfg, url, suite, "--json", str(tmp_path / "j.json"))
    assert done.returncode == 1, done.stdout + done.stderr  # the pairwise gate fails
    report = json.loads((tmp_path / "j.json").read_text())
    means = {r["assertion"]: r["mean"] for r in report["results"]}
    assert means == {"judge": round(2 / 3, 4), "pairwise": round(1 / 3, 4)}
    # Japan: the reference wins in both orders (0); France and Peru: ties in both orders (0.5).
    assert [i["scores"]["pairwise"] for i in report["items"]] == [0.5, 0.5, 0.0]
    assert report["signatures"]["judge"].startswith("judge|route:judge|ostiary-judge-1|rubric sha256:")
    assert "both orders" in report["signatures"]["pairwise"]
