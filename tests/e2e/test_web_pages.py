"""The /admin and /desk pages in a real browser (the system's Chromium, driven by Playwright)
against the real server: what an admin and an agent do with them, with the keyboard and a
screen reader in mind (every control named, errors announced, server text never run as HTML).

Skipped, saying why, where there is no Chromium (Debian: `apt-get install chromium`; or
point ROUTER_TEST_CHROMIUM at one): Playwright's own browser download is not used.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from router.api import agents as agents_api
from router.app import build_app
from tests.conftest import reset_database
from tests.e2e.conftest import ADMIN_TOKEN, Api, make_config
from tests.e2e.test_routing import call

playwright_api = pytest.importorskip(
    "playwright.async_api", reason="playwright is not installed: pip install -e '.[test]'")
expect = playwright_api.expect
expect.set_options(timeout=10_000)


def _chromium() -> str | None:
    explicit = os.environ.get("ROUTER_TEST_CHROMIUM")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


CHROMIUM = _chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium on this machine (Debian: apt-get install chromium, or set "
                             "ROUTER_TEST_CHROMIUM to a Chromium binary): the /admin and /desk browser tests need one")

# One queue for everyone: offers come at any hour (the default policy calls back after hours).
SIMPLE_POLICY = """# the desk tests' policy
queues:
  - {id: general, name: "General service", sla: {answer_within_s: 20, target_pct: 80}, wrapup_s: 120}
  - {id: second_line, name: "Second line", sla: {answer_within_s: 30, target_pct: 80}}
rules:
  - {id: everyone, queue: general, offer_timeout_s: 120}
