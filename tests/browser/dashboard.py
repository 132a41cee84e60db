#!/usr/bin/env python3
"""The aiscout dashboard in headless Chromium (Debian's chromium, driven by playwright).

Run by tests/tests/dashboard.rs against a live collector. Environment:
  AISCOUT_URL               the collector's API address (http://127.0.0.1:PORT)
  AISCOUT_TOKEN             a token with the read, admin and export scopes
  AISCOUT_READ_TOKEN        a token with the read scope only
  AISCOUT_HOSTILE_HOSTNAME  the hostname an agent sent: a <script> that must render as text
  AISCOUT_SCREENSHOTS       where every page's screenshot goes

Any failed check raises; the last line says "all dashboard checks passed".
"""

import json
import os
import sys
import urllib.request

from playwright.sync_api import sync_playwright

URL = os.environ["AISCOUT_URL"].rstrip("/")
TOKEN = os.environ["AISCOUT_TOKEN"]
READ_TOKEN = os.environ["AISCOUT_READ_TOKEN"]
HOSTILE = os.environ["AISCOUT_HOSTILE_HOSTNAME"]
SHOTS = os.environ["AISCOUT_SCREENSHOTS"]
CHROMIUM = os.environ.get("AISCOUT_CHROMIUM", "/usr/bin/chromium")


def api(path, token=TOKEN):
    request = urllib.request.Request(URL + path, headers={"Authorization": "Bearer " + token})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def check(condition, what):
    if not condition:
        raise AssertionError(what)
    print("ok:", what)


def shot(page, name):
    page.screenshot(path=os.path.join(SHOTS, name + ".png"), full_page=True)


def rows(page, table):
    """The rows of a table that hold data (an empty table shows one row saying it is empty)."""
    return page.locator(f"table[data-test={table}] tbody tr:not(:has(td.empty))")


def metric(page, key):
    return int(page.locator(f'[data-metric="{key}"]').inner_text())


