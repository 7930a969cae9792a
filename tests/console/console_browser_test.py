#!/usr/bin/env python3
"""The operators' console in a real browser (issue 14).

usage: console_browser_test.py TACTD_BINARY SOURCE_DIR ARTIFACT_DIR

Starts the real `tactd run` with fixture data (messages delivered, dead and
pending, a customer with a timeline, a reload with a problem), a loopback
SMS provider (tests/support/recording_server.py) and Debian's headless
chromium, and drives chromium over the DevTools Protocol (a websocket:
python3-websocket). It logs in through the form, loads each page and checks
its DOM, clicks a Retry and a Drop button and checks with `tactd outbox show`
that they were done, checks that a POST without the CSRF token is refused and
that a page without a session redirects to the login form, and saves
screenshots to ARTIFACT_DIR. Chromium, the daemon and the provider are
stopped by their PIDs, always.
"""
import base64
import datetime
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

import websocket  # python3-websocket

TACTD, SOURCE, ARTIFACTS = (os.path.abspath(a) for a in sys.argv[1:4])
TOKEN = "console-token-for-tests-0123456789"
PATIENCE = 30  # seconds, the bound on every wait


def eventually(done, what):
    deadline = time.time() + PATIENCE
    while time.time() < deadline:
        value = done()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


def check(condition, what):
    if not condition:
        raise AssertionError(what)
    print("ok:", what, flush=True)


class Browser:
    """One page of a headless chromium, driven over the DevTools Protocol."""

    def __init__(self, workdir):
        binary = shutil.which("chromium")
        if not binary:
            raise AssertionError("chromium is not installed (.ci/deps installs Debian's chromium)")
        self.log = open(os.path.join(workdir, "chromium.log"), "w+", encoding="utf-8")
        args = [binary, "--headless=new", "--remote-debugging-port=0",
                "--user-data-dir=" + os.path.join(workdir, "chromium-profile"),
                "--disable-gpu", "--no-first-run", "--no-default-browser-check",
                "--disable-extensions", "--disable-background-networking", "--window-size=1280,900"]
        if os.geteuid() == 0:
            args.append("--no-sandbox")  # chromium refuses to run as root with its sandbox
        args.append("about:blank")
        # A session of its own: its helper processes go with it (stop()).
        self.process = subprocess.Popen(args, stdout=self.log, stderr=self.log, start_new_session=True)
        url = eventually(self._devtools_url, "chromium's DevTools URL")
        port = re.match(r"ws://[^:]+:(\d+)/", url).group(1)
        targets = json.load(urllib.request.urlopen("http://127.0.0.1:%s/json/list" % port, timeout=10))
        page = next(t for t in targets if t["type"] == "page")
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=PATIENCE,
                                              suppress_origin=True)
        self.next_id = 0
        self.events = []
        self.send("Page.enable")
        self.send("Runtime.enable")

    def _devtools_url(self):
        self.log.flush()
        with open(self.log.name, encoding="utf-8", errors="replace") as f:
            found = re.search(r"DevTools listening on (ws://\S+)", f.read())
        return found.group(1) if found else None

    def send(self, method, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise AssertionError("%s failed: %s" % (method, message["error"]))
                return message.get("result", {})
            if "method" in message:
                self.events.append(message)

    def wait_event(self, method):
        deadline = time.time() + PATIENCE
        while time.time() < deadline:
            for i, event in enumerate(self.events):
                if event["method"] == method:
                    del self.events[: i + 1]
                    return event
            self.events.append(json.loads(self.ws.recv()))
        raise AssertionError("timed out waiting for " + method)

    def js(self, expression):
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise AssertionError("script failed: %s: %s" % (expression, result["exceptionDetails"]))
        return result["result"].get("value")

    def go(self, url):
        self.events.clear()
        self.send("Page.navigate", url=url)
        self.wait_event("Page.loadEventFired")

    def click(self, selector):
        """A real mouse click in the middle of the element; waits for the page it loads."""
        box = self.js("(() => { const e = document.querySelector(%s); e.scrollIntoView({block: 'center'});"
                      " const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()"
                      % json.dumps(selector))
        self.events.clear()
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left", clickCount=1)
        self.wait_event("Page.loadEventFired")

    def press(self, key, wait_for_load=False):
        """A key pressed and released on the keyboard: "Tab" or "Enter"."""
        codes = {"Tab": (9, ""), "Enter": (13, "\r")}
        code, text = codes[key]
        if wait_for_load:
            self.events.clear()
        self.send("Input.dispatchKeyEvent", type="keyDown", key=key, code=key, windowsVirtualKeyCode=code,
                  text=text)
        self.send("Input.dispatchKeyEvent", type="keyUp", key=key, code=key, windowsVirtualKeyCode=code)
        if wait_for_load:
            self.wait_event("Page.loadEventFired")

    def type_into(self, selector, text):
        self.js("document.querySelector(%s).focus()" % json.dumps(selector))
        self.send("Input.insertText", text=text)

    def screenshot(self, path):
        data = self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))
        print("screenshot:", path, flush=True)

    def stop(self):
        try:
            self.ws.close()
        except Exception:  # the browser may be gone already
            pass
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.log.close()