"""
# Roles a person operates: each must have a name a screen reader can say.
CONTROL_ROLES = {"button", "textbox", "combobox", "checkbox", "radio", "spinbutton", "link", "listbox", "searchbox",
                 "slider", "switch", "menuitem", "tab", "option"}
PAGE_ERRORS: list[str] = []


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Any]:
    async with playwright_api.async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield chromium
        await chromium.close()


@pytest.fixture
async def server(database_url: str) -> AsyncIterator[Api]:
    """The real server (it leads, so contacts are routed), on a port of its own."""
    await reset_database(database_url)
    client = TestClient(TestServer(build_app(make_config(database_url, lead=True))))
    await client.start_server()
    yield Api(client, database_url)
    await client.close()


@pytest.fixture
async def context(browser: Any) -> AsyncIterator[Any]:
    """A fresh browser profile; a script error on any of its pages fails the test."""
    ctx = await browser.new_context(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    ctx.on("weberror", lambda e: errors.append(str(e.error)))
    ctx.set_default_timeout(10_000)
    yield ctx
    await ctx.close()
    assert not errors, f"script errors on the page: {errors}"


def base(api: Api) -> str:
    return f"http://{api.client.host}:{api.client.port}"


async def signed_in_admin(context: Any, api: Api) -> Any:
    page = await context.new_page()
    await page.goto(f"{base(api)}/admin")
    await page.get_by_label("Admin token").fill(ADMIN_TOKEN)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator("#signin-status")).to_have_text("Signed in.")
    await expect(page.locator("#policy-meta")).to_contain_text("Active: version")
    return page


async def publish(api: Api, text: str, based_on: int) -> None:
    status, body = await api.admin("PUT", "/v1/policies", data=text.encode(),
                                   headers={"Content-Type": "application/yaml", "If-Match": f'"{based_on}"'})
    assert status == 201, body


async def new_agent(api: Api, agent_id: str, **overrides: Any) -> str:
    body = {"id": agent_id, "name": agent_id.title(), "skills": {"general": 3}, "languages": ["zh", "en"],
            "channels": {"phone": 1}, **overrides}
    status, created = await api.admin("POST", "/v1/agents", json=body)
    assert status == 201, created
    status, token = await api.admin("POST", f"/v1/agents/{agent_id}/token")
    assert status == 201, token
    return str(token["token"])


async def arrive(api: Api, session: str) -> str:
    contact_id = ""
    for event in call(session, "credit_card"):
        status, body = await api.post_event("phone", event)
        assert status == 202, body
        contact_id = body["contact_id"]
    return contact_id


async def open_desk(context: Any, api: Api, token: str, agent_id: str) -> Any:
    page = await context.new_page()
    await page.goto(f"{base(api)}/desk")
    await page.get_by_label("Desk token").fill(token)
    await page.get_by_label("Desk token").press("Enter")
    await expect(page.locator("#conn")).to_have_text(f"Connected as {agent_id}.")
    return page


async def go_available(desk: Any) -> None:
    await desk.get_by_role("button", name="Go available").click()
    await expect(desk.locator("#state")).to_have_text("available")


def version_row(history: Any, version: str) -> Any:
    return history.get_by_role("row").filter(has=history.page.get_by_role("rowheader", name=version, exact=True))


async def contact_events(api: Api, contact_id: str) -> list[dict[str, Any]]:
    status, contact = await api.get(f"/v1/contacts/{contact_id}")
    assert status == 200, contact
    return list(contact["events"])


async def assert_accessible(page: Any) -> None:
    """Every control a person can reach has an accessible name (as the browser computes it for
    screen readers), every form field a label, ids are unique, and the page has its headings
    and live regions."""
    cdp = await page.context.new_cdp_session(page)
    try:
        tree = await cdp.send("Accessibility.getFullAXTree")
        unnamed = [
            f"{node['role']['value']}: {await _html_of(cdp, node.get('backendDOMNodeId'))}"
            for node in tree["nodes"]
            if not node.get("ignored") and node.get("role", {}).get("value") in CONTROL_ROLES
            and not str(node.get("name", {}).get("value", "")).strip()
        ]
    finally:
        await cdp.detach()
    assert not unnamed, f"controls without an accessible name: {unnamed}"
    problems = await page.evaluate("""() => {
        const out = [];
        for (const el of document.querySelectorAll('input:not([type=hidden]), select, textarea')) {
            if (!el.labels.length && !el.getAttribute('aria-label') && !el.getAttribute('aria-labelledby'))
                out.push(`no label: ${el.outerHTML.slice(0, 120)}`);
        }
        const ids = [...document.querySelectorAll('[id]')].map((e) => e.id);
        for (const id of new Set(ids)) if (ids.filter((x) => x === id).length > 1) out.push(`duplicate id ${id}`);
        if (document.querySelectorAll('h1').length !== 1) out.push('not exactly one h1');
        if (!document.querySelector('[role=alert]')) out.push('no role=alert region for errors');
        if (!document.querySelector('[aria-live], [role=status]')) out.push('no live region');
        if (!document.documentElement.lang) out.push('no lang on <html>');
        return out;
    }""")
    assert not problems, problems


async def _html_of(cdp: Any, backend_node_id: int | None) -> str:
    """The element's markup, to say which control it is."""
    if backend_node_id is None:
        return "(no DOM node)"
    node = await cdp.send("DOM.resolveNode", {"backendNodeId": backend_node_id})
    html = await cdp.send("Runtime.callFunctionOn", {"objectId": node["object"]["objectId"], "returnByValue": True,
                                                     "functionDeclaration": "function() { return this.outerHTML; }"})
    return str(html["result"].get("value", ""))[:160]


# --- the admin page -------------------------------------------------------------------------


async def test_a_wrong_token_is_refused_and_said_so(server: Api, context: Any) -> None:
    page = await context.new_page()
    await page.goto(f"{base(server)}/admin")
    await page.get_by_label("Admin token").fill("not-the-token")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator("#signin-status")).to_have_text("The admin token was not accepted.")
    alert = page.locator("#page-error")
    await expect(alert).to_contain_text("Error: the token is not valid")
    await expect(alert).to_contain_text("unauthorized")
    await expect(page.get_by_label("Admin token")).to_have_attribute("aria-invalid", "true")