def main():
    problems = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1400, "height": 900}, accept_downloads=True)
        page = context.new_page()
        # A script the page did not ship, or a blocked resource, shows as a console error or a dialog.
        # The refusals this test provokes on purpose (a wrong token: 401, a read token acknowledging:
        # 403) are logged by Chromium as failed loads; anything else is a problem.
        expected = ("status of 401 (Unauthorized)", "status of 403 (Forbidden)")
        page.on("console", lambda m: m.type == "error" and not m.text.endswith(expected)
                and problems.append("console: " + m.text))
        page.on("pageerror", lambda e: problems.append("page error: " + str(e)))
        page.on("dialog", lambda d: (problems.append("dialog: " + d.message), d.dismiss()))

        # Signed out, the dashboard sends the browser to sign in.
        page.goto(URL + "/ui/")
        check(page.url == URL + "/ui/login", "signed out, /ui/ leads to the sign-in page")
        shot(page, "login")
        page.fill("#token", "ais_not_a_token")
        page.click("button[type=submit]")
        said = page.inner_text("[data-test=error]")
        check("unknown, expired or revoked" in said, f"a wrong token is refused ({said!r})")

        page.fill("#token", TOKEN)
        page.click("button[type=submit]")
        check(page.url == URL + "/ui/", "signed in, the overview opens")
        cookies = context.cookies()
        session = [c for c in cookies if c["name"] == "aiscout_session"]
        check(len(session) == 1 and session[0]["httpOnly"] and session[0]["sameSite"] == "Strict",
              "the session cookie is HttpOnly and SameSite=Strict")
        check(page.evaluate("document.cookie") == "", "the page's scripts cannot read the session")
        response = page.goto(URL + "/ui/")
        csp = response.headers.get("content-security-policy", "")
        check("script-src 'self'" in csp and "unsafe-inline" not in csp, "the policy allows only the collector's own script")

        # The overview's numbers are the API's.
        o = api("/api/v1/overview")
        check(metric(page, "hosts.online") == o["hosts"]["by_status"]["online"] == api("/api/v1/hosts?status=online&limit=1")["total"],
              "online hosts match the api")
        check(metric(page, "hosts.online") == 2, "two hosts online")
        check(metric(page, "models.total") == o["models"]["total"] == api("/api/v1/assets?kind=model&limit=1")["total"],
              "models match the api")
        check(metric(page, "models.dangerous") == api("/api/v1/assets?kind=model&verdict=dangerous&limit=1")["total"] >= 1,
              "dangerous models match the api")
        check(metric(page, "servers.exposed") == api("/api/v1/assets?kind=runtime&exposure=exposed&limit=1")["total"] >= 1,
              "exposed servers match the api")
        for sev in ["critical", "high", "medium", "low", "info"]:
            listed = sum(len([f for f in api(f"/api/v1/findings?severity={sev}&state={s}&limit=1000")["items"]
                              if f["severity"] == sev]) for s in ["open", "reopened"])
            check(metric(page, f"findings.{sev}") == o["open_findings"][sev] == listed, f"open {sev} findings match the api")
        check(page.locator("svg.trend rect").count() >= 1, "the trend is drawn")
        shot(page, "overview")

        # Findings, filtered.
        page.click("nav >> text=Findings")
        page.select_option("select[name=severity]", "critical")
        page.select_option("select[name=state]", "open")
        page.click("form.filters button[type=submit]")
        check("severity=critical" in page.url, "the filter is in the address")
        total = api("/api/v1/findings?severity=critical&state=open")["total"]
        check(rows(page, "findings").count() == total >= 1, f"the filtered table lists the {total} open critical findings")
        check(all(s == "critical" for s in page.locator("table[data-test=findings] tbody .badge").all_inner_texts()),
              "every row is critical")
        page.select_option("select[name=mapping]", "LLM03:2025")
        page.click("form.filters button[type=submit]")
        mapped = api("/api/v1/findings?severity=critical&state=open&mapping=LLM03:2025")["total"]
        check("mapping=LLM03" in page.url and rows(page, "findings").count() == mapped >= 1,
              f"the OWASP LLM03 filter lists the {mapped} matching findings")
        shot(page, "findings")

        # A finding, its evidence, and its acknowledgement.
        page.locator("table[data-test=findings] tbody tr a").first.click()
        finding_id = page.url.rsplit("/", 1)[1]
        check(page.inner_text("[data-test=finding-state]") == "open", "the finding is open")
        check(len(page.inner_text("[data-test=evidence]")) > 2, "its evidence is shown")
        page.fill("textarea[name=reason]", "accepted until the model is replaced")
        page.select_option("select[name=expires_days]", "30")
        page.click("form.ack button[type=submit]")
        check(page.inner_text("[data-test=finding-state]") == "acknowledged", "acknowledged on the page")
        check(api(f"/api/v1/findings/{finding_id}")["state"] == "acknowledged", "and in the api")
        check("accepted until the model is replaced" in page.inner_text("[data-test=acknowledgement]"), "with its reason")
        shot(page, "finding")

        # Models: search, open one.
        page.click("nav >> text=Models")
        page.fill("input[name=q]", "dashboard-model")
        page.click("form.filters button[type=submit]")
        check(rows(page, "models").count() == 1, "the search finds the served pickle")
        shot(page, "models")
        page.locator("table[data-test=models] tbody tr a").first.click()
        check(page.inner_text("[data-test=verdict]") == "dangerous", "the model page says dangerous")
        check("mailcap.findmatch" in page.inner_text("table[data-test=safety]") and rows(page, "safety").count() >= 1,
              "with the calls that make it so")
        check(rows(page, "sightings").count() == 2, "seen on two hosts")
        check("0.0.0.0:" in page.inner_text("table[data-test=sightings]"), "the process serving it listens on 0.0.0.0")
        shot(page, "model")

        # Hosts: the hostile hostname is text.
        page.click("nav >> text=Hosts")
        names = page.locator("[data-test=hostname]").all_inner_texts()
        check(HOSTILE in names, "the agent's <script> hostname shows as text")
        check(page.evaluate("window.__xss") is None, "and did not run")
        check(page.evaluate("document.getElementById('aiscoutxss')") is None, "and its <i> is no element")
        shot(page, "hosts")
        page.locator("[data-test=hostname]", has_text="window.__xss").click()
        check(page.inner_text("[data-test=host-hostname]") == HOSTILE, "the host page shows it as text too")
        check(rows(page, "processes").count() >= 1 and "dashboard-model.pkl" in page.inner_text("table[data-test=processes]"),
              "the process holding the model is listed with it")
        check(page.evaluate("window.__xss") is None and page.evaluate("document.getElementById('aiscoutxss')") is None,
              "nothing of the hostname became markup on the host page")
        shot(page, "host")

        # The graph of that host.
        page.click("text=Graph of this host")
        check(page.locator("svg.graph [data-node=model]").count() >= 1, "the graph draws the model")
        check(page.locator("svg.graph [data-node=socket]").count() >= 1, "and the socket")
        shot(page, "graph")

        # Exports: a CSV download, and the CMDB report area.
        page.click("nav >> text=Exports")
        with page.expect_download() as download:
            page.click("[data-test=export-csv-assets]")
        path = download.value.path()
        with open(path, encoding="utf-8") as f:
            csv_text = f.read()
        check(csv_text.startswith("asset_id,kind,") and ".pkl" in csv_text, "the CSV export downloads")
        shot(page, "exports")

        # Sign out: the cookie is gone and pages lead to sign-in again.
        page.click("[data-test=sign-out]")
        check(page.url == URL + "/ui/login", "signed out")
        check(not [c for c in context.cookies() if c["name"] == "aiscout_session"], "the cookie is gone")
        page.goto(URL + "/ui/hosts")
        check(page.url == URL + "/ui/login", "after signing out, pages ask to sign in")

        # A read-only token views but cannot acknowledge.
        page.fill("#token", READ_TOKEN)
        page.click("button[type=submit]")
        others = api("/api/v1/findings?state=open")["items"]
        check(len(others) >= 1, "an open finding is left for the read token to try")
        page.goto(URL + "/ui/findings/" + others[0]["id"])
        page.fill("textarea[name=reason]", "should be refused")
        page.click("form.ack button[type=submit]")
        check("admin scope" in page.inner_text("[data-test=error]"), "a read token cannot acknowledge")
        check(api("/api/v1/findings/" + others[0]["id"])["state"] == "open", "the finding stays open")
        browser.close()
    check(not problems, "no console error, page error or dialog: " + "; ".join(problems))
    print("all dashboard checks passed")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print("FAILED:", e, file=sys.stderr)
        sys.exit(1)
