"""The service's web page in a real headless browser (Selenium + Debian's chromium), against the real app
(uvicorn on a loopback port, the CPU OCR engine, a local Qdrant folder): what a user relies on.

- Dropping a 2-page PDF shows both pages with their image and text, the progress reaches "2 of 2", chunk
  regions are drawn on the page images, and hovering one tells its heading and text.
- "Add to collection" ends with the job done; a search for a phrase of page 2 lists that file and page first
  and highlights its region on page 2.
- With an API key set, a 401 asks for the key and the request goes through with it; a 429 is retried after
  Retry-After; an API error is shown with its suggestion and request id.
- Model HTML reaches the page only through the page's own allow-list (the server's, mirrored): crafted HTML
  the service is made to answer as it is leaves no script, no SVG or MathML animation, no style and no
  attribute that fetches another origin; a safe link survives with rel="noopener noreferrer".

Skipped when chromium or chromedriver is not installed (apt-get install chromium chromium-driver).
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the service needs fastapi: pip install 'lightocr-ingest[service]'")
pytest.importorskip("uvicorn", reason="the service needs uvicorn: pip install 'lightocr-ingest[service]'")
pytest.importorskip("selenium", reason="the browser test needs selenium: pip install selenium")

import uvicorn  # noqa: E402
from fpdf import FPDF  # noqa: E402
from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import WebDriverException  # noqa: E402
from selenium.webdriver.chrome.service import Service as ChromeService  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from .conftest import service_settings  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
OCR_TIMEOUT_S = 300  # the CPU engine: seconds a page on a busy 2-core machine, plus loading its models once
INGEST_TIMEOUT_S = 300  # OCR again (no cache), embedding model load, Qdrant

PAGES = [
    ("Volcanoes of Hawaii",
     ["Basaltic lava flows from the shield volcanoes of Hawaii erupt gently and build broad domes over "
      "thousands of years.",
      "Geologists measure the tilt of the summit with instruments to forecast the next eruption."]),
    ("Emperor Penguins",
     ["Emperor penguins breed on the Antarctic sea ice during the long polar winter.",
      "The males keep the single egg warm on their feet for two months while the females feed at sea."]),
]
QUERY = "Where do emperor penguins breed and keep their egg warm in the polar winter?"


def topics_pdf(path: Path, pages: int = 2) -> Path:
    """A PDF whose pages are about different things, so a search can tell them apart."""
    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(False)
    for title, paragraphs in PAGES[:pages]:
        pdf.add_page()
        pdf.set_font("Helvetica", "B", 18)
        pdf.cell(0, 12, title, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(3)
        pdf.set_font("Helvetica", size=11)
        for text in paragraphs:
            pdf.multi_cell(0, 6, text)
            pdf.ln(4)
    pdf.output(str(path))
    return path


# ------------------------------------------------------------------------------------ server and browser

class LiveServer:
    """The real app under uvicorn in a thread, on a free loopback port, with its own event loop."""

    def __init__(self, settings):
        from lightocr_ingest.service.app import create_app

        self.app = create_app(settings)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", lifespan="on"))
        self.loop = asyncio.new_event_loop()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="web-test-uvicorn", daemon=True)

    def _run(self):
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self.server.serve(sockets=[self.sock]))
        except BaseException as exc:  # noqa: BLE001 - reported by start()
            self.error = exc

    def start(self, timeout_s: float = 120):
        self.thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if self.error is not None or not self.thread.is_alive():
                raise RuntimeError(f"the service did not start: {self.error!r}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the service did not start within {timeout_s} s")
            time.sleep(0.05)
        return self

    def call(self, coroutine, timeout_s: float = 30):
        """Run a coroutine on the server's own loop (to hold its OCR slot, say)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout_s)

    def stop(self):
        self.server.should_exit = True
        self.thread.join(timeout=60)
        self.sock.close()


