"""The dashboard in a real headless Chromium (Debian's `chromium`, driven by Playwright), against
the real `izzi serve` and the mock upstream: the overview's totals are `izzi usage --json`'s,
filters work, new requests appear in the live log without a reload, no prompt text reaches the
page, nothing outside the gateway is ever fetched, and every view is photographed (light and
dark, 1,280 px and phone width) into target/artifacts/dashboard/."""

import datetime
import json
import os
import pathlib
import signal
import subprocess
import tempfile
import time
import urllib.request

import pytest
from playwright.sync_api import expect, sync_playwright

from conftest import IZZI, KEY, TARGET, Gateway, providers

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
ARTIFACTS = TARGET / "artifacts" / "dashboard"
VIEWS = ["overview", "sessions", "requests", "limits", "upstreams"]
# Sent in every prompt; must never reach the page.
PROMPT = "zebra-marmalade-7781 is the secret prompt"
CI_KEY = "izzi-ci-key-000000000000000"
CLAUDE_UA = "claude-cli/2.0.14 (external, cli)"


def keys(budget: str) -> str:
    return f"""
[[keys]]
name = "ci"
key = "{CI_KEY}"
plan = "ultra"
monthly_budget_usd = {budget}
"""


def send(gw, key, model, text, headers=None, path=None):
    """One request through the gateway; its status."""
    claude = model.startswith("claude") or model in ("sonnet", "haiku", "opus")
    path = path or ("/v1/messages" if claude else "/v1/chat/completions")
    body = {"model": model, "max_tokens": 64, "messages": [{"role": "user", "content": text}]}
    request = urllib.request.Request(f"{gw.url}{path}", data=json.dumps(body).encode(), method="POST",
                                     headers={"content-type": "application/json", "authorization": f"Bearer {key}",
                                              **(headers or {})})
    try:
        with urllib.request.urlopen(request) as r:
            r.read()
            return r.status
    except urllib.error.HTTPError as e:
        e.read()
        return e.code


def izzi_json(gw, *args):
    env = dict(os.environ, IZZI_HOME=str(gw.home), HOME=str(gw.home), IZZI_KEYRING="file")
    out = subprocess.run([str(IZZI), *args, "--json"], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def month_start() -> str:
    now = datetime.datetime.now(datetime.timezone.utc)
    return f"{now:%Y-%m}-01T00:00:00Z"


def wait_for_rows(gw, n):
    deadline = time.monotonic() + 10
    while True:
        total = izzi_json(gw, "usage")["total"]["requests"]
        if total >= n:
            return
        assert time.monotonic() < deadline, f"{total} rows of {n}"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def gw(mock):
    """A gateway with a scripted mix: two keys, Claude Code sessions, an SDK, a failure; then the
    `ci` key's budget lowered (a reload) under what it spent, so an alert stands."""
    config = providers(mock) + keys("100.0")
    gateway = Gateway(config)
    sent = 0
    for session in ("sess-aaaa-1111", "sess-bbbb-2222"):
        for turn in range(3):
            sent += 1
            assert send(gateway, KEY, "sonnet", f"{PROMPT} turn {turn}",
                        {"user-agent": CLAUDE_UA, "x-claude-code-session-id": session}) == 200
    for _ in range(2):
        sent += 1
        assert send(gateway, CI_KEY, "gpt-4.1", f"{PROMPT} mock:words=20",
                    {"user-agent": "OpenAI/Python 2.1.0"}) == 200
    sent += 1
    assert send(gateway, CI_KEY, "gpt-4.1", f"{PROMPT} mock:status=400", {"user-agent": "OpenAI/Python 2.1.0"}) == 400
    wait_for_rows(gateway, sent)
    spent = izzi_json(gateway, "usage", "--key", "ci")["total"]["cost_usd"]
    (gateway.home / "config.toml").write_text(providers(mock) + keys(f"{float(spent) / 0.85:.9f}"))
    gateway.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 5
    while json.load(urllib.request.urlopen(f"{gateway.url}/health"))["config"]["reloads"] < 1:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    gateway.sent = sent
    yield gateway
    gateway.stop()


@pytest.fixture(scope="module")
def browser_context():
    """Chromium with a fresh profile."""
    profile = tempfile.mkdtemp(prefix="izzi-chromium-")
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, args=ARGS, headless=True,
                                                       viewport={"width": 1280, "height": 900})
        yield context
        context.close()