async def test_the_admin_sees_queues_and_agents_live(server: Api, context: Any) -> None:
    page = await signed_in_admin(context, server)
    queues = page.get_by_role("table", name="Queues: waiting contacts, agents and service levels")
    general = queues.get_by_role("row", name="General service")
    await expect(general).to_contain_text("answer within 20 s for 80 %")
    await expect(general).to_contain_text("no contacts yet")
    await new_agent(server, "a-live")  # through the API: the page shows it within its 3 s refresh
    agents = page.get_by_role("table", name="Agents, their state and what they can do")
    await expect(agents.get_by_role("row", name="A-Live")).to_contain_text("offline, desk closed", timeout=8000)
    await expect(general).to_contain_text("1 offline")
    await assert_accessible(page)


async def test_the_admin_simulates_a_contact_step_by_step(server: Api, context: Any) -> None:
    page = await signed_in_admin(context, server)
    form = page.locator("#simulate-form")
    await form.get_by_label("Channel").select_option("app")
    await form.get_by_label("Intent").select_option("complaint")
    await form.get_by_label("Tags").fill("money_at_stake")
    await form.get_by_label("elderly").check()
    await form.get_by_label("Arrival time").fill("2026-11-23T10:00")
    # Business hours are the policy's: the offset is Shanghai's on that day.
    await expect(form.get_by_label("UTC offset of that time")).to_have_value("+08:00")
    await form.get_by_role("button", name="Simulate").click()
    result = page.locator("#simulate-result")
    await expect(result.get_by_role("heading", name="Step 1: the rule that decides")).to_be_visible()
    await expect(result).to_contain_text("Rule complaint")
    await expect(result).to_contain_text("Rules tried before it, and why they did not match:")
    await expect(result).to_contain_text("Complaints (complaints)")
    await expect(result.get_by_role("table", name="Timeline: priority, queue, requirements and eligible agents by "
                                                   "time waited")).to_contain_text("complaints_supervisor")
    await expect(page.locator("#simulate-status")).to_contain_text("Simulated: rule complaint")
    await assert_accessible(page)
    # The server's refusal, naming the field, on the field.
    await form.get_by_label("Language to serve in").fill("ZZ")
    await form.get_by_role("button", name="Simulate").click()
    alert = page.locator("#simulate-error")
    await expect(alert).to_contain_text("invalid_field")
    await expect(alert).to_contain_text("contact.language")
    await expect(form.get_by_label("Language to serve in")).to_have_attribute("aria-invalid", "true")
    await expect(form.get_by_label("Language to serve in")).to_be_focused()


async def test_the_simulate_form_offers_exactly_what_the_api_takes(server: Api, context: Any) -> None:
    """The form's choices are the OpenAPI document's (generated from the same schemas as the
    checks): a value added to or dropped from the API shows here as a failure."""
    _, document = await server.get("/v1/openapi.json", headers={})
    schemas = document["components"]["schemas"]
    sign = schemas["ContactSpec"]["properties"]["sign_language"]["anyOf"][0]["enum"]
    page = await context.new_page()
    await page.goto(f"{base(server)}/admin")
    offered = await page.evaluate("""() => ({
        Channel: [...document.querySelectorAll('#sim-channel option')].map((o) => o.value),
        Segment: [...document.querySelectorAll('#sim-segment option')].map((o) => o.value),
        Intent: [...document.querySelectorAll('#sim-intent option')].map((o) => o.value),
        Need: [...document.querySelectorAll('#sim-needs input')].map((o) => o.value),
        sign: [...document.querySelectorAll('#sim-sign option')].map((o) => o.value).filter(Boolean),
        agentChannels: [...document.querySelectorAll('#agent-channels input')]
            .map((o) => o.id.replace('agent-ch-', '')),
    })""")
    for name in ("Channel", "Segment", "Intent", "Need"):
        assert sorted(offered[name]) == sorted(schemas[name]["enum"]), name
    assert sorted(offered["sign"]) == sorted(sign)
    assert sorted(offered["agentChannels"]) == sorted(schemas["Channel"]["enum"])