@pytest.fixture
def browser():
    if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
        pytest.skip("chromium not installed: apt-get install chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000",
                     "--disable-gpu", "--disable-extensions"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        driver = webdriver.Chrome(options=options, service=ChromeService(str(CHROMEDRIVER)))
    except WebDriverException as exc:
        pytest.skip(f"chromium would not start ({exc.msg}): apt-get install chromium chromium-driver")
    driver.set_script_timeout(30)
    yield driver
    driver.quit()


def wait(driver, timeout_s: float = 30) -> WebDriverWait:
    return WebDriverWait(driver, timeout_s, poll_frequency=0.2)


def errors_shown(driver) -> str:
    return driver.find_element(By.ID, "errors").text


def wait_for(driver, condition, timeout_s: float, what: str):
    """An explicit wait whose failure says what the page showed (progress, job, errors) at the time."""
    try:
        return wait(driver, timeout_s).until(condition)
    except Exception as exc:
        state = {name: driver.find_element(By.ID, name).text
                 for name in ("progress-text", "job-status", "search-status", "notice", "errors")}
        raise AssertionError(f"{what}: not within {timeout_s} s; the page showed {state}") from exc


def page_section(driver, number: int):
    return driver.find_element(By.CSS_SELECTOR, f'section.page[data-page="{number}"]')


def image_loaded(driver, section) -> bool:
    return driver.execute_script(
        "const img = arguments[0].querySelector('img.page-img');"
        "return !!img && img.complete && img.naturalWidth > 0 && img.getBoundingClientRect().width > 0;", section)


def box_inside_image(driver, box) -> bool:
    """The box has a size and lies on its page image (not collapsed, not off the picture)."""
    return driver.execute_script(
        "const box = arguments[0].getBoundingClientRect();"
        "const img = arguments[0].closest('.page-image').querySelector('img').getBoundingClientRect();"
        "return box.width > 2 && box.height > 2 && box.left >= img.left - 1 && box.top >= img.top - 1"
        " && box.right <= img.right + 1 && box.bottom <= img.bottom + 1;", box)


def blocks_on_loaded_page(driver, number: int, expected_labels: set):
    """Page `number`'s block labels, whether every block lies on its image, and its caption,
    read in one script call (no element handle outlives a re-render); None until the image
    has loaded and the expected labels are all drawn."""
    shown = driver.execute_script(
        "const section = document.querySelector(`section.page[data-page=\"${arguments[0]}\"]`);"
        "if (!section) return null;"
        "const img = section.querySelector('.page-image img.page-img');"
        "if (!img || !img.complete || img.naturalWidth === 0) return null;"
        "const frame = img.getBoundingClientRect();"
        "if (frame.width === 0) return null;"
        "const blocks = [...section.querySelectorAll('.page-image .block')];"
        "const inside = blocks.every(b => { const r = b.getBoundingClientRect();"
        "  return r.width > 2 && r.height > 2 && r.left >= frame.left - 1 && r.top >= frame.top - 1"
        "    && r.right <= frame.right + 1 && r.bottom <= frame.bottom + 1; });"
        "const caption = section.querySelector('.page-caption');"
        "return {labels: blocks.map(b => b.dataset.label), all_inside: inside,"
        "        caption: caption ? caption.textContent : ''};", number)
    if not shown or not expected_labels <= set(shown["labels"]):
        return None
    return shown


# ------------------------------------------------------------------------------------ tests

def test_drop_a_pdf_read_it_page_by_page_ingest_it_and_find_page_two(browser, tmp_path):
    pdf = topics_pdf(tmp_path / "wildlife.pdf")
    sha256 = hashlib.sha256(pdf.read_bytes()).hexdigest()
    server = LiveServer(service_settings(tmp_path)).start()
    try:
        browser.get(server.url + "/")
        assert "lightocr-ingest" in browser.title
        browser.find_element(By.ID, "file-input").send_keys(str(pdf))

        wait_for(browser, EC.text_to_be_present_in_element((By.ID, "progress-text"), "2 of 2"), OCR_TIMEOUT_S,
                 "the progress reaching page 2 of 2")
        assert browser.find_element(By.ID, "progress").get_attribute("value") == "2"
        for number, (title, paragraphs) in enumerate(PAGES, start=1):
            section = page_section(browser, number)
            wait_for(browser, lambda d, s=section: image_loaded(d, s), 30, f"page {number}'s image")
            html = section.find_element(By.CSS_SELECTOR, ".page-html")
            headings = [h.text for h in html.find_elements(By.CSS_SELECTOR, "h1, h2, h3, h4, h5, h6")]
            assert any(title in h for h in headings), (number, headings, html.text)
            assert paragraphs[0].split()[0] in html.text and html.is_displayed()
        assert [s.get_attribute("data-page") for s in browser.find_elements(By.CSS_SELECTOR, "section.page")] \
            == ["1", "2"]

        # The file's chunks come after its last page (cut over the whole file), then their regions are drawn.
        wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "section.page .page-image .region"), 30,
                 "chunk regions drawn on the page images")
        regions = browser.find_elements(By.CSS_SELECTOR, "section.page .page-image .region")
        assert all(box_inside_image(browser, box) for box in regions)
        region = next(box for box in page_section(browser, 2).find_elements(By.CSS_SELECTOR, ".region")
                      if "Emperor Penguins" in (box.get_attribute("aria-label") or ""))
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", region)
        ActionChains(browser).move_to_element(region).perform()
        tooltip = wait_for(browser, EC.visibility_of_element_located((By.ID, "tooltip")), 10, "the region's tooltip")
        assert "Emperor Penguins" in tooltip.text and "Antarctic" in tooltip.text, tooltip.text

        browser.find_element(By.ID, "ingest-button").click()
        status = browser.find_element(By.ID, "job-status")
        wait_for(browser, lambda d: status.get_attribute("data-status") in ("done", "partial", "failed", "error"),
                 INGEST_TIMEOUT_S, "the ingest job finishing")
        assert status.get_attribute("data-status") == "done", status.text
        assert "pages ingested 2 of 2" in status.text, status.text
        assert "wildlife.pdf" in browser.find_element(By.ID, "job-files").text

        search = browser.find_element(By.ID, "search-input")
        search.send_keys(QUERY)
        browser.find_element(By.ID, "search-button").click()
        first = wait_for(browser, EC.visibility_of_element_located((By.CSS_SELECTOR, "#search-results li.hit")),
                         120, "search hits")
        assert (first.get_attribute("data-file-sha256"), first.get_attribute("data-page")) == (sha256, "2"), \
            first.text
        assert "page 2" in first.text and "score" in first.text and "Antarctic" in first.text
        wait_for(browser, lambda d: page_section(d, 2).find_elements(By.CSS_SELECTOR, ".hit-region"), 10,
                 "the hit's region highlighted on page 2")
        page2 = page_section(browser, 2)
        assert "has-hit" in page2.get_attribute("class")
        assert all(box_inside_image(browser, box) for box in page2.find_elements(By.CSS_SELECTOR, ".hit-region"))
        assert not page_section(browser, 1).find_elements(By.CSS_SELECTOR, ".hit-region")
        wait_for(browser, lambda d: d.execute_script(
            "const r = arguments[0].getBoundingClientRect(); return r.top >= 0 && r.bottom <= window.innerHeight;",
            page2.find_element(By.CSS_SELECTOR, ".hit-region")), 10, "the highlighted region scrolled into view")

        assert errors_shown(browser) == ""
        console = [entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
        assert console == [], console
        # The hit names the file as the user uploaded it, not as the service saved it.
        assert first.get_attribute("data-file-name") == "wildlife.pdf", first.text

        # The collection's documents, one deleted with its button (after a confirmation).
        browser.find_element(By.ID, "documents-button").click()
        item = wait_for(browser, EC.visibility_of_element_located((By.CSS_SELECTOR, f"#documents li[data-sha256='{sha256}']")),
                        30, "the document listed")
        assert "wildlife.pdf" in item.text and "2 pages" in item.text, item.text
        item.find_element(By.CSS_SELECTOR, "button.delete-document").click()
        wait_for(browser, EC.alert_is_present(), 10, "the confirmation").accept()
        wait_for(browser, EC.text_to_be_present_in_element((By.ID, "documents-status"), "No documents"), 30,
                 "the list emptied after the delete")
        assert not browser.find_elements(By.CSS_SELECTOR, "#documents li") and errors_shown(browser) == ""
    finally:
        server.stop()


def test_asks_for_the_api_key_retries_when_busy_and_explains_errors(browser, tmp_path):
    pdf = topics_pdf(tmp_path / "volcanoes.pdf", pages=1)
    notes = tmp_path / "notes.txt"
    notes.write_text("plain text is not a document the service reads\n")
    server = LiveServer(service_settings(tmp_path, api_key="web-test-key", concurrency=1, queue_size=0)).start()
    service = server.app.state.service
    try:
        browser.get(server.url + "/")
        # The one OCR slot is taken (as by another user's long request) and nothing may wait: the next is a 429.
        server.call(service.ocr_slots.semaphore.acquire())
        browser.find_element(By.ID, "file-input").send_keys(str(pdf))

        key_input = wait_for(browser, EC.visibility_of_element_located((By.ID, "api-key-input")), 30,
                             "the API key prompt after a 401")
        assert browser.find_element(By.CSS_SELECTOR, "label[for=api-key-input]").is_displayed()
        key_input.send_keys("web-test-key")
        browser.find_element(By.ID, "api-key-submit").click()
        wait_for(browser, EC.invisibility_of_element_located((By.ID, "api-key-panel")), 10, "the prompt closing")
        assert browser.execute_script("return sessionStorage.getItem('lightocr-ingest.api-key')") == "web-test-key"

        notice = wait_for(browser, EC.visibility_of_element_located((By.ID, "notice")), 30,
                          "the busy notice after a 429")
        assert "busy" in notice.text and "trying again" in notice.text, notice.text
        server.loop.call_soon_threadsafe(service.ocr_slots.semaphore.release)
        wait_for(browser, EC.text_to_be_present_in_element((By.ID, "progress-text"), "1 of 1"), OCR_TIMEOUT_S,
                 "page 1 read once the slot was free")
        assert "Volcanoes of Hawaii" in page_section(browser, 1).find_element(By.CSS_SELECTOR, ".page-html").text
        assert errors_shown(browser) == "", "a 401 or 429 answered by a retry is not an error to show"

        browser.find_element(By.ID, "file-input").send_keys(str(notes))
        error = wait_for(browser, EC.visibility_of_element_located((By.CSS_SELECTOR, "#errors .error-item")), 60,
                         "the error for an unsupported file")
        assert error.get_attribute("data-code") == "unsupported_type", error.text
        assert "notes.txt" in error.text and "HTTP 415" in error.text
        assert "Suggestion: upload a PDF or an image" in error.text, error.text
        request_id = error.find_element(By.CSS_SELECTOR, ".error-request-id code").text
        assert len(request_id) >= 8, error.text
        assert not browser.find_element(By.ID, "api-key-panel").is_displayed(), "the stored key is sent again"
    finally:
        server.stop()


def test_the_models_layout_blocks_are_drawn_with_their_labels(browser, tmp_path):
    """LightOnOCR-3 grounding: each page's blocks are outlined on its image with their labels."""
    from lightocr_ingest.testing import FakeVLLMServer

    pdf = topics_pdf(tmp_path / "wildlife.pdf")
    with FakeVLLMServer("lightonai/LightOnOCR-3-4B") as vllm:
        server = LiveServer(service_settings(tmp_path, vllm.url)).start()
        try:
            browser.get(server.url + "/")
            browser.find_element(By.ID, "file-input").send_keys(str(pdf))
            wait_for(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "section.page .block")) >= 2 * 10, 60,
                     "layout blocks drawn on both pages")
            # The page re-renders a section as the job moves on (read, then stored), so the blocks
            # are observed in one script call, retried until page 1 shows them on its loaded image.
            expected = {"header", "title", "text", "table", "caption", "page_number"}
            shown = wait_for(browser, lambda d: blocks_on_loaded_page(d, 1, expected), 60,
                             "page 1's image with its labelled blocks")
            assert expected <= set(shown["labels"])
            assert shown["all_inside"], shown
            assert "layout blocks the model labelled" in shown["caption"]
        finally:
            server.stop()


