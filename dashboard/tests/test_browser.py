"""The running dashboard in a real browser: Debian's chromium, headless, driven by
chromedriver through selenium. Each page is opened, waited for, checked against the
file, and saved as a screenshot for a person to look at: in IOT_SCREENSHOTS, or in
pytest's temporary folder (kept for pytest's last three runs; scripts/test.sh removes
it)."""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from conftest import APP, topic_ends
from fleet import (
    bootstrap,
    clean_env,
    load,
    simulate,
    topic_variables,
    topics_of_our_own,
    truth,
)

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve(**env: str):
    """The app served on a free port of 127.0.0.1, as scripts/dashboard.sh serves it,
    with `env` added to a clean environment; yields its address."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="iot-dashboard-log-") as folder:
        yield from served(port, Path(folder) / "streamlit.log", env)


def served(port: int, log: Path, env: dict[str, str]):
    with log.open("w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(APP)]
            + ["--server.address", "127.0.0.1", "--server.port", str(port)]
            + ["--server.headless", "true", "--browser.gatherUsageStats", "false"],
            env={**clean_env(), "KAFKA_BOOTSTRAP_SERVERS": bootstrap(), **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the dashboard did not start: {log.read_text()[-3000:]}")
            time.sleep(0.2)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


@pytest.fixture(scope="module")
def dashboard(fleet_file, fleet_topics):
    # The file does not change under this fixture (the live test below has a page
    # refreshing under loads): a refresh far apart leaves each page time to be seen
    # whole. At 2 s, CI on a busy machine once waited a minute for the Trips page to
    # settle and never saw it so: a page that reruns every 2 s may never be idle.
    with serve(
        DUCKDB_FILE=str(fleet_file), DASHBOARD_REFRESH="30", **topic_variables(fleet_topics)
    ) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.fail(
            "these tests need Debian's chromium and chromium-driver: "
            "apt-get install chromium chromium-driver (scripts/test.sh installs them as root)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1400,1100",
    ]:
        options.add_argument(flag)
    with tempfile.TemporaryDirectory(prefix="iot-chromium-") as profile:
        options.add_argument(f"--user-data-dir={profile}")
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
        try:
            yield driver
        finally:
            driver.quit()


@pytest.fixture(scope="session", autouse=True)
def screenshot_folder(tmp_path_factory):
    """Where screenshots go: IOT_SCREENSHOTS, kept, or a folder of pytest's own."""
    global SCREENSHOTS
    SCREENSHOTS = Path(os.environ.get("IOT_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)


SCREENSHOTS = Path()


def screenshots() -> Path:
    return SCREENSHOTS


def open_page(browser, url: str, name: str, ready, shot: str = "") -> str:
    """Opens page `name` from the sidebar, waits until `ready(text)` holds for the
    page's text, checks that no exception is shown, saves a screenshot (named after
    the page, or `shot`); returns the text."""
    browser.get(url)
    wait = WebDriverWait(browser, 60)
    wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, '[data-testid="stSidebar"] label'))
    label = browser.find_element(
        By.XPATH, f'//*[@data-testid="stSidebar"]//label[.//p[normalize-space()="{name}"]]'
    )
    label.click()
    text = ""

    def loaded(b) -> bool:
        nonlocal text
        text = b.find_element(By.TAG_NAME, "body").text
        # While a page runs, Streamlit keeps the last page's elements on screen,
        # marked stale: the page is whole when its run is over and none is left.
        return (
            ready(text)
            and not b.find_elements(By.CSS_SELECTOR, '[data-stale="true"]')
            and not b.find_elements(By.CSS_SELECTOR, '[data-testid^="stStatusWidgetRunning"]')
        )

    try:
        wait.until(loaded)
    except TimeoutException:
        path = screenshots() / ((shot or name.lower().replace(" ", "-")) + "-failed.png")
        browser.save_screenshot(str(path))
        stale = len(browser.find_elements(By.CSS_SELECTOR, '[data-stale="true"]'))
        running = browser.find_elements(By.CSS_SELECTOR, '[data-testid^="stStatusWidgetRunning"]')
        pytest.fail(
            f"{name}: the page never showed what it should (expected text there: "
            f"{ready(text)}, stale elements: {stale}, still running: {bool(running)}; "
            f"screenshot {path}); it shows:\n{text}"
        )
    assert not browser.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]'), text
    assert "Error" not in text, text
    path = screenshots() / ((shot or name.lower().replace(" ", "-")) + ".png")
    browser.save_screenshot(str(path))
    print(f"{name}: {path}")
    return text


def test_every_page_renders_the_file_in_a_real_browser(dashboard, browser, fleet_file):
    devices = [
        d
        for (d,) in truth(fleet_file, "SELECT DISTINCT device_id::VARCHAR FROM iot_stream.gps_data")
    ]
    trips = truth(fleet_file, "SELECT count(*) FROM iot_stream_analytics.trips")[0][0]

    def fleet_ready(text: str) -> bool:
        return all(d in text for d in devices) and bool(
            browser.find_elements(By.CSS_SELECTOR, '[data-testid="stDeckGlJsonChart"]')
        )

    open_page(browser, dashboard, "Fleet map", fleet_ready)
    text = open_page(browser, dashboard, "Trips", lambda t: "Cameras passed" in t)
    assert f"Trips\n{trips}" in text, text
    open_page(browser, dashboard, "Incidents", lambda t: "Median time to resolve" in t)
    open_page(browser, dashboard, "Weather", lambda t: "Wind, km/h" in t)
    # The fixture loaded everything: the broker's ends are the stored offsets.
    open_page(browser, dashboard, "Pipeline health", lambda t: "Messages not loaded yet\n0" in t)