async def test_the_admin_publishes_meets_a_conflict_and_rolls_back(server: Api, context: Any) -> None:
    page = await signed_in_admin(context, server)
    editor = page.get_by_label("Policy document")
    text = await editor.input_value()
    assert "name: bank default policy" in text  # YAML as published, comments kept
    await editor.fill(text.replace("name: bank default policy", "name: bank policy two"))
    await page.get_by_label("Comment for the audit trail").fill("a new <b>name</b>")
    await page.get_by_role("button", name="Validate").click()
    await expect(page.locator("#policy-result")).to_contain_text("Validation: no errors")
    await page.get_by_role("button", name="Publish (based on version 1)").click()
    await expect(page.locator("#policy-result")).to_contain_text("Published version 2, published by admin")
    history = page.get_by_role("table", name="Every policy version, newest first")
    await expect(version_row(history, "2")).to_contain_text("a new <b>name</b>")  # text, not HTML
    assert await history.locator("b").count() == 0

    # Another admin publishes meanwhile: this page's change, based on version 2, is refused.
    await publish(server, text.replace("name: bank default policy", "name: someone else's"), based_on=2)
    await editor.fill(text.replace("name: bank default policy", "name: bank policy four"))
    await page.get_by_role("button", name="Publish (based on version 2)").click()
    alert = page.locator("#policy-error")
    await expect(alert).to_contain_text("version_conflict")
    await expect(alert).to_contain_text("Someone else published version 3 after you loaded version 2")
    await expect(alert).to_contain_text("If-Match")
    reload = page.get_by_role("button", name="Load version 3 (replaces your edits)")
    await expect(reload).to_be_focused()
    await reload.press("Enter")
    await expect(page.locator("#policy-meta")).to_contain_text("Active: version 3")
    assert "name: someone else's" in await editor.input_value()
    status, hist = await server.get("/v1/policies/history")
    assert [v["version"] for v in hist["versions"]] == [3, 2, 1]  # nothing of the refused one stored

    # Roll back to version 1, with a confirmation and a reason; Escape cancels without a trace.
    await page.get_by_role("button", name="Refresh history").click()
    rollback_2 = history.get_by_role("button", name="Roll back to this version (2)")
    await rollback_2.click()
    dialog = page.get_by_role("dialog", name="Roll back to version 2?")
    await expect(dialog).to_be_visible()
    await page.keyboard.press("Escape")
    await expect(dialog).to_be_hidden()
    await expect(rollback_2).to_be_focused()
    await history.get_by_role("button", name="Roll back to this version (1)").click()
    dialog = page.get_by_role("dialog", name="Roll back to version 1?")
    await expect(dialog).to_contain_text("This publishes a new version 4")
    await assert_accessible(page)
    await dialog.get_by_role("button", name="Roll back to version 1").click()
    await expect(dialog.get_by_role("alert")).to_contain_text("give a reason")
    await dialog.get_by_label("Reason (kept in the audit trail)").fill("the new names confuse the desks")
    await dialog.get_by_role("button", name="Roll back to version 1").click()
    await expect(page.locator("#history-notice")).to_contain_text("Rolled back: version 4, rolled back to version 1")
    await expect(version_row(history, "4")).to_contain_text("the new names confuse the desks")
    await expect(page.locator("#policy-meta")).to_contain_text("Active: version 4")
    status, hist = await server.get("/v1/policies/history")
    newest = hist["versions"][0]
    assert (newest["version"], newest["kind"], newest["rolled_back_to"]) == (4, "rolled_back", 1)
    assert newest["comment"] == "the new names confuse the desks"


# --- an agent made on the admin page works the desk ------------------------------------------


