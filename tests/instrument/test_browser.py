"""report.html opened in a real browser: headless Chromium (Debian's ``chromium``; .ci/run installs it).

A probe script is added to a copy of the page (the report itself has no script): it records console errors
and uncaught exceptions, and for every plot (each ``<svg>``) that it has marks and text, that no label runs
outside the plot and that no two labels overlap, all from the laid-out page (``getBoundingClientRect``).
Chromium's ``--dump-dom`` returns the page after the probe ran.  A screenshot of each page is kept in
``reports/browser/`` as an artifact.  The probe itself is tested: it must object to an emptied plot and to
two labels on top of each other.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from test_drift import BASE, NEW, diverged, record, results

from harness.report.drift import compare_results
from harness.report.html import render_html

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "reports" / "browser"
CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)

if CHROMIUM is None and os.environ.get("CI"):  # .ci/run installs it: missing there is a failure, not a skip
    raise RuntimeError("CI: headless Chromium is not installed (apt-get install chromium); .ci/run installs it")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no headless Chromium (Debian: apt-get install chromium)")

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--hide-scrollbars")  # fmt: skip

CATCH = """<script>window.__bce_errors=[];window.addEventListener('error',function(e){__bce_errors.push(String(e.message))});
var __ce=console.error;console.error=function(){__bce_errors.push(Array.prototype.join.call(arguments,' '));__ce.apply(console,arguments)};</script>"""
PROBE = """<script>(function(){
function box(e){return e.getBoundingClientRect()}
function cross(a,b){var w=Math.min(a.right,b.right)-Math.max(a.left,b.left),h=Math.min(a.bottom,b.bottom)-Math.max(a.top,b.top);return w>0.5&&h>0.5}
var plots=[];document.querySelectorAll('svg').forEach(function(svg,i){
 var s=box(svg),name=svg.getAttribute('aria-label')||('svg '+i),problems=[];
 var marks=Array.prototype.filter.call(svg.querySelectorAll('rect,path,circle,line,polyline,polygon'),function(e){var b=box(e);return b.width>0&&b.height>0});
 var texts=Array.prototype.map.call(svg.querySelectorAll('text'),function(t){return {t:t.textContent,b:box(t)}}).filter(function(x){return x.t.trim()});
 if(!marks.length)problems.push('no marks');if(!texts.length)problems.push('no text');
 texts.forEach(function(x){var b=x.b;if(b.left<s.left-0.5||b.right>s.right+0.5||b.top<s.top-0.5||b.bottom>s.bottom+0.5)problems.push('clipped: '+x.t)});
 for(var a=0;a<texts.length;a++)for(var c=a+1;c<texts.length;c++)if(cross(texts[a].b,texts[c].b))problems.push('overlap: '+texts[a].t+' / '+texts[c].t);
 plots.push({plot:name,marks:marks.length,texts:texts.length,problems:problems});});
var pre=document.createElement('pre');pre.id='bce-probe';pre.textContent=JSON.stringify({errors:window.__bce_errors,plots:plots});
document.body.appendChild(pre);})();</script>"""


def chromium(*args: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    profile = tmp / f"profile-{len(list(tmp.glob('profile-*')))}"
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip


def probe(page: str, tmp: Path) -> dict:
    """Open ``page`` in Chromium with the probe; what it found."""
    path = tmp / "probed.html"
    path.write_text(page.replace("</head>", CATCH + "</head>", 1).replace("</body>", PROBE + "</body>", 1), encoding="utf-8")
    done = chromium("--window-size=1280,2000", "--dump-dom", path.as_uri(), tmp=tmp)
    found = re.search(r'<pre id="bce-probe">(.*?)</pre>', done.stdout, re.DOTALL)
    assert found, f"the probe did not run: {done.stderr[-2000:]}"
    report = json.loads(html.unescape(found.group(1)))
    report["errors"] += [line for line in done.stderr.splitlines() if "CONSOLE" in line and "Uncaught" in line]
    return report


def screenshot(page: str, name: str, tmp: Path) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    src = tmp / f"{name}.html"
    src.write_text(page, encoding="utf-8")
    out = ARTIFACTS / f"{name}.png"
    chromium("--window-size=1280,2400", f"--screenshot={out}", src.as_uri(), tmp=tmp)
    return out


def problems(report: dict) -> list[str]:
    return report["errors"] + [f"{p['plot']}: {x}" for p in report["plots"] for x in p["problems"]]


# A run page with what made the old plots fail: every dtype, every regime name (long ones too), ULPs from 0 to
# 4e8 near zero, and large counts in one histogram bin.
REGIMES = ("typical", "near_bounds", "exact_bounds", "tiny", "soft_labels", "nan", "large", "huge", "infinite",
           "infinite_indeterminate", "clipped", "unclipped_one", "subnormal_weights")  # fmt: skip


def run_page() -> str:
    rng = np.random.default_rng(7)
    records = []
    for dtype in ("float16", "bfloat16", "float32", "float64"):
        for regime in REGIMES:
            for k in range(int(rng.integers(1, 40))):
                ulp = int(rng.choice([0, 1, 3, 7, 20, 700, 5000, 4 * 10**8]))
                records.append(record(f"values/{dtype}/{regime}/{k}", dtype=dtype, max_ulp=ulp, max_abs=1e-40 * ulp,
                                      tags={"family": "values", "regime": regime, "shape": "B1"}))  # fmt: skip
    records += [diverged("values/bad", 0.5), record("values/known", "xfail", kind="nan_inf", divergence="known")]
    return render_html(results(records, tensorflow="2.21.0", keras="3.15.1"))


def compare_page() -> str:
    base, new = dict(BASE), dict(NEW)
    extra_b = [record(f"options/{i}", family=f"options_{i % 5}_with_a_long_family_name", actual=0.5) for i in range(40)]
    extra_n = [diverged(f"options/{i}", 0.9) if i % 3 == 0 else record(f"options/{i}", family=f"options_{i % 5}_with_a_long_family_name",
               actual=0.5 + 1e-3) for i in range(40)]  # fmt: skip
    base = results(BASE["records"] + extra_b)
    new = results(NEW["records"] + extra_n, tensorflow="2.21.0", keras="3.15.1")
    return render_html(new, drift=compare_results(base, new))


@pytest.mark.parametrize("name", ["run", "compare"])
def test_report_in_a_browser_has_no_errors_and_readable_plots(name, tmp_path):
    page = run_page() if name == "run" else compare_page()
    report = probe(page, tmp_path)
    assert len(report["plots"]) >= (5 if name == "run" else 3)
    assert not problems(report), problems(report)
    shot = screenshot(page, f"report-{name}", tmp_path)
    assert shot.is_file() and shot.stat().st_size > 10_000


def test_the_probe_objects_to_an_emptied_plot(tmp_path):
    page = run_page()
    start = page.index("<svg")
    head_end = page.index(">", start) + 1
    emptied = page[:head_end] + page[page.index("</svg>", start):]
    found = problems(probe(emptied, tmp_path))
    assert any("no marks" in p for p in found) and any("no text" in p for p in found), found


def test_the_probe_objects_to_overlapping_and_clipped_labels(tmp_path):
    page = run_page()
    first = page.index("<text", page.index("<svg"))
    label = page[first : page.index("</text>", first) + len("</text>")]  # the first label, once more on top of itself
    end = page.index("</svg>")
    planted = page[:end] + label + '<text x="-30" y="40">off the edge</text>' + page[end:]
    found = problems(probe(planted, tmp_path))
    assert any("overlap" in p for p in found), found
    assert any("clipped: off the edge" in p for p in found), found