def test_load_beside_a_refreshing_dashboard_exits_0_and_every_row_lands(browser, tmp_path):
    """The page reads the file every second while cron loads write new events into
    it: each load exits 0 (none meets the lock for longer than it waits), every
    message on the topics is in the file once, and the page shows the new rows."""
    topics = topics_of_our_own()
    live = tmp_path / "live.duckdb"
    simulate(topics, "--vehicles", "1", "--duration", "5m", "--seed", "1")
    load(topics, "--dest", "duckdb", "--duckdb-file", live, group=live.stem + topics[1])
    with serve(DUCKDB_FILE=str(live), DASHBOARD_REFRESH="1", **topic_variables(topics)) as url:
        open_page(
            browser,
            url,
            "Pipeline health",
            lambda t: "Messages not loaded yet" in t,
            shot="live-before-loads",
        )
        for seed in range(2, 5):
            simulate(topics, "--vehicles", "3", "--duration", "20m", "--seed", str(seed))
            # Small batches: many commits, each meeting the page's reads.
            load(
                topics,
                "--dest",
                "duckdb",
                "--duckdb-file",
                live,
                "--batch-size",
                "100",
                group=live.stem + topics[1],
            )
        sent = sum(topic_ends(topics).values())
        ((landed,),) = truth(live, LANDED)
        assert landed == sent
        ((distinct,),) = truth(live, DISTINCT_OFFSETS)
        assert distinct == sent, "no message twice"
        # The page caught up on its own: nothing left to load, as the broker says.
        text = open_page(
            browser,
            url,
            "Pipeline health",
            lambda t: "Messages not loaded yet\n0" in t,
            shot="live-after-loads",
        )
        runs = truth(live, "SELECT count(*) FROM iot_stream._loads")[0][0]
        assert f"Runs\n{runs}" in text, text


# Every message's row: the five tables and the dead letters.
TABLES = ["vehicle_data", "gps_data", "traffic_data", "weather_data", "emergency_data"]
LANDED = (
    "SELECT "
    + " + ".join(f"(SELECT count(*) FROM iot_stream.{t})" for t in TABLES)
    + " + (SELECT count(*) FROM iot_stream._dead_letters)"
)
DISTINCT_OFFSETS = (
    "SELECT count(*) FROM (SELECT DISTINCT _kafka_topic, _kafka_partition, _kafka_offset FROM ("
    + " UNION ALL ".join(
        f"SELECT _kafka_topic, _kafka_partition, _kafka_offset FROM iot_stream.{t}" for t in TABLES
    )
    + ' UNION ALL SELECT topic, "partition", "offset" FROM iot_stream._dead_letters))'
)


class Tiles(http.server.SimpleHTTPRequestHandler):
    """A tile server of one's own, as DASHBOARD_MAP_STYLE names it: a MapLibre
    style whose only layer paints the land magenta, served to any page."""

    STYLE = {
        "version": 8,
        "sources": {},
        "layers": [{"id": "land", "type": "background", "paint": {"background-color": "#ff00ff"}}],
    }

    def do_GET(self):  # noqa: N802 (http.server's name)
        body = json.dumps(self.STYLE).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def magenta_share(png: Path) -> float:
    """The share of a screenshot's pixels that are the style's magenta."""
    from PIL import Image

    with Image.open(png) as image:
        rgb = image.convert("RGB")
        colors = rgb.getcolors(rgb.width * rgb.height)
    magenta = sum(n for n, (r, g, b) in colors if r > 240 and g < 20 and b > 240)
    return magenta / sum(n for n, _ in colors)


def test_the_map_lies_on_the_base_map_the_browser_can_reach(browser, fleet_file, tmp_path):
    """With a style the browser can fetch, the tracks lie on its base map; with one
    it cannot (the default CARTO one, offline here), on the plain canvas: the
    tracks are drawn either way."""
    tiles = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Tiles)
    threading.Thread(target=tiles.serve_forever, daemon=True).start()
    style = f"http://127.0.0.1:{tiles.server_address[1]}/style.json"
    devices = [
        d
        for (d,) in truth(fleet_file, "SELECT DISTINCT device_id::VARCHAR FROM iot_stream.gps_data")
    ]
    try:
        for name, env, base in [
            ("base-map", {"DASHBOARD_MAP_STYLE": style}, True),
            ("no-base-map", {}, False),
        ]:
            with serve(DUCKDB_FILE=str(fleet_file), DASHBOARD_REFRESH="60", **env) as url:
                open_page(
                    browser, url, "Fleet map", lambda t: all(d in t for d in devices), shot=name
                )
                time.sleep(3)  # the style and the layers drawn
                path = tmp_path / f"{name}.png"
                browser.save_screenshot(str(path))
                share = magenta_share(path)
                assert (share > 0.05) == base, f"{name}: {share:.3f} of {path} is magenta"
    finally:
        tiles.shutdown()