# Accessibility basics every console page keeps.
A11Y = r"""(() => {
  const problems = [];
  if (document.querySelectorAll('h1').length !== 1) problems.push('not exactly one h1');
  let level = 0;
  for (const h of document.querySelectorAll('h1, h2, h3, h4, h5, h6')) {
    const l = Number(h.tagName[1]);
    if (l > level + 1) problems.push('heading ' + h.tagName + ' after h' + level + ': ' + h.textContent);
    level = l;
  }
  if (!document.documentElement.lang) problems.push('no lang on html');
  for (const i of document.querySelectorAll('input:not([type=hidden]), select, textarea'))
    if (!i.id || !document.querySelector('label[for="' + i.id + '"]')) problems.push('input without label: ' + i.name);
  for (const th of document.querySelectorAll('th')) if (!th.getAttribute('scope')) problems.push('th without scope');
  if (!document.querySelector('a.skip[href="#main"]') || !document.getElementById('main')) problems.push('no skip link');
  if (document.querySelector('[onclick], input[type=submit], input[type=button]')) problems.push('a button that is not a button');
  return problems;
})()"""


def now_rfc3339(offset_seconds=0):
    t = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=offset_seconds)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def customer_and_order(n, phone, email, status="cancelled"):
    customer = {"name": "Sanne %s" % n, "locale": "en"}
    if phone:
        customer["phone"] = phone
    if email:
        customer["email"] = email
    return "\n".join(json.dumps(o) for o in [
        {"type": "customer", "id": "c-%s" % n, "observed_at": now_rfc3339(-60), "fields": customer},
        {"type": "order", "id": "B-%s" % n, "observed_at": now_rfc3339(-30),
         "fields": {"customer": "c-%s" % n, "status": "placed", "total": 18.5, "currency": "EUR"}},
        {"type": "order", "id": "B-%s" % n, "observed_at": now_rfc3339(),
         "fields": {"customer": "c-%s" % n, "status": status, "total": 18.5, "currency": "EUR",
                    "cancel_reason": "the oven broke"}}]) + "\n"


