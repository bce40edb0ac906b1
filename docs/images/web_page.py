"""Takes docs/images/web-page.png, the README's picture of the web page: a page of a sample PDF
beside its Markdown, with its chunks' regions drawn on the page image.

    .venv/bin/python docs/images/web_page.py     # needs the [test] extra and Debian's chromium

It starts `lightocr-ingest serve` with the CPU engine on a free loopback port, in a scratch
folder, drives headless chromium through the page and saves the screenshot.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "samples" / "field-station-handbook.pdf"
PAGE = 2  # a page with a heading path and several chunks
OUT = Path(__file__).resolve().parent / "web-page.png"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def main() -> None:
    port = free_port()
    work = tempfile.mkdtemp(prefix="lightocr-screenshot-")
    server = subprocess.Popen(
        [sys.executable, "-m", "lightocr_ingest.cli", "serve", "--port", str(port), "--ocr-engine", "cpu",
         "--qdrant-path", os.path.join(work, "qdrant"), "--collection", "screenshot"],
        cwd=work, env={**os.environ, "HF_HUB_OFFLINE": "1", "LIGHTOCR_CACHE_DIR": os.path.join(work, "ocr")})
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1100,1400",
                     "--disable-gpu", "--disable-background-networking", "--hide-scrollbars"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("the service did not start") from None
                time.sleep(0.5)
        driver.get(f"http://127.0.0.1:{port}/")
        driver.find_element(By.ID, "file-input").send_keys(str(SAMPLE))
        WebDriverWait(driver, 300).until(expected_conditions.text_to_be_present_in_element(
            (By.ID, "progress-text"), "Done"))
        section = f'section.page[data-page="{PAGE}"]'
        WebDriverWait(driver, 120).until(lambda d: int(d.find_element(By.CSS_SELECTOR, section)
                                                       .get_attribute("data-regions") or 0) > 0)
        element = driver.find_element(By.CSS_SELECTOR, section)
        driver.execute_script("arguments[0].scrollIntoView()", element)
        element.screenshot(str(OUT))
        print(f"wrote {OUT}")
    finally:
        driver.quit()
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