@pytest.fixture
def page(browser_context, gw):
    """A tab where every request to anything but the gateway is aborted and recorded, with the
    page's errors collected."""
    outside, errors, api = [], [], []

    def route(r):
        if r.request.url.startswith(gw.url + "/"):
            r.continue_()
        else:
            outside.append(r.request.url)
            r.abort()

    tab = browser_context.new_page()
    tab.route("**/*", route)
    tab.on("pageerror", lambda e: errors.append(str(e)))
    tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    tab.on("response", lambda r: api.append(r) if "/izzi/api/" in r.url else None)
    tab.outside, tab.errors, tab.api = outside, errors, api
    yield tab
    assert outside == [], f"the page reached beyond the gateway: {outside}"
    assert errors == [], errors
    tab.close()


def open_view(page, gw, view, query=""):
    page.goto(f"{gw.url}/#{view}{query}")
    expect(page.locator("body")).to_have_attribute("data-loaded", view)


def test_overview_shows_izzi_usage_totals_and_the_alert(page, gw):
    open_view(page, gw, "overview")
    month = izzi_json(gw, "usage", "--since", month_start())["total"]
    today = izzi_json(gw, "usage", "--since", datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"))["total"]
    assert page.get_attribute("#card-spend-month", "data-value") == month["cost_usd"]
    assert page.get_attribute("#card-spend-today", "data-value") == today["cost_usd"]
    assert page.get_attribute("#card-requests", "data-value") == str(month["requests"])
    tokens = sum(month[k] for k in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens"))
    assert page.get_attribute("#card-tokens", "data-value") == str(tokens)
    by_model = izzi_json(gw, "usage", "--by", "model", "--since", month_start())["lines"]
    table = page.locator("#by-model tbody tr")
    expect(table).to_have_count(len(by_model))
    for line in by_model:
        row = page.locator("#by-model tbody tr", has_text=line["model"])
        expect(row).to_contain_text(str(line["requests"]))
    for view_id, names in (("#by-key", ["test", "ci"]), ("#by-tool", ["claude-code", "openai-sdk"])):
        for name in names:
            expect(page.locator(f"{view_id} tbody")).to_contain_text(name)
    # The chart: one bar per model today at least, and its legend.
    assert page.locator("#chart svg rect").count() >= len(by_model)
    banner = page.locator("#alerts")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("Key `ci`")
    expect(banner).to_contain_text("past 80 %")


def test_sessions_open_their_requests(page, gw):
    open_view(page, gw, "sessions")
    rows = page.locator("#sessions tbody tr")
    expect(rows).to_have_count(2)
    page.locator("#sessions tbody tr[data-key='sess-aaaa-1111']").click()
    expect(page.locator("body")).to_have_attribute("data-loaded", "requests")
    expect(page.locator("#filters input[name=session]")).to_have_value("sess-aaaa-1111")
    expect(page.locator("#request-rows tr")).to_have_count(3)


def test_filters_narrow_the_request_log(page, gw):
    open_view(page, gw, "requests")
    expect(page.locator("#request-rows tr")).to_have_count(gw.sent)
    page.fill("#filters input[name=key]", "ci")
    page.click("#filters button[type=submit]")
    expect(page.locator("#request-rows tr")).to_have_count(3)
    for text in page.locator("#request-rows tr td:nth-child(2)").all_inner_texts():
        assert text == "ci"
    page.fill("#filters input[name=status]", "400")
    page.click("#filters button[type=submit]")
    expect(page.locator("#request-rows tr")).to_have_count(1)
    page.click("#filters button[type=reset]")
    expect(page.locator("#request-rows tr")).to_have_count(gw.sent)


def test_a_new_request_appears_in_the_live_log_without_a_reload(page, gw):
    open_view(page, gw, "requests")
    rows = page.locator("#request-rows tr")
    expect(rows).to_have_count(gw.sent)
    page.evaluate("window.notReloaded = true")
    assert send(gw, KEY, "haiku", f"{PROMPT} live", {"user-agent": CLAUDE_UA}) == 200
    gw.sent += 1
    expect(rows).to_have_count(gw.sent, timeout=10_000)
    expect(rows.first).to_contain_text("haiku")
    assert page.evaluate("window.notReloaded") is True


def test_no_prompt_text_anywhere(page, gw):
    for view in VIEWS:
        open_view(page, gw, view)
        assert "zebra-marmalade" not in page.content(), view
    for response in page.api:
        assert "zebra-marmalade" not in response.text(), response.url


def test_screenshots_of_every_view(page, gw):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        for width, height in ((1280, 900), (390, 844)):
            page.set_viewport_size({"width": width, "height": height})
            for view in VIEWS:
                open_view(page, gw, view)
                path = ARTIFACTS / f"{view}-{width}-{scheme}.png"
                page.screenshot(path=str(path), full_page=True)
                assert path.stat().st_size > 0
                # Nothing wider than the window but the tables, which scroll inside their box.
                overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
                assert overflow <= 0, f"{view} at {width} px overflows by {overflow} px"


def outside_address() -> str:
    """An address of this machine that is not loopback (no packet is sent)."""
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("192.0.2.1", 9))
        return s.getsockname()[0]


def test_from_another_address_the_page_asks_for_the_admin_key(browser_context, mock):
    admin = "izzi-admin-key-0123456789abcdef"
    gateway = Gateway(f'[server]\nhost = "0.0.0.0"\n[dashboard]\nadmin_key = "{admin}"\n' + providers(mock))
    try:
        assert send(gateway, KEY, "sonnet", "hi") == 200
        base = f"http://{outside_address()}:{gateway.url.rsplit(':', 1)[1]}"
        tab = browser_context.new_page()
        outside = []
        tab.route("**/*", lambda r: r.continue_() if r.request.url.startswith(base + "/")
                  else (outside.append(r.request.url), r.abort()))
        tab.goto(f"{base}/#overview")
        expect(tab.locator("form input[name=key]")).to_be_visible()
        tab.fill("input[name=key]", "izzi-wrong-admin-key-000000")
        tab.click("button[type=submit]")
        expect(tab.locator("p.why")).to_contain_text("not valid")
        tab.fill("input[name=key]", admin)
        tab.click("button[type=submit]")
        expect(tab.locator("body")).to_have_attribute("data-loaded", "overview")
        expect(tab.locator("#card-requests")).to_have_attribute("data-value", "1")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        tab.screenshot(path=str(ARTIFACTS / "remote-overview-1280-light.png"))
        assert outside == []
        tab.close()
    finally:
        gateway.stop()


def test_the_log_pages_back_through_older_requests(page, gw):
    for i in range(55):
        assert send(gw, KEY, "haiku", f"{PROMPT} {i}", {"user-agent": CLAUDE_UA}) == 200
    gw.sent += 55
    wait_for_rows(gw, gw.sent)
    open_view(page, gw, "requests")
    rows = page.locator("#request-rows tr")
    expect(rows).to_have_count(50)
    page.click("#more")
    expect(rows).to_have_count(min(gw.sent, 100))
    seqs = [int(s) for s in page.locator("#request-rows tr").evaluate_all("rows => rows.map(r => r.dataset.key)")]
    assert seqs == sorted(seqs, reverse=True) and len(set(seqs)) == len(seqs)