# Crafted answers a hostile document could make the model write. Shown as they came, each would run a script,
# point a link at javascript: (an SVG <animate> or <set> rewriting an href, MathML's xlink:href) or fetch
# another origin (style, background, poster, ping, src, srcset, action, formaction).
HOSTILE_HTML = [
    '<img src=x onerror=alert(1)>',
    '<p style="background:url(https://evil.example/a)">x</p>',
    '<table background="https://evil.example/b"><tr><td>t</td></tr></table>',
    '<video poster="https://evil.example/c"></video>',
    '<a href="https://ok.example/" ping="https://evil.example/d">ok</a>',
    '<a href="javascript:alert(1)">bad</a>',
    '<a href=" JaVaScRiPt:alert(1)">bad2</a> <a href="data:text/html,<script>alert(1)</script>">bad3</a>',
    '<svg><a><animate attributeName="href" values="javascript:alert(1)"/><text>x</text></a></svg>',
    '<svg><a><animate attributeName="href" to="javascript:alert(1)"/></a></svg>',
    '<svg><set attributeName="href" to="javascript:alert(1)"/><image href="https://evil.example/e"/></svg>',
    '<math><maction actiontype="statusline" xlink:href="javascript:alert(1)"><mi>x</mi></maction></math>',
    '<math><mi href="javascript:alert(1)">y</mi><a href="https://evil.example/m">m</a></math>',
    '<iframe src="https://evil.example"></iframe>',
    '<form action="https://evil.example"><button formaction="https://evil.example">b</button></form>',
    '<img srcset="https://evil.example/f 1x"><p onclick="alert(1)" onmouseover="alert(1)">kept text</p>',
    '<style>@import url(https://evil.example/g);</style><link rel="stylesheet" href="https://evil.example/h">',
    '<template><img src=x onerror=alert(1)></template><noscript><img src=x onerror=alert(1)></noscript>',
]
URL_ATTRIBUTES = {"style", "background", "poster", "ping", "src", "srcset", "xlink:href", "formaction", "action",
                  "href"}


