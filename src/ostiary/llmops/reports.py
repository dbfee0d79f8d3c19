"""Evaluation reports: JSON (everything), JUnit XML (one test case per assertion, for CI systems) and a
self-contained HTML page (no scripts, no external assets)."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET


def write_json(path: Path, report: dict[str, Any]) -> None:
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")


def write_junit(path: Path, report: dict[str, Any]) -> None:
    results = report["results"]
    suite = ET.Element("testsuite", name=report["suite"], tests=str(len(results)),
                       failures=str(sum(1 for r in results if not r["passed"])), time=f"{report['seconds']:.3f}")
    for r in results:
        case = ET.SubElement(suite, "testcase", classname=report["suite"], name=r["assertion"])
        if not r["passed"]:
            failure = ET.SubElement(case, "failure", message=f"mean {r['mean']} below threshold {r['threshold']}"
                                    + (f" or regressed from baseline {r['baseline']}" if r["baseline"] is not None
                                       else ""))
            failure.text = json.dumps(r)
    ET.ElementTree(suite).write(path, encoding="unicode", xml_declaration=True)


def write_html(path: Path, report: dict[str, Any]) -> None:
    e = html.escape
    rows = "".join(
        f"<tr class={'pass' if r['passed'] else 'fail'}><td>{e(r['assertion'])}</td><td>{r['mean']}</td>"
        f"<td>{r['ci95'][0]} – {r['ci95'][1]}</td><td>{r['threshold']}</td><td>{r['baseline'] if r['baseline'] is not None else ''}</td>"
        f"<td>{'pass' if r['passed'] else 'FAIL'}</td></tr>" for r in report["results"])
    items = "".join(
        f"<tr><td>{i['row']}</td><td>{i['repeat']}</td><td>{e(str(i['answer'])[:500])}</td><td>{i['ms']}</td>"
        f"<td>{e(json.dumps(i['scores']))}</td><td>{e(i['error'] or '')}</td></tr>" for i in report["items"][:2000])
    sigs = "".join(f"<li>{e(k)}: <code>{e(v)}</code></li>" for k, v in report["signatures"].items())
    verdict = "PASSED" if report["passed"] else "FAILED"
    path.write_text(f"""<!doctype html><html><head><meta charset="utf-8"><title>{e(report['suite'])}: {verdict}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px}}
.pass{{background:#e8f5e9}}.fail{{background:#ffebee}}</style></head><body>
<h1>{e(report['suite'])}: {verdict}</h1>
<p>run {e(report['run_id'])} · target {e(json.dumps(report['target']))} · dataset sha256 {e(report['dataset_sha256'])}
· {report['rows']} rows × {report['repeats']} repeats · seed {report['seed']} · {report['seconds']:.1f} s</p>
<table><tr><th>assertion</th><th>mean</th><th>95% CI</th><th>threshold</th><th>baseline</th><th></th></tr>{rows}</table>
<h2>Metric signatures</h2><ul>{sigs or '<li>none</li>'}</ul>
<h2>Answers</h2><table><tr><th>row</th><th>repeat</th><th>answer</th><th>ms</th><th>scores</th><th>error</th></tr>{items}</table>
</body></html>
""")
