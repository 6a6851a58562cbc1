"""Screenshots of app pages in headless Chromium at 1440×900, taken once each page has finished.

    .venv/bin/python scripts/screenshot.py --home DIR --out DIR [--port P | --url http://127.0.0.1:P] [--full-page] PATH ...

PATH is a page path with its query string as it appears in the address bar, e.g. ``home``,
``compare?task=pose`` or ``learn_3_mining``. Without ``--url`` the script starts
``streamlit run app.py`` with ``DML_HOME=DIR`` on ``--port`` (a free one by default) and stops it
afterwards; with ``--url`` it uses that running server. Each page is saved as
``OUT/<name>.png`` (the 1440×900 viewport) and, with ``--full-page``, ``OUT/<name>.full.png``
(the window grown to the page's whole height), where <name> is PATH with ``?``, ``&`` and
``/`` replaced by ``_``.

"Finished" means: the app says its script is not running (``data-test-script-state`` on
``stApp``, which is set before the "Running…" icon appears), no spinner or skeleton, every plotly chart drawn and
every image decoded, all of it for ``--settle`` seconds in a row (a page can start a second
run, e.g. after ``st.rerun``). A page that does not settle within ``--timeout`` seconds is
still saved, with a warning, so a hanging page shows what it hangs on.

The reusable parts are :func:`chromium`, :func:`wait_until_settled` and :func:`capture`.
"""
from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scripts.load_test import streamlit_server  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WINDOW = (1440, 900)
MAX_FULL_HEIGHT = 12000  # px; taller pages are cut (Chromium's screenshots get unreliable beyond)

# True while anything on the page is still being computed or drawn.
_BUSY_JS = """
const q = s => document.querySelectorAll(s);
const app = document.querySelector('[data-testid="stApp"]');
if (!app) return 'no app yet';
const script = app.getAttribute('data-test-script-state');
if (script !== 'notRunning') return `script ${script}`;
if (app.getAttribute('data-test-connection-state') !== 'CONNECTED') return 'not connected';
if (q('[data-testid="stStatusWidgetRunningIcon"]').length) return 'running';
if (q('[data-testid="stSpinner"], [data-testid="stSkeleton"]').length) return 'spinner';
const charts = Array.from(q('[data-testid="stPlotlyChart"]'));
if (charts.some(c => !c.querySelector('.main-svg'))) return 'plot not drawn';
if (Array.from(q('img')).some(i => !i.complete)) return 'image loading';
return '';
"""

# Streamlit scrolls inside its main section, not the document: measure that.
_PAGE_HEIGHT_JS = """
const main = document.querySelector('[data-testid="stMain"]') || document.scrollingElement;
return Math.max(main.scrollHeight, document.documentElement.scrollHeight);
"""


@contextmanager
def chromium(profile_dir: str | Path | None = None, window: tuple[int, int] = WINDOW):
    """A headless Debian Chromium (selenium) with the given window size; quits on exit."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    with (nullcontext(profile_dir) if profile_dir else tempfile.TemporaryDirectory(prefix="chrome-")) as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for argument in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                         "--disable-component-update", "--no-first-run", "--hide-scrollbars",
                         f"--user-data-dir={profile}", f"--window-size={window[0]},{window[1]}"):
            options.add_argument(argument)
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        try:
            set_viewport(driver, *window)
            yield driver
        finally:
            driver.quit()


def set_viewport(driver, width: int, height: int) -> None:
    """Make the page's viewport exactly width × height (a headless window's size includes
    browser chrome, which leaves a 1440×900 window a 1440×757 page)."""
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})


def wait_until_settled(driver, timeout: float = 120.0, settle: float = 2.0) -> bool:
    """Wait until the page has been idle (see _BUSY_JS) for ``settle`` s; False after ``timeout``."""
    end = time.monotonic() + timeout
    idle_since = None
    reason = "not checked"
    while time.monotonic() < end:
        reason = driver.execute_script(_BUSY_JS)
        now = time.monotonic()
        if reason:
            idle_since = None
        elif idle_since is None:
            idle_since = now
        elif now - idle_since >= settle:
            return True
        time.sleep(0.25)
    print(f"warning: {driver.current_url} still busy after {timeout:.0f} s ({reason})", file=sys.stderr)
    return False


def shot_name(path: str) -> str:
    name = re.sub(r"[?&/]+", "_", path.strip("/")) or "home"
    return re.sub(r"[^A-Za-z0-9_.=,-]", "-", name)


def capture(driver, out: Path, name: str, full_page: bool = False, timeout: float = 120.0,
            settle: float = 2.0) -> list[Path]:
    """Save the current page's viewport (and, with ``full_page``, its whole height) as PNGs."""
    out.mkdir(parents=True, exist_ok=True)
    viewport = out / f"{name}.png"
    driver.save_screenshot(str(viewport))
    saved = [viewport]
    if full_page:
        width, height = driver.execute_script("return [window.innerWidth, window.innerHeight]")
        set_viewport(driver, width, min(int(driver.execute_script(_PAGE_HEIGHT_JS)), MAX_FULL_HEIGHT))
        wait_until_settled(driver, timeout, settle)  # charts re-lay out for the new height
        whole = out / f"{name}.full.png"
        driver.save_screenshot(str(whole))
        saved.append(whole)
        set_viewport(driver, width, height)
    return saved


def screenshot_pages(base_url: str, paths: list[str], out: Path, full_page: bool = False,
                     timeout: float = 120.0, settle: float = 2.0) -> list[Path]:
    saved = []
    with chromium() as driver:
        for path in paths:
            driver.get(f"{base_url.rstrip('/')}/{path.lstrip('/')}")
            wait_until_settled(driver, timeout, settle)
            saved += capture(driver, out, shot_name(path), full_page, timeout, settle)
    return saved


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+", help="page paths with query string, e.g. compare?task=pose")
    parser.add_argument("--out", type=Path, required=True, help="folder for the PNGs")
    parser.add_argument("--home", help="DML_HOME for the server this script starts")
    parser.add_argument("--port", type=int, help="port for the server this script starts (default: a free one)")
    parser.add_argument("--url", help="use this running server instead, e.g. http://127.0.0.1:8630")
    parser.add_argument("--full-page", action="store_true", help="also save the whole page height (<name>.full.png)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for each page to finish")
    parser.add_argument("--settle", type=float, default=2.0, help="seconds a page must stay idle to count as finished")
    args = parser.parse_args(argv)
    if not args.url and not args.home:
        parser.error("give --home (to start a server) or --url (to use a running one)")

    args.out.mkdir(parents=True, exist_ok=True)
    if args.url:
        saved = screenshot_pages(args.url, args.paths, args.out, args.full_page, args.timeout, args.settle)
    else:
        with streamlit_server(args.home, args.port, log_path=args.out / "streamlit.log") as (_, port):
            saved = screenshot_pages(f"http://127.0.0.1:{port}", args.paths, args.out, args.full_page,
                                     args.timeout, args.settle)
    for path in saved:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
