"""The web page in a real headless browser (Debian's chromium and chromedriver, driven by
selenium): upload obama_and_biden.jpg, click on Obama's face, see Barack Obama's card first.
A screenshot is kept as a test artifact (``$PIXLINK_TEST_ARTIFACTS``, else ``test-artifacts/``)."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

from helpers import REPO, need_module, unavailable

pytestmark = [pytest.mark.slow, pytest.mark.data]

CHROMIUM = os.environ.get("PIXLINK_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("PIXLINK_CHROMEDRIVER", "/usr/bin/chromedriver")


def artifacts() -> Path:
    d = Path(os.environ.get("PIXLINK_TEST_ARTIFACTS", REPO / "test-artifacts"))
    d.mkdir(parents=True, exist_ok=True)
    return d


@pytest.fixture(scope="module")
def server(engine, settings):
    """The app on a real uvicorn server on loopback (a free port), around the session's engine."""
    uvicorn = need_module("uvicorn")
    from pixlink.serve import create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(create_app(settings, engine=engine, load=False), host="127.0.0.1", port=port,
                                        log_level="warning"))
    t = threading.Thread(target=srv.run, daemon=True)
    t.start()
    deadline = time.time() + 30
    while not srv.started and time.time() < deadline:
        time.sleep(0.05)
    assert srv.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    t.join(10)


@pytest.fixture(scope="module")
def browser():
    need_module("selenium", "the page test drives a real browser")
    for path, what in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromedriver")):
        if not (Path(path).is_file() or shutil.which(path)):
            unavailable(f"{what} is not installed at {path} (apt-get install -y chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    yield driver
    driver.quit()


def test_click_on_obamas_face_shows_his_card_first(server, browser, shared_data, spots):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 120)
    browser.get(server + "/")
    wait.until(lambda d: d.find_element(By.ID, "status").text.startswith("ready"))
    browser.find_element(By.ID, "file").send_keys(str(shared_data("photos", "obama_and_biden.jpg")))
    wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-image"))
    overlay = browser.find_element(By.ID, "overlay")
    assert overlay.is_displayed()
    w, h = overlay.size["width"], overlay.size["height"]
    x, y = spots.obama_face
    ActionChains(browser).move_to_element_with_offset(overlay, x * w / 2000 - w / 2, y * h / 1428 - h / 2).click().perform()
    wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-answered"))
    cards = browser.find_elements(By.CSS_SELECTOR, "#cards li.card")
    shot = artifacts() / "page-link-obama.png"
    browser.save_screenshot(str(shot))
    print(f"screenshot: {shot}")
    assert cards, browser.find_element(By.ID, "error").text
    first = cards[0]
    assert first.get_attribute("data-entity") == "Q76", [c.text for c in cards]
    assert "Barack Obama" in first.text and "score" in first.text
    assert not browser.find_element(By.ID, "working").is_displayed()
    assert browser.find_element(By.ID, "nil").get_attribute("hidden") is not None
    # the mask is drawn over the image: the overlay has coloured pixels at the click
    alpha = browser.execute_script(
        "const c=document.getElementById('overlay');"
        "return c.getContext('2d').getImageData(arguments[0], arguments[1], 1, 1).data[3];", x + 20, y + 40)
    assert alpha > 0
    # keyboard: B switches to box mode
    overlay.send_keys("b")
    assert browser.find_element(By.CSS_SELECTOR, "[data-mode=box]").get_attribute("aria-pressed") == "true"
    # the GMNER tab: the post's entities with their boxes, through POST /v1/gmner
    browser.find_element(By.ID, "tab-gmner").click()
    browser.find_element(By.ID, "post").send_keys("Barack Obama and Joe Biden on stage")
    browser.find_element(By.ID, "run-gmner").click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#entities li.ent"))
    ents = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#entities li.ent")]
    browser.save_screenshot(str(artifacts() / "page-gmner.png"))
    assert any("(PER)" in t for t in ents), ents