def main():
    os.makedirs(ARTIFACTS, exist_ok=True)
    work = tempfile.mkdtemp(prefix="tactd-console-")
    children = []
    browser = None
    try:
        # The SMS provider: the first message is delivered, the second refused for good.
        provider_dir = os.path.join(work, "provider")
        os.makedirs(provider_dir)
        with open(os.path.join(provider_dir, "answers.json"), "w") as f:
            json.dump([{"status": 202}, {"status": 400, "body": {"message": "The 'To' number is not valid"}}], f)
        provider = subprocess.Popen([sys.executable, os.path.join(SOURCE, "tests/support/recording_server.py"),
                                     provider_dir])
        children.append(provider)
        port_file = os.path.join(provider_dir, "port")
        provider_port = eventually(lambda: os.path.exists(port_file) and open(port_file).read(), "the provider")

        rules = os.path.join(work, "rules")
        shutil.copytree(os.path.join(SOURCE, "config/rules"), rules)
        os.makedirs(os.path.join(work, "spool"))
        with open(os.path.join(work, "admin-token"), "w") as f:
            f.write(TOKEN + "\n")
        config = os.path.join(work, "tactd.toml")
        with open(config, "w") as f:
            f.write('[tactd]\nrules = "%s"\ntemplates = "%s"\nstate = "state.db"\nmerchant = "Bakkerij Bol"\n'
                    '[locale]\ntime_zone = "Europe/Amsterdam"\n'
                    '[admin]\nlisten = "127.0.0.1:0"\ntoken_file = "admin-token"\n'
                    '[[source]]\nname = "drops"\ntype = "spool"\npath = "spool"\ninterval = "1s"\n'
                    '[[channel]]\nchannel = "sms"\nprovider = "twilio"\n'
                    'url = "http://127.0.0.1:%s/2010-04-01/Accounts/AC0001/Messages.json"\naccount = "AC0001"\n'
                    'from = "+3197010000001"\nsecret_env = "SMS_TOKEN"\nbackoff = "1s"\ntimeout = "2s"\n'
                    % (rules, os.path.join(SOURCE, "templates"), provider_port))
        log_path = os.path.join(work, "tactd.log")
        log = open(log_path, "w")
        daemon = subprocess.Popen([TACTD, "run", "--config", config], stdout=log, stderr=log, cwd=work,
                                  env=dict(os.environ, SMS_TOKEN="fixture-sms-token"))
        children.append(daemon)

        def logged(pattern):
            with open(log_path, encoding="utf-8", errors="replace") as f:
                found = re.search(pattern, f.read())
            return found and found.group(1)

        admin_port = eventually(lambda: logged(r"/metrics on 127\.0\.0\.1:(\d+)"), "the admin endpoint")
        base = "http://127.0.0.1:%s" % admin_port

        def outbox(*args):
            done = subprocess.run([TACTD, "outbox", *args, "--config", config], cwd=work,
                                  capture_output=True, text=True, timeout=PATIENCE)
            return done.stdout + done.stderr

        def spool(name, lines):
            with open(os.path.join(work, "spool", name + ".tmp"), "w") as f:
                f.write(lines)
            os.rename(os.path.join(work, "spool", name + ".tmp"), os.path.join(work, "spool", name))
            eventually(lambda: os.path.exists(os.path.join(work, "spool/done", name)), "spool file " + name)

        # 1 delivered (c-1, who also has an email address), 2 dead (c-2),
        # 3 and 4 pending (email only: no email channel is configured).
        spool("a.jsonl", customer_and_order(1, "+31612345671", "mia@example.com"))
        eventually(lambda: "1  delivered" in outbox("list"), "a delivered message")
        spool("b.jsonl", customer_and_order(2, "+31612345672", None))
        eventually(lambda: "2  dead" in outbox("list"), "a dead message")
        spool("c.jsonl", customer_and_order(3, None, "noah@example.com") +
              customer_and_order(4, None, "ivy@example.com"))
        eventually(lambda: outbox("list", "--status", "pending").count("pending") == 2, "two pending messages")
        # A reload with a problem: the running configuration stays.
        with open(os.path.join(rules, "broken.toml"), "w") as f:
            f.write('[[rule]]\nid = "half"\nkind = "apology"\n')
        daemon.send_signal(signal.SIGHUP)
        eventually(lambda: logged(r"(reload: refused)"), "the refused reload")

        browser = Browser(work)

        # No session: every page answers with the login form.
        browser.go(base + "/console/outbox")
        check(browser.js("location.pathname") == "/console/login", "a page without a session redirects to login")
        check(browser.js(A11Y) == [], "the login page keeps the accessibility basics")
        check(browser.js("document.activeElement.id") == "token", "the login form's token field has the focus")
        browser.type_into("#token", "not-the-token")
        browser.click("form.login button")
        check("not the admin token" in browser.js("document.querySelector('.problem').textContent"),
              "a wrong token is refused")
        browser.type_into("#token", TOKEN)
        browser.click("form.login button")
        check(browser.js("location.pathname") == "/console/outbox", "logging in leads to the outbox")
        check(browser.js("document.cookie") == "", "the session cookie is HttpOnly (scripts cannot read it)")

        # The outbox by status.
        counts = browser.js("Object.fromEntries([...document.querySelectorAll('table.counts tbody tr')]"
                            ".map(r => [r.querySelector('th').textContent, Number(r.querySelector('td').textContent)]))")
        check(counts == {"pending": 2, "unknown": 0, "dead": 1, "dropped": 0, "overtaken": 0, "delivered": 1},
              "the outbox counts by status: %s" % counts)
        check(browser.js(A11Y) == [], "the outbox page keeps the accessibility basics")
        check(browser.js("document.querySelectorAll('#entries tbody tr').length") == 2, "two pending rows")
        check(browser.js("document.querySelector('h1').textContent") == "Outbox", "the outbox heading")
        # The keyboard: the first Tab reaches the skip link, visibly; Enter on it moves to the content.
        browser.go(base + "/console/outbox")
        browser.press("Tab")
        check(browser.js("document.activeElement.matches('a.skip[href=\"#main\"]')"), "the first Tab focuses the skip link")
        check(browser.js("getComputedStyle(document.activeElement).outlineStyle") != "none",
              "the focused skip link has a visible outline")
        check(browser.js("document.activeElement.getBoundingClientRect().left >= 0"), "the focused skip link is on screen")
        browser.press("Enter")
        eventually(lambda: browser.js("location.hash") == "#main", "Enter on the skip link goes to the content")
        browser.press("Tab")
        check(browser.js("document.getElementById('main').contains(document.activeElement)"),
              "the next Tab after the skip link is in the content: %s" % browser.js("document.activeElement.outerHTML"))
        browser.screenshot(os.path.join(ARTIFACTS, "console-outbox.png"))

        # A POST without the CSRF token, from the page itself, is refused.
        refused = browser.js("fetch('/console/outbox/drop', {method: 'POST', body: new URLSearchParams({id: '3'})})"
                             ".then(async r => [r.status, await r.text()])")
        check(refused[0] == 403 and "no CSRF token" in refused[1], "a POST without the CSRF token is 403")
        check("3  pending" in outbox("list"), "the refused POST changed nothing")

        # Drop entry 3 by its button.
        browser.click("#entry-3 button.drop")
        check("Outbox entry 3 was dropped" in browser.js("document.querySelector('.notice').textContent"),
              "the page says the entry was dropped")
        check(re.search(r"status:\s+dropped", outbox("show", "3")), "tactd outbox show 3: dropped")
        check("dropped  an operator, by the console" in outbox("show", "3"), "the drop is recorded as a decision")

        # Retry the dead entry 2: the provider now delivers it.
        browser.go(base + "/console/outbox?status=dead")
        check(browser.js("document.querySelector('#entry-2 .error').textContent").find("not valid") >= 0,
              "the dead entry shows its last error")
        browser.click("#entry-2 button.retry")
        check("Outbox entry 2 will be sent again now" in browser.js("document.querySelector('.notice').textContent"),
              "the page says the entry will be sent again")
        eventually(lambda: re.search(r"status:\s+delivered", outbox("show", "2")), "the retried entry delivered")
        check("retried  an operator, by the console" in outbox("show", "2"), "the retry is recorded as a decision")

        # A customer's timeline, found by email address through the search form.
        browser.go(base + "/console/customer")
        browser.type_into("#q", "mia@example.com")
        browser.click("form.search button")
        check(browser.js("document.querySelector('#customer').textContent") == "c-1 (Sanne 1)",
              "the customer found by email address")
        types = browser.js("[...document.querySelectorAll('#events tbody tr td:nth-child(2)')].map(t => t.textContent)")
        check("decided" in types and "change" in types and "attempt" in types, "the timeline's events: %s" % types)
        check("the oven broke" in browser.js("document.querySelector('#events pre').textContent"),
              "the message as the customer got it")
        check(browser.js(A11Y) == [], "the customer page keeps the accessibility basics")
        browser.go(base + "/console/customer?q=%2B31612345672")
        check(browser.js("document.querySelector('#customer').textContent") == "c-2 (Sanne 2)",
              "the customer found by phone number")
        browser.go(base + "/console/customer")
        browser.type_into("#q", "+31 6 1234 5672")
        browser.press("Enter", wait_for_load=True)  # the search form, by the keyboard
        check(browser.js("document.querySelector('#customer').textContent") == "c-2 (Sanne 2)",
              "the customer found by phone number as an operator types it, with spaces")

        # Each rule's last 24 hours and the chart.
        browser.go(base + "/console/rules")
        row = browser.js("[...document.querySelectorAll('#rule-order-cancelled td')].map(t => t.textContent)")
        check(row[:3] == ["apology", "4", "2"], "order-cancelled: fired 4, sent 2: %s" % row)
        check(browser.js("document.querySelectorAll('#chart rect.bar').length") >= 1, "the chart has bars")
        check(browser.js("document.querySelector('#chart').getAttribute('aria-labelledby')") == "chart-title chart-desc",
              "the chart is labelled")
        check(browser.js("document.querySelectorAll('#chart-table tbody tr').length") == 24,
              "the chart's table has 24 hours")
        check(browser.js(A11Y) == [], "the rules page keeps the accessibility basics")
        browser.screenshot(os.path.join(ARTIFACTS, "console-rules.png"))

        # The reloads and their problems.
        browser.go(base + "/console/reloads")
        problems = browser.js("document.querySelector('#reloads tbody tr.refused').textContent")
        check("broken.toml" in problems, "the refused reload names its problem")
        check(browser.js(A11Y) == [], "the reloads page keeps the accessibility basics")

        # Every template with example data.
        browser.go(base + "/console/templates")
        rules_shown = browser.js("document.querySelectorAll('section.rule').length")
        check(rules_shown >= 9, "every rule's templates are shown (%s)" % rules_shown)
        check(browser.js("document.querySelectorAll('article.example pre').length") >= rules_shown * 4,
              "each in every locale and channel")
        check(browser.js(A11Y) == [], "the templates page keeps the accessibility basics")

        # Security headers, and a POST from elsewhere.
        with urllib.request.urlopen(base + "/console/login") as answer:
            headers = answer.headers
        check("default-src 'self'" in headers["Content-Security-Policy"] and headers["X-Frame-Options"] == "DENY"
              and headers["X-Content-Type-Options"] == "nosniff" and headers["Referrer-Policy"] == "same-origin",
              "the security headers")

        # Logging out ends the session.
        browser.go(base + "/console/outbox")
        browser.js("document.querySelector('form.logout button').focus()")  # by the keyboard this time
        browser.press("Enter", wait_for_load=True)
        check(browser.js("location.pathname") == "/console/login", "logging out leads to the login form")
        browser.go(base + "/console/rules")
        check(browser.js("location.pathname") == "/console/login", "after logging out, pages need a login again")

        log.flush()
        with open(log_path, encoding="utf-8", errors="replace") as f:
            check(TOKEN not in f.read(), "the token is never logged")
        print("all console checks passed", flush=True)
        return 0
    finally:
        if browser:
            browser.stop()
        for child in reversed(children):
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
                try:
                    child.wait(20)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()
        if os.environ.get("TACTD_KEEP_TEST_DIR"):
            print("kept", work)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