async def test_an_agent_made_on_the_admin_page_takes_a_contact_on_the_desk(server: Api, context: Any) -> None:
    await publish(server, SIMPLE_POLICY, based_on=1)
    admin = await signed_in_admin(context, server)
    await admin.get_by_role("button", name="New agent…").click()
    form = admin.locator("#agent-form")
    await expect(form.get_by_label("Agent id", exact=True)).to_be_focused()
    await form.get_by_label("Agent id", exact=True).fill("a-web")
    await form.get_by_label("Name", exact=True).fill("<img src=x onerror=\"window.pwned=1\">Wu")
    await form.get_by_label("Skills with proficiency").fill("general 9")
    await form.get_by_label("Languages").fill("zh, en")
    await form.get_by_label("Web chat").fill("2")
    await assert_accessible(admin)
    await form.get_by_role("button", name="Create agent").click()
    alert = admin.locator("#agent-error")
    await expect(alert).to_contain_text("skills.general")  # the API's field, on the field
    await expect(form.get_by_label("Skills with proficiency")).to_have_attribute("aria-invalid", "true")
    await form.get_by_label("Skills with proficiency").fill("general 3, credit_card 4")
    await form.get_by_role("button", name="Create agent").click()
    await expect(admin.locator("#agent-notice")).to_contain_text("Agent a-web created")
    agents = admin.get_by_role("table", name="Agents, their state and what they can do")
    row = agents.get_by_role("row", name="a-web")
    await expect(row).to_contain_text('<img src=x onerror="window.pwned=1">Wu')  # shown as text
    assert await agents.locator("img").count() == 0 and await admin.evaluate("window.pwned") is None

    # Edit: only what changed is sent (the total capacity keeps following the channels).
    await row.get_by_role("button", name="Edit").click()
    await form.get_by_label("Languages").fill("zh, en, ja")
    await form.get_by_role("button", name="Save changes").click()
    await expect(admin.locator("#agent-notice")).to_contain_text("Agent a-web saved")
    _, view = await server.get("/v1/agents/a-web")
    assert view["languages"] == ["en", "ja", "zh"] and view["skills"] == {"general": 3, "credit_card": 4}
    assert view["channels"] == {"phone": 1, "webchat": 2} and view["total_capacity"] == 2

    await row.get_by_role("button", name="Issue desk token").click()
    await admin.get_by_role("dialog").get_by_role("button", name="Issue token").click()
    token_box = admin.get_by_role("region", name="Desk token for")
    await expect(token_box).to_contain_text("Shown once")
    token = await token_box.get_by_label("Desk token").input_value()
    assert len(token) > 20
    await assert_accessible(admin)

    desk = await open_desk(context, server, token, "a-web")
    await go_available(desk)
    contact_id = await arrive(server, "web-page-1")
    offer = desk.get_by_role("article").filter(has_text="Offer: phone")
    await expect(offer).to_contain_text(contact_id)
    await expect(desk.locator("#announce-offer")).to_contain_text("New offer: phone · credit card")
    accept = offer.get_by_role("button", name="Accept")
    await expect(accept).to_be_focused()  # an offer takes the keyboard to its Accept button
    await assert_accessible(desk)
    await desk.keyboard.press("Enter")
    card = desk.locator("#contacts").get_by_role("article")
    await expect(card).to_contain_text(contact_id)
    await expect(desk.locator("#announce")).to_contain_text(f"Contact {contact_id} is yours")
    await expect(desk.locator("#offers").get_by_role("article")).to_have_count(0)
    await assert_accessible(desk)
    await card.get_by_label("Disposition").fill("resolved")
    await card.get_by_role("button", name="Complete").click()
    await expect(desk.locator("#contacts").get_by_role("article")).to_have_count(0)
    await expect(desk.locator("#wrapup-info")).to_contain_text("in wrap-up until")
    await desk.get_by_role("button", name="Wrap-up done").click()
    await expect(desk.get_by_role("button", name="Wrap-up done")).to_be_disabled()
    await expect(desk.locator("#wrapup-info")).to_have_text("")
    types = [(e["type"], e["data"]) for e in await contact_events(server, contact_id)]
    assert [d["disposition"] for t, d in types if t == "ContactCompleted"] == ["resolved"]
    _, view = await server.get("/v1/agents/a-web")
    assert view["state"] == "available" and not view["in_wrapup"] and view["connected"]
    # The admin page, live, sees the agent at the desk.
    await expect(row).to_contain_text("available, desk open", timeout=8000)


