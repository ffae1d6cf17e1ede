"""HTML reports opened in a real headless Chromium (Debian's ``chromium`` + ``chromium-driver``,
driven by selenium): the page loads offline with no console errors, every chart is rendered,
and user strings are shown as text, never interpreted as HTML.

Without chromium/chromedriver/selenium the browser tests skip, except with ``CI=true`` where they
fail (``.ci/install-browser`` installs them).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from lightning_expman.errors import QueryError
from lightning_expman.report import ExperimentReporter
from tests.query_data import EPOCHS, LABELS, build_demo

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
CHROMIUM = os.environ.get("EXPMAN_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("EXPMAN_CHROMEDRIVER", "/usr/bin/chromedriver")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-unsafe-swiftshader",
    "--window-size=1400,1000",
]


def _missing_browser() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install selenium)"
    for path in (CHROMIUM, CHROMEDRIVER):
        if not (Path(path).exists() or shutil.which(path)):
            return f"{path} not found (apt-get install chromium chromium-driver)"
    return None


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium for the module, with the network switched off and console logs captured."""
    missing = _missing_browser()
    if missing:
        if IN_CI:
            pytest.fail(f"browser tests need Chromium: {missing}; run .ci/install-browser")
        pytest.skip(missing)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    # Offline: a report that fetched anything (a CDN script) would fail to render its charts.
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd(
        "Network.emulateNetworkConditions",
        {"offline": True, "latency": 0, "downloadThroughput": 0, "uploadThroughput": 0},
    )
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return build_demo(f"sqlite:///{tmp_path_factory.mktemp('report') / 'expman.db'}")


@pytest.fixture(scope="module")
def reporter(demo):
    r = ExperimentReporter(demo.url)
    yield r
    r.close()


def open_report(driver, path: Path, timeout: float = 30.0) -> dict:
    """Load a report and wait until every plotly div has drawn its SVG; returns what the page shows."""
    driver.get_log("browser")  # drop earlier entries
    driver.get(path.resolve().as_uri())
    deadline = time.monotonic() + timeout
    state: dict = {}
    while time.monotonic() < deadline:
        state = driver.execute_script(
            """
            const divs = Array.from(document.querySelectorAll('.plotly-graph-div'));
            return {
              plotly: typeof window.Plotly === 'object' && !!window.Plotly.newPlot,
              charts: divs.length,
              drawn: divs.filter(d => d.querySelector('.main-svg')).length,
              traces: divs.map(d => (d.data || []).length),
              types: divs.map(d => (d.data || []).map(t => t.type)),
              titles: divs.map(d => ((d.layout || {}).title || {}).text || ''),
              sections: Array.from(document.querySelectorAll('section h2')).map(h => h.textContent),
              h1: document.querySelector('header h1').textContent,
            };
            """
        )
        if state["charts"] and state["drawn"] == state["charts"]:
            break
        time.sleep(0.2)
    state["errors"] = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    return state


def assert_rendered(state: dict) -> None:
    assert state["plotly"], "plotly.js did not load (it must be inlined)"
    assert state["charts"] > 0
    assert state["drawn"] == state["charts"], f"{state['drawn']}/{state['charts']} charts drawn"
    assert all(n > 0 for n in state["traces"]), state["traces"]
    assert state["errors"] == [], state["errors"]


