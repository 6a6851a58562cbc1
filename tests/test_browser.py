"""The real app in a real browser: ``streamlit run app.py`` driven by headless Chromium.

Opens Compare and checks that the result images are decoded and shown, then uploads an image
on Upload and checks its results. Screenshots go to a temporary directory and, when the
environment variable SCREENSHOT_DIR is set, there too. Skipped (with the reason) when
Chromium, chromedriver or selenium is missing.
"""
import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
if not (Path(CHROMIUM).is_file() and Path(CHROMEDRIVER).is_file()):
    pytest.skip(f"needs Chromium at {CHROMIUM} and chromedriver at {CHROMEDRIVER}", allow_module_level=True)

from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


@pytest.fixture
def app_url(built_home, tmp_path):
    from scripts.load_test import streamlit_server

    with streamlit_server(built_home, log_path=tmp_path / "streamlit.log") as (_, port):
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def browser(tmp_path):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                     "--disable-component-update", "--no-first-run", f"--user-data-dir={tmp_path / 'chrome'}",
                     "--window-size=1440,900"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def rendered_tiles(driver) -> int:
    """Result tiles whose image the browser has decoded (naturalWidth > 0); Compare's movers
    (the images two models rank most differently) are tiles too, but not results."""
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('.bb-grid .bb-tile img'))"
        ".filter(img => !img.closest('.bb-movers') && img.complete && img.naturalWidth > 0).length;")


def save(driver, directory: Path, name: str) -> Path:
    path = directory / f"{name}.png"
    driver.save_screenshot(str(path))
    if os.environ.get("SCREENSHOT_DIR"):
        target = Path(os.environ["SCREENSHOT_DIR"])
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target / path.name)
    return path


def test_compare_and_upload_in_chromium(app_url, browser, built_home, tmp_path):
    from dml_core.core.store import ArtifactStore
    from dml_core.serve.catalog import load_catalog

    catalog = load_catalog("pose", ArtifactStore(built_home))
    shots = tmp_path / "shots"
    shots.mkdir()
    wait = WebDriverWait(browser, 120)

    browser.get(f"{app_url}/compare")
    # Two models and the oracle, K = 10 each.
    wait.until(lambda d: rendered_tiles(d) >= 30)
    assert not browser.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]')
    headers = [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".bb-head .bb-method")]
    assert any("binary triplet" in h for h in headers) and any("log ratio" in h for h in headers)
    assert any("Oracle" in h for h in headers)
    # nDCG, mean distance and ρ for each of the three columns, each with its random-to-oracle scale
    assert len(browser.find_elements(By.CSS_SELECTOR, ".bb-score")) == 9
    assert len(browser.find_elements(By.CSS_SELECTOR, ".bb-scale")) == 3
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".js-plotly-plot")) >= 2)  # whole-gallery orderings
    assert save(browser, shots, "compare").stat().st_size > 10_000

    browser.get(f"{app_url}/upload")
    upload = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, 'input[type="file"]'))[0]
    image_path = tmp_path / "my query.png"
    Image.fromarray(catalog.queries.images[3]).resize((300, 240)).save(image_path)
    upload.send_keys(str(image_path))
    wait.until(lambda d: rendered_tiles(d) >= 20)
    assert not browser.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]')
    assert not browser.find_elements(By.CSS_SELECTOR, '[data-testid="stAlertContentError"]')
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".js-plotly-plot"))  # where the query lands
    assert save(browser, shots, "upload").stat().st_size > 10_000


def test_a_deep_link_to_compare_opens_its_state_and_draws_the_orderings(app_url, browser, built_home, tmp_path):
    from dml_core.core.store import ArtifactStore
    from dml_core.serve.catalog import load_catalog

    wait = WebDriverWait(browser, 120)
    browser.get(f"{app_url}/compare?task=layout&query=4&models=log_ratio-d128-s0&models=contrastive-d128-s0&k=6")
    wait.until(lambda d: rendered_tiles(d) >= 18)  # two models and the oracle, K = 6 each
    assert rendered_tiles(browser) == 18
    assert not browser.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]')
    headers = [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".bb-head .bb-method")]
    assert any("contrastive" in h for h in headers) and any("log ratio" in h for h in headers)
    # the whole-gallery scatter of each model: plotly has drawn (WebGL) every gallery image
    gallery = len(load_catalog("layout", ArtifactStore(built_home)).gallery)
    drawn = """return Array.from(document.querySelectorAll('.js-plotly-plot')).filter(p => p._fullLayout && p.querySelector('canvas'))
        .map(p => p._fullData.filter(t => t.mode === 'markers').reduce((n, t) => n + t._length, 0));"""
    wait.until(lambda d: sum(n == gallery for n in d.execute_script(drawn)) >= 2)
    assert "query=4" in browser.current_url and "task=layout" in browser.current_url
    assert save(browser, tmp_path, "compare_deep_link").stat().st_size > 10_000


def test_a_deep_link_as_the_first_request_gets_the_apps_navigation(app_url, browser, tmp_path):
    """Before app.py ever ran, Streamlit treats pages/ as a legacy multipage folder; the page
    must still come up inside the app's own navigation and layout (pages/__init__.py)."""
    wait = WebDriverWait(browser, 120)
    browser.get(f"{app_url}/learn_4_mahalanobis")
    wait.until(lambda d: any("Mahalanobis metric learning" in e.text for e in d.find_elements(By.TAG_NAME, "h1")))

    def nav_texts(driver):
        # each link reads "<icon>\n<title>"
        return [e.text.strip().splitlines()[-1] for e in driver.find_elements(By.CSS_SELECTOR, '[data-testid="stSidebarNav"] a')
                if e.text.strip()]

    wait.until(lambda d: "Training lab" in nav_texts(d))
    links = nav_texts(browser)
    assert "Compare" in links and "Mahalanobis metric learning" in links
    assert not {"app", "common", "learn common", "training lab"} & set(links), links
    assert not browser.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]')
    save(browser, tmp_path, "deep_link")