async def test_the_desk_rejects_with_a_reason_transfers_with_a_note_and_shows_refusals(
        server: Api, context: Any) -> None:
    await publish(server, SIMPLE_POLICY, based_on=1)
    desk = await open_desk(context, server, await new_agent(server, "a1"), "a1")
    await go_available(desk)
    first = await arrive(server, "web-page-reject")
    offer = desk.locator("#offers").get_by_role("article")
    await expect(offer).to_contain_text(first)
    await offer.get_by_label("Reason for rejecting").fill("a <script> for the log")
    await offer.get_by_role("button", name="Reject").click()
    await expect(desk.locator("#offers").get_by_role("article")).to_have_count(0)
    await expect(desk.locator("#announce")).to_contain_text("Offer withdrawn")
    rejected = [e for e in await contact_events(server, first) if e["type"] == "OfferRejected"]
    assert rejected and rejected[0]["data"]["reason"] == "a <script> for the log"

    second = await arrive(server, "web-page-transfer")
    await expect(offer).to_contain_text(second)
    await offer.get_by_role("button", name="Accept").click()
    card = desk.locator("#contacts").get_by_role("article")
    await expect(card).to_contain_text(second)
    await card.get_by_label("Queue id").fill("no-such-queue")
    await card.get_by_role("button", name="Transfer").click()
    alert = desk.locator("#desk-error")
    await expect(alert).to_contain_text("Refused:")
    await expect(alert).to_contain_text(f"(about {second})")
    await expect(alert).to_contain_text("unknown_queue")
    await card.get_by_label("to an agent").check()
    await expect(card.get_by_label("Agent id")).to_be_visible()
    await card.get_by_label("to a queue").check()
    await card.get_by_label("Queue id").fill("second_line")
    await card.get_by_label("Note for the next agent").fill("wants a second opinion")
    await card.get_by_role("button", name="Transfer").click()
    await expect(desk.locator("#announce")).to_contain_text(f"Contact {second} ended")
    moved = [e for e in await contact_events(server, second) if e["type"] == "ContactTransferred"]
    assert len(moved) == 1 and moved[0]["data"]["to_queue"] == "second_line"
    assert moved[0]["data"]["note"] == "wants a second opinion"

    await desk.get_by_label("Reason for going away").fill("lunch")
    await desk.get_by_role("button", name="Go away").click()
    await expect(desk.locator("#state")).to_have_text("away")
    await expect(desk.locator("#announce")).to_contain_text("You are away")


