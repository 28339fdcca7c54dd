#!/usr/bin/env python3
"""The docs page in a real browser: headless Chromium (Debian's package) driven over the DevTools
protocol, against a running server.

    docs_browser.py BASE_URL TOKEN SCREENSHOT_DIR

Loads BASE_URL/docs, and checks that
  - every operation of BASE_URL/v1/openapi.json is listed on the page (method and path), and
    Swagger UI reports no error or warning about the document;
  - the page runs under its Content-Security-Policy without a single violation (the assets come
    from the server itself, no inline script);
  - "Authorize" takes the bearer token, and "Try it out" -> "Execute" on GET /v1/plan shows 200
    (the request really went out with the token: the page's curl line carries it).
Saves api-docs.png (the page) and api-docs-try-it-out.png (the executed call) in SCREENSHOT_DIR.
Needs the `websockets` package (pinned in scripts/test's API tools virtualenv) and `chromium`.
"""

import asyncio
import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

import websockets

TIMEOUT = 30.0  # seconds for each thing the page must show


class Page:
    def __init__(self, ws):
        self.ws = ws
        self.next_id = 0
        self.pending = {}
        self.events = []
        self.reader = asyncio.create_task(self._read())

    async def _read(self):
        try:
            async for raw in self.ws:
                message = json.loads(raw)
                if "id" in message and message["id"] in self.pending:
                    self.pending.pop(message["id"]).set_result(message)
                elif "method" in message:
                    self.events.append(message)
        except websockets.ConnectionClosed:
            pass

    async def send(self, method, **params):
        self.next_id += 1
        future = asyncio.get_running_loop().create_future()
        self.pending[self.next_id] = future
        await self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        message = await asyncio.wait_for(future, TIMEOUT)
        if "error" in message:
            raise RuntimeError(f"{method}: {message['error']}")
        return message.get("result", {})

    async def js(self, expression):
        result = await self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression, what):
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            value = await self.js(expression)
            if value:
                return value
            await asyncio.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}")

    async def click(self, selector, what):
        await self.wait_for(f"!!document.querySelector({json.dumps(selector)})", what)
        await self.js(f"document.querySelector({json.dumps(selector)}).click()")

    async def screenshot(self, path):
        shot = await self.send("Page.captureScreenshot", format="png")
        with open(path, "wb") as file:
            file.write(base64.b64decode(shot["data"]))
        print(f"    screenshot: {path}")


def operations(base):
    with urllib.request.urlopen(f"{base}/v1/openapi.json") as response:
        document = json.load(response)
    return sorted((method.upper(), path) for path, item in document["paths"].items() for method in item)


def start_chromium(profile):
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if not binary:
        sys.exit("chromium not found (apt-get install chromium)")
    process = subprocess.Popen(
        [binary, "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run", "--no-default-browser-check",
         "--disable-extensions", "--disable-background-networking", "--hide-scrollbars", "--window-size=1280,1400",
         f"--user-data-dir={profile}", "--remote-debugging-port=0", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + TIMEOUT
    for line in process.stderr:
        match = re.search(r"DevTools listening on (ws://\S+)", line)
        if match:
            return process, match.group(1)
        if time.monotonic() > deadline:
            break
    process.kill()
    sys.exit("chromium did not start its DevTools endpoint")


async def check(base, token, out_dir):
    expected = operations(base)
    profile = tempfile.mkdtemp(prefix="docs-browser-")
    process, browser_ws = start_chromium(profile)
    try:
        port = re.search(r"ws://[^:/]+:(\d+)/", browser_ws).group(1)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list") as response:
            target = next(t for t in json.load(response) if t["type"] == "page")
        async with websockets.connect(target["webSocketDebuggerUrl"], max_size=None) as ws:
            page = Page(ws)
            await page.send("Page.enable")
            await page.send("Runtime.enable")
            # Runs before the page's own scripts; DevTools scripts are exempt from the page's CSP.
            await page.send("Page.addScriptToEvaluateOnNewDocument", source=(
                "window.__csp = []; document.addEventListener('securitypolicyviolation',"
                " e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));"))
            await page.send("Page.navigate", url=f"{base}/docs")

            count = len(expected)
            await page.wait_for(f"document.querySelectorAll('.opblock').length >= {count}", f"{count} operations")
            listed = await page.js(
                "Array.from(document.querySelectorAll('.opblock')).map(b => ["
                "b.querySelector('.opblock-summary-method').textContent.trim().toUpperCase(),"
                "b.querySelector('.opblock-summary-path').getAttribute('data-path')])")
            listed = sorted(tuple(op) for op in listed)
            missing = sorted(set(expected) - set(listed))
            assert not missing, f"operations not on the page: {missing}"
            print(f"    all {count} operations of /v1/openapi.json are listed")
            errors = await page.js("Array.from(document.querySelectorAll('.errors-wrapper')).map(e => e.textContent)")
            assert not errors, f"Swagger UI reports problems with the document: {errors}"
            title = await page.js("document.querySelector('.info .title') && document.querySelector('.info .title').textContent")
            assert title and "Healthcare plan API" in title, f"title: {title!r}"
            await page.screenshot(os.path.join(out_dir, "api-docs.png"))

            # Authorize: the dialog's bearer input, as a user pastes the token.
            await page.click(".btn.authorize", "the Authorize button")
            await page.wait_for("!!document.querySelector('.auth-container input')", "the token input")
            await page.js("document.querySelector('.auth-container input').focus()")
            await page.send("Input.insertText", text=token)
            await page.click(".auth-container .btn.modal-btn.auth.authorize", "the dialog's Authorize")
            await page.wait_for("!!document.querySelector('.auth-container .btn-done, .auth-container .btn.modal-btn.auth:not(.authorize)')", "authorized")
            await page.js("(document.querySelector('.btn-done') || document.querySelector('.close-modal')).click()")

            # Try it out: GET /v1/plan (listPlans).
            block = "#operations-plans-listPlans"
            await page.click(f"{block} button.opblock-summary-control", "GET /v1/plan")
            await page.click(f"{block} .try-out__btn", "Try it out")
            await page.click(f"{block} .btn.execute", "Execute")
            status = await page.wait_for(
                f"(e => e && e.textContent.trim())(document.querySelector('{block} .live-responses-table tr.response .response-col_status'))",
                "the live response")
            curl = await page.js(f"(e => e && e.textContent)(document.querySelector('{block} .curl-command'))") or ""
            await page.js(f"document.querySelector('{block}').scrollIntoView()")
            await asyncio.sleep(0.3)
            await page.screenshot(os.path.join(out_dir, "api-docs-try-it-out.png"))
            assert status.startswith("200"), f"Try it out on GET /v1/plan showed {status!r}"
            assert "Authorization: Bearer" in curl, f"the request did not carry the token: {curl!r}"
            print("    Authorize + Try it out on GET /v1/plan: 200 in the page")

            violations = await page.js("window.__csp")
            assert violations == [], f"Content-Security-Policy violations: {violations}"
            print("    no Content-Security-Policy violation")
            page.reader.cancel()
            await ws.close()
    finally:
        process.kill()
        process.wait()
        shutil.rmtree(profile, ignore_errors=True)


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    base, token, out_dir = sys.argv[1].rstrip("/"), sys.argv[2], sys.argv[3]
    os.makedirs(out_dir, exist_ok=True)
    try:
        asyncio.run(check(base, token, out_dir))
    except AssertionError as error:
        sys.exit(f"docs page check failed: {error}")


if __name__ == "__main__":
    main()