def test_model_html_reaches_the_page_only_through_its_allow_list(browser, tmp_path, monkeypatch):
    """Defence in depth: the service is made to answer crafted HTML as it came (as if the server's own
    allow-list had let it through), and the page's sanitiser alone must keep the live DOM safe."""
    from lightocr_ingest.service import page_html as page_html_module
    from lightocr_ingest.testing import FakeVLLMServer

    sent = []

    def crafted(markdown):
        sent.append(markdown)
        return "\n".join(HOSTILE_HTML)

    # /v1/ocr imports page_html when it renders a page, so the service answers the crafted HTML.
    monkeypatch.setattr(page_html_module, "page_html", crafted)
    pdf = topics_pdf(tmp_path / "hostile.pdf", pages=1)
    with FakeVLLMServer("lightonai/LightOnOCR-2-1B") as vllm:
        server = LiveServer(service_settings(tmp_path, vllm.url)).start()
        try:
            browser.get(server.url + "/")
            browser.find_element(By.ID, "file-input").send_keys(str(pdf))
            wait_for(browser, EC.text_to_be_present_in_element((By.ID, "progress-text"), "1 of 1"), 60,
                     "page 1 read")
            assert sent, "the service did not answer the crafted HTML: the test would prove nothing"
            time.sleep(1)  # time for any fetch or script the DOM would start
            shown = browser.execute_script(
                "const root = document.querySelector('section.page[data-page=\"1\"] .page-html');"
                "return {text: root.textContent,"
                "  elements: [...root.querySelectorAll('*')].map((node) => ({tag: node.localName,"
                "    ns: node.namespaceURI, attributes: [...node.attributes].map((a) => a.name.toLowerCase())})),"
                "  links: [...root.querySelectorAll('a')].map((a) => ({href: a.getAttribute('href'),"
                "    rel: a.getAttribute('rel'), target: a.getAttribute('target'), text: a.textContent})),"
                "  fetched: performance.getEntriesByType('resource').map((entry) => entry.name)};")
            from lightocr_ingest.service.page_html import ALLOWED_TAGS

            tags = {element["tag"] for element in shown["elements"]}
            assert tags <= ALLOWED_TAGS, sorted(tags - ALLOWED_TAGS)
            assert not tags & {"svg", "animate", "set", "maction", "image", "img", "video", "iframe", "form"}
            assert all(element["ns"] in ("http://www.w3.org/1999/xhtml", "http://www.w3.org/1998/Math/MathML")
                       for element in shown["elements"]), shown["elements"]
            attributes = {name for element in shown["elements"] for name in element["attributes"]}
            assert not {name for name in attributes if name.startswith("on")}, attributes
            hrefs = {(e["tag"], e["ns"]) for e in shown["elements"] if "href" in e["attributes"]}
            assert hrefs == {("a", "http://www.w3.org/1999/xhtml")}, hrefs  # links only, HTML ones
            assert not attributes & (URL_ATTRIBUTES - {"href"}), sorted(attributes & URL_ATTRIBUTES)
            # The one safe link survives, opening apart from this page; the others keep their text only.
            assert [link for link in shown["links"] if link["href"] is not None] == [
                {"href": "https://ok.example/", "rel": "noopener noreferrer", "target": "_blank", "text": "ok"}]
            for text in ("ok", "bad", "bad2", "bad3", "t", "b", "kept text"):
                assert text in shown["text"], (text, shown["text"])
            assert "alert(1)" not in shown["text"] and "@import" not in shown["text"]
            assert not [name for name in shown["fetched"] if "evil.example" in name], shown["fetched"]
            console = [entry["message"] for entry in browser.get_log("browser")]
            assert not [message for message in console if "evil.example" in message], console
            assert errors_shown(browser) == ""
        finally:
            server.stop()


def test_the_api_docs_page_works_offline_under_its_content_security_policy(browser, tmp_path):
    """/docs is Swagger UI from the package: it lists the routes with nothing fetched from another
    origin (this machine reaches none: from a CDN it was blank) and no CSP violation in the console."""
    server = LiveServer(service_settings(tmp_path)).start()
    try:
        browser.get(server.url + "/docs")
        wait_for(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, ".opblock")) >= 6, 60,
                 "Swagger UI lists the API's operations")
        paths = {element.text for element in browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")}
        assert {"/v1/ocr", "/v1/ingest", "/v1/query"} <= paths, paths
        fetched = browser.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name)")
        assert fetched and all(url.startswith(server.url) for url in fetched), fetched
        console = [entry["message"] for entry in browser.get_log("browser")]
        assert not [m for m in console if "Content Security Policy" in m or "Refused" in m], console
    finally:
        server.stop()
