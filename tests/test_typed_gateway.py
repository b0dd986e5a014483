"""Typed endpoints through a real gunicorn and real kernels, and the docs page in a real browser
(Debian's chromium and chromium-driver, driven by selenium)."""

from __future__ import annotations

import json
import shutil
import tempfile

import pytest
from conftest import REPO
from gateway import Gateway, gateway_env

TYPED = REPO / "tests" / "typed" / "fngw.yaml"


@pytest.fixture(scope="module")
def gw():
    gateway = Gateway(env=gateway_env(FNGW_MANIFEST=str(TYPED)))
    try:
        gateway.wait_ready("/_fngw/ready", timeout=90)
        yield gateway
    finally:
        gateway.stop()


def post_json(gw, path, value, headers=None):
    body = json.dumps(value).encode()
    status, response_headers, data = gw.request(
        "POST", path, body=body, headers={"Content-Type": "application/json", **(headers or {})}
    )
    return status, response_headers, json.loads(data)


def test_a_typed_request_runs_with_typed_params_on_a_real_kernel(gw):
    status, headers, body = post_json(gw, "/orders/eu?dry_run=1", {"sku": "W-1", "qty": 3}, {"X-Client": "ci"})
    assert status == 201, body
    assert headers["content-type"] == "application/json"
    assert body == {"sku": "W-1", "qty": 3, "region": "eu", "dry_run": True}


def test_invalid_requests_are_refused_before_a_kernel(gw):
    status, _, body = post_json(gw, "/orders/eu", {"sku": "W-1", "qty": "many"}, {"X-Client": "ci"})
    assert status == 422 and body["errors"] == [
        {"in": "body", "pointer": "/qty", "message": "'many' is not of type 'integer'"}
    ]
    status, _, data = gw.request("POST", "/orders/eu", body=b"<order/>", headers={"Content-Type": "application/xml"})
    assert status == 415 and json.loads(data)["accepted"] == ["application/json"]
    _, _, metrics = gw.request("GET", "/_fngw/metrics")
    assert b'fngw_request_rejections_total{method="POST",reason="media_type",route="/orders/:region"} 1.0' in metrics


def test_a_response_breaking_its_schema_is_a_500_and_logged(gw):
    status, _, data = gw.request("GET", "/broken")
    assert status == 500 and "'id' is a required property" in json.loads(data)["message"]
    assert "breaks its declared responses" in gw.output


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert chromium and driver, "the browser test needs Debian's chromium and chromium-driver (see README)"
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",  # this machine's network is closed: no update or sync calls
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tempfile.mkdtemp(prefix='fngw-chromium-')}",
    ):
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=Service(executable_path=driver))


def test_the_docs_page_lists_the_endpoints_and_tries_one_out(gw):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    driver = browser()
    try:
        driver.get(f"http://127.0.0.1:{gw.port}/_fngw/docs")
        wait = WebDriverWait(driver, 30)
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".opblock")) >= 5)
        summaries = {" ".join(e.text.split()[:2]) for e in driver.find_elements(By.CSS_SELECTOR, ".opblock-summary")}
        assert {"POST /orders/{region}", "GET /plain"} <= summaries, summaries
        block = driver.find_element(By.ID, "operations-orders-orders_get_plain")
        block.find_element(By.CSS_SELECTOR, ".opblock-summary").click()
        wait.until(
            ready.element_to_be_clickable((By.CSS_SELECTOR, "#operations-orders-orders_get_plain .try-out__btn"))
        ).click()
        wait.until(
            ready.element_to_be_clickable((By.CSS_SELECTOR, "#operations-orders-orders_get_plain .execute"))
        ).click()
        answer = (
            By.CSS_SELECTOR,
            "#operations-orders-orders_get_plain .live-responses-table .response-col_description pre",
        )
        wait.until(ready.text_to_be_present_in_element(answer, "untyped"))
    finally:
        driver.quit()