def assert_self_contained(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    # (plotly.js mentions cdn.plot.ly as the default topojson URL of geo maps, which reports never draw)
    external = "<script src=" in text or "<link " in text  # (no giant string in a failure)
    assert not external, "the report loads a script from elsewhere"
    assert text.count("<script") >= 2  # plotly.js itself plus the charts


# --------------------------------------------------------------------------- the three reports


def test_training_report_in_chromium(browser, reporter, demo, tmp_path):
    rid = demo.runs["lr-0.01"][0]
    path = reporter.generate_training_report(rid, tmp_path / "run.html")
    assert_self_contained(path)
    state = open_report(browser, path)
    assert_rendered(state)
    assert state["h1"] == f"Run {rid}: digits / lr-0.01"
    for section in (
        "Summary",
        "Metrics per epoch",
        "Metrics per step",
        "Per-label metrics",
        "Checkpoints and artifacts",
        "Configuration",
        "Environment",
    ):
        assert section in state["sections"]
    assert "loss per epoch" in state["titles"] and "train_loss_step per step" in state["titles"]
    per_label = state["titles"].index("val_acc per label")
    assert state["traces"][per_label] == len(LABELS)
    page = browser.find_element("tag name", "main").text
    assert "best.ckpt" in page and "lightning" in page and "model.lr" in page


def test_study_report_in_chromium(browser, reporter, demo, tmp_path):
    path = reporter.generate_hpo_report("digits", tmp_path / "study.html", metric="val_loss", mode="min")
    assert_self_contained(path)
    state = open_report(browser, path)
    assert_rendered(state)
    assert state["h1"] == "digits: study report"
    assert {"Trials", "Hyperparameters against val_loss", "Parallel coordinates", "Runs"} <= set(
        state["sections"]
    )
    assert any(t == ["parcoords"] for t in state["types"])
    assert browser.execute_script(
        "return document.querySelectorAll('.parcoords, .parcoords-line-layers').length"
    )
    # mean ± std bands: per trial a filled band and a mean line
    bands = state["titles"].index("val_loss per epoch, by trial")
    assert state["traces"][bands] == 2 * 3
    fills = browser.execute_script(
        "return document.querySelectorAll('.plotly-graph-div')[arguments[0]].data.filter(t => t.fill).length",
        bands,
    )
    assert fills == 3
    best_row = browser.find_element("css selector", "tr.best").text
    assert best_row.startswith("1 lr-0.01")  # ranked first and highlighted
    for key in ("model.hidden vs val_loss", "model.lr vs val_loss"):
        assert key in state["titles"]


def test_comparison_report_in_chromium(browser, reporter, demo, tmp_path):
    runs = [demo.runs["lr-0.1"][0], demo.runs["lr-0.01"][0], demo.failed_run]
    path = reporter.generate_model_comparison_report(runs, tmp_path / "cmp.html")
    state = open_report(browser, path)
    assert_rendered(state)
    assert state["h1"] == "Comparison of 3 runs"
    curves = state["titles"].index("val_loss per epoch")
    assert state["traces"][curves] == 3
    lengths = browser.execute_script(
        "return document.querySelectorAll('.plotly-graph-div')[arguments[0]].data.map(t => t.x.length)",
        curves,
    )
    assert sorted(lengths) == [2, EPOCHS, EPOCHS]  # the failed run stopped after 2 epochs
    assert "Configuration differences" in state["sections"]


def test_user_strings_are_escaped(browser, reporter, demo, tmp_path):
    path = reporter.generate_hpo_report(demo.other_experiment_id, tmp_path / "xss.html")
    state = open_report(browser, path)
    assert_rendered(state)
    assert state["h1"] == "mnist <b>small</b>: study report"  # shown as text, not bold markup
    assert browser.execute_script("return document.querySelector('header h1 b')") is None
    run_path = reporter.generate_training_report(demo.failed_run, tmp_path / "failed.html")
    state = open_report(browser, run_path)
    assert state["errors"] == []
    error = browser.find_element("css selector", "pre.error").text
    assert error == "RuntimeError: CUDA out of memory <script>alert(1)</script>"  # text, never run
    raw = "alert(1)</script>" in run_path.read_text(encoding="utf-8")
    assert not raw, "the error text reached the HTML unescaped"


# --------------------------------------------------------------------------- the Python API


def test_reporter_api_forms_and_errors(demo, tmp_path):
    seed_style = ExperimentReporter(mlflow_tracking_uri=demo.url)  # the seed's keyword still works
    path = seed_style.generate_hpo_report(parent_run_id="digits", output_path=tmp_path / "a" / "hpo.html")
    assert path.exists() and path.parent.name == "a"
    with pytest.raises(QueryError, match=r"unknown run id 123456"):
        seed_style.generate_training_report(123456, tmp_path / "x.html")
    with pytest.raises(QueryError, match=r"unknown metric 'nope'"):
        seed_style.generate_hpo_report("digits", tmp_path / "x.html", metric="nope")
    with pytest.raises(QueryError, match="at least one run id"):
        seed_style.generate_model_comparison_report([], tmp_path / "x.html")
    default_metric = seed_style.generate_hpo_report("digits", tmp_path / "d.html")  # val_loss by default
    chose_val_loss = "val_loss (min is better" in default_metric.read_text(encoding="utf-8")
    assert chose_val_loss
    seed_style.close()
