"""report.html comes from an autoescaped Jinja2 template shipped with the package."""

from __future__ import annotations

import re
from importlib import resources

import numpy as np

from core.compare import ComparedOutput, compare_arrays
from core.tolerances import Tolerance
from parity.report import render_html, write_html
from parity.results import ErrorMap, ParityReport, RunnerInfo

HOSTILE = "<script>alert('x')</script>"


def _hostile_report() -> ParityReport:
    ref = np.zeros((1, 1, 4, 4), dtype=np.float32)
    comparison = compare_arrays(
        ComparedOutput(f"amp{HOSTILE}", f"eager{HOSTILE}", "tf-reference", Tolerance(1e-6, 0.0)),
        ref + 1.0,
        ref,
    )
    return ParityReport(
        created=f"today{HOSTILE}",
        head="object",
        artifacts_dir=f"art{HOSTILE}",
        verdict="fail",
        exit_code=1,
        environment={"host": HOSTILE},
        reference_provenance={"generator": HOSTILE},
        runners=[RunnerInfo(f"eager{HOSTILE}", "eager", providers=[HOSTILE])],
        comparisons=[comparison],
        notes=[f"note {HOSTILE}"],
        error_maps=[ErrorMap(comparison.output, comparison.left, "tf-reference", 0, 'm" x=".png')],
    )


def test_hostile_names_and_notes_are_escaped_in_html(tmp_path):
    page = write_html(_hostile_report(), tmp_path).read_text(encoding="utf-8")
    assert "<script" not in page
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page
    assert "note &lt;script&gt;" in page  # the note, under Notes
    assert "<h2>Notes</h2>" in page and "<h2>Failures</h2>" in page
    # the error map's path cannot leave its attribute: quoted for the URL, then escaped
    assert re.findall(r'<img src="([^"]*)"', page) == ["m%22%20x%3D%22.png"]


def test_html_keeps_the_error_map_images_and_links(tmp_path):
    report = _hostile_report()
    report.error_maps = [ErrorMap("phase", "eager[cpu]", "tf-reference", 3, "error_maps/p q.png")]
    page = render_html(report)
    assert '<a href="error_maps/p%20q.png"><img src="error_maps/p%20q.png"' in page
    assert "<figcaption>phase: eager[cpu] vs tf-reference, sample 3</figcaption>" in page


def test_template_is_package_data():
    template = resources.files("parity.report") / "templates" / "report.html.j2"
    assert template.is_file()