async def test_the_desk_answers_pings_and_reconnects_after_a_drop(
        server: Api, context: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(agents_api, "PING_EVERY_S", 0.25)
    monkeypatch.setattr(agents_api, "PONG_TIMEOUT_S", 2.0)
    await publish(server, SIMPLE_POLICY, based_on=1)
    token = await new_agent(server, "a1")
    page = await context.new_page()
    sockets: list[Any] = []
    pongs: list[str] = []

    def opened(ws: Any) -> None:
        sockets.append(ws)
        ws.on("framesent", lambda payload: pongs.append(payload) if '"pong"' in str(payload) else None)

    page.on("websocket", opened)
    await page.goto(f"{base(server)}/desk")
    await page.get_by_label("Desk token").fill(token)
    await page.get_by_role("button", name="Open desk").click()
    await expect(page.locator("#conn")).to_have_text("Connected as a1.")
    await go_available(page)
    contact_id = await arrive(server, "web-page-drop")
    await expect(page.locator("#offers").get_by_role("article")).to_contain_text(contact_id)
    await page.wait_for_timeout(3000)  # a dozen pings: a desk that did not answer would have been closed
    assert len(sockets) == 1 and len(pongs) >= 3, (len(sockets), len(pongs))

    # The connection drops (the server end closes it): the page comes back by itself, with its offer.
    hub = server.client.server.app[agents_api.HUB]
    await hub.desks["a1"].socket.close(code=1011, message=b"dropped for the test")
    await expect(page.locator("#conn")).to_contain_text("reconnecting")
    await expect(page.locator("#conn")).to_have_text("Connected as a1.", timeout=10_000)
    assert len(sockets) == 2
    await expect(page.locator("#offers").get_by_role("article")).to_have_count(1)
    await expect(page.locator("#offers").get_by_role("article")).to_contain_text(contact_id)
    await page.locator("#offers").get_by_role("button", name="Accept").click()
    await expect(page.locator("#contacts").get_by_role("article")).to_contain_text(contact_id)

    # A new token replaces the old one: the page stops (no reconnecting with a dead token) and says so.
    status, _ = await server.admin("POST", "/v1/agents/a1/token")
    assert status == 201
    await expect(page.locator("#conn")).to_contain_text("Your desk token was replaced")
    await expect(page.get_by_label("Desk token")).to_be_visible()
    await page.wait_for_timeout(1500)
    assert len(sockets) == 2


async def test_a_wrong_desk_token_stops_the_desk_with_a_reason(server: Api, context: Any) -> None:
    page = await context.new_page()
    await page.goto(f"{base(server)}/desk")
    await page.get_by_label("Desk token").fill("not-a-desk-token")
    await page.get_by_role("button", name="Open desk").click()
    await expect(page.locator("#conn")).to_have_text(
        "The desk token was not accepted: check it, or ask your supervisor for a new one.")
    await expect(page.get_by_label("Desk token")).to_be_focused()


async def test_every_control_on_both_pages_has_an_accessible_name(server: Api, context: Any) -> None:
    """The pages as they first open, and the admin page with its forms, result and dialog open
    (the flows above check the desk with an offer and a contact)."""
    desk = await context.new_page()
    await desk.goto(f"{base(server)}/desk")
    await assert_accessible(desk)
    admin = await context.new_page()
    await admin.goto(f"{base(server)}/admin")
    await assert_accessible(admin)
    admin = await signed_in_admin(context, server)
    await admin.get_by_role("button", name="New agent…").click()
    await admin.locator("#simulate-form").get_by_role("button", name="Simulate").click()
    await expect(admin.locator("#simulate-result")).to_contain_text("Step 5: the agents")
    await new_agent(server, "a-named")
    await admin.get_by_role("button", name="Refresh now").click()
    await admin.get_by_role("button", name="Issue desk token for A-Named (a-named)").click()
    await expect(admin.get_by_role("dialog")).to_be_visible()
    await assert_accessible(admin)
    # The page's own tab order reaches every control (nothing only a mouse can use).
    await admin.get_by_role("dialog").get_by_role("button", name="Cancel").click()
    unreachable = await admin.evaluate("""() => [...document.querySelectorAll('button, input, select, textarea, a')]
        .filter((e) => e.offsetParent !== null && !e.disabled && e.tabIndex < 0)
        .map((e) => e.outerHTML.slice(0, 80))""")
    assert not unreachable, unreachable


def test_the_pages_use_no_outside_url_and_no_html_from_strings() -> None:
    """The desks may have no internet; and server text is never parsed as HTML."""
    from router.app import STATIC

    for name in ("admin.html", "desk.html", "dom.js"):
        text = (STATIC / name).read_text()
        for needle in ("http://", "https://", "//cdn", "innerHTML", "outerHTML =", "insertAdjacentHTML",
                       "document.write", "eval("):
            assert needle not in text, f"{name} contains {needle!r}"
