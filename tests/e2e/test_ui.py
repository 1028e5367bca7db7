"""The chat page (/ui/) and the routes it needs, on the real dev server with PostgreSQL.

The route tests use HTTP; the browser tests drive Debian's headless Chromium through
Playwright (`executable_path`, no browser download) and skip, saying how to install it, when
/usr/bin/chromium is missing. Set MEMORY_AGENT_UPDATE_SCREENSHOT=1 to rewrite the README's
screenshot (docs/chat-page.png).
"""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_sync_client

from benchmarks.devserver import REPO, DevServer
from memory_agent import memories, open_agent
from memory_agent.memory.conversation import ConversationFields
from tests.e2e.conftest import TOKENS, USERS, Running, bearer, dev_server

pytestmark = pytest.mark.e2e

CHROMIUM = Path(os.environ.get("MEMORY_AGENT_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOT = REPO / "docs" / "chat-page.png"
NO_CHROMIUM = (
    f"no Chromium at {CHROMIUM}: `apt-get install chromium chromium-driver` "
    "(.ci/run installs it) to run the page's browser tests"
)
needs_chromium = pytest.mark.skipif(not CHROMIUM.exists(), reason=NO_CHROMIUM)
WAIT_MS = 60_000
PAGE = 20
"""Conversations the page lists at a time (app.js)."""


# --- helpers ---------------------------------------------------------------------------------


def sdk_turn(running: Running, who: str, text: str, thread_id: str | None = None) -> str:
    """One turn through the server's API as `who`; the thread id."""
    client = get_sync_client(url=running.server.url, api_key=None, headers=bearer(who))
    try:
        if thread_id is None:
            thread_id = str(client.threads.create()["thread_id"])
        turn = {"messages": [{"role": "user", "content": text}]}
        client.runs.wait(thread_id, "supervisor", input=turn)
    finally:
        client.close()
    return thread_id


@pytest.fixture
def web(running: Running) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=running.server.url, timeout=60) as client:
        yield client


# --- the routes ------------------------------------------------------------------------------


def test_me_says_who_is_calling(web: httpx.Client) -> None:
    assert web.get("/me", headers=bearer("dave")).json() == {
        "user_id": USERS["dave"],
        "auth": True,
    }
    assert web.get("/me").status_code == 401
    assert web.get("/me", headers={"Authorization": "Bearer wrong"}).status_code == 401
    spoofed = web.get("/me", params={"user_id": USERS["erin"]}, headers=bearer("dave"))
    assert spoofed.status_code == 403


def test_a_facts_history_and_edit_are_the_callers_own(web: httpx.Client, running: Running) -> None:
    sdk_turn(running, "carol", "I live in Seoul.")
    sdk_turn(running, "carol", "I moved to Busan.")
    mine = web.get("/me/memories", headers=bearer("carol")).json()["memories"]
    (busan,) = [m for m in mine if "Busan" in m["text"]]
    key = busan["key"]

    versions = web.get(f"/me/memories/{key}/history", headers=bearer("carol")).json()["versions"]
    assert [("Seoul" in v["text"], bool(v.get("valid_to"))) for v in versions] == [
        (True, True),
        (False, False),
    ]
    edited = web.patch(
        f"/me/memories/{key}", json={"text": "The user lives in Daegu."}, headers=bearer("carol")
    )
    assert edited.status_code == 200, edited.text
    assert edited.json()["memory"]["text"] == "The user lives in Daegu."
    after = web.get(f"/me/memories/{key}/history", headers=bearer("carol")).json()["versions"]
    assert [v["text"] for v in after][-1] == "The user lives in Daegu." and len(after) == 3

    # Another user: as if it did not exist. Carol's memory is untouched.
    as_bob = bearer("bob")
    assert web.get(f"/me/memories/{key}/history", headers=as_bob).status_code == 404
    stolen = web.patch(f"/me/memories/{key}", json={"text": "Hacked."}, headers=as_bob)
    assert stolen.status_code == 404 and stolen.json()["error"] == "not_found"
    assert web.patch(f"/me/memories/{key}", json={"text": "x"}).status_code == 401
    current = web.get(f"/me/memories/{key}/history", headers=bearer("carol")).json()["versions"]
    assert current[-1]["text"] == "The user lives in Daegu."

    # Bad edits say what is wrong.
    as_carol = bearer("carol")
    old_version = after[0]["key"]
    assert web.patch(f"/me/memories/{old_version}", json={"text": "x"}, headers=as_carol).json()[
        "error"
    ] == ("superseded")
    empty = web.patch(f"/me/memories/{key}", json={"text": "  "}, headers=as_carol)
    assert empty.status_code == 422 and "text" in empty.json()["detail"]
    not_json = web.patch(f"/me/memories/{key}", content=b"text=x", headers=as_carol)
    assert not_json.status_code == 400
    nul = web.patch(f"/me/memories/{key}", json={"text": "a\x00b"}, headers=as_carol)
    assert nul.status_code == 422
    assert web.get("/me/memories/nope/history", headers=as_carol).status_code == 404


def test_conversations_page_and_one_is_deleted(web: httpx.Client, running: Running) -> None:
    threads = [
        sdk_turn(running, "dave", f"I like {fruit}.") for fruit in ("figs", "kiwis", "plums")
    ]
    as_dave = bearer("dave")

    first = web.get("/me/conversations", params={"limit": 2}, headers=as_dave).json()
    rest = web.get("/me/conversations", params={"limit": 2, "offset": 2}, headers=as_dave).json()

    listed = [c["thread_id"] for c in first["conversations"] + rest["conversations"]]
    assert listed == threads[::-1], "newest first, paged without gaps or repeats"
    bad = web.get("/me/conversations", params={"offset": "-1"}, headers=as_dave)
    assert bad.status_code == 422
    doomed = threads[0]
    assert web.delete(f"/me/conversations/{doomed}", headers=bearer("erin")).status_code == 404

    deleted = web.delete(f"/me/conversations/{doomed}", headers=as_dave)

    assert deleted.status_code == 200
    assert deleted.json() == {"deleted": doomed, "conversation": True, "episodes": 1}
    left = web.get("/me/conversations", headers=as_dave).json()["conversations"]
    assert [c["thread_id"] for c in left] == threads[:0:-1]
    assert web.get(f"/threads/{doomed}", headers=as_dave).status_code == 404
    assert web.delete(f"/me/conversations/{doomed}", headers=as_dave).status_code == 404
    # What was learnt in it stays (the memory page deletes memories).
    memories = web.get("/me/memories", headers=as_dave).json()["memories"]
    assert any("figs" in m["text"] for m in memories)


def test_the_thread_report_says_what_happened(web: httpx.Client, running: Running) -> None:
    sdk_turn(running, "erin", "My sister is called Ines.")
    thread_id = sdk_turn(running, "erin", "Hello!")
    sdk_turn(running, "erin", "What is my sister called?", thread_id)

    answer = web.get(f"/me/threads/{thread_id}/report", headers=bearer("erin"))

    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert report["owner"] == USERS["erin"] and report["turn_count"] == 2
    hello, asked = report["turns"]
    assert hello["intent"] == "greeting" and hello["memories"]["items"] == []
    assert asked["question"] == "What is my sister called?"
    assert any("Ines" in m["text"] for m in asked["memories"]["items"])
    assert [t["team"] for t in asked["teams"]] and all(t["ok"] for t in asked["teams"])
    assert asked["saved"]["conversation"] is True and asked["ms"] > 0
    for who in ("bob", "dave"):
        assert web.get(f"/me/threads/{thread_id}/report", headers=bearer(who)).status_code == 404
    assert web.get(f"/me/threads/{uuid.uuid4()}/report", headers=bearer("erin")).status_code == 404
    assert web.get("/me/threads/not-a-uuid/report", headers=bearer("erin")).status_code == 404


def test_the_page_is_served_without_a_token_and_holds_no_data(web: httpx.Client) -> None:
    assert web.get("/ui").status_code == 307
    page = web.get("/ui/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp
    assert "frame-ancestors 'none'" in csp
    assert web.get("/ui/app.js").headers["content-type"].startswith("text/javascript")
    assert web.get("/ui/app.css").status_code == 200
    for name in ("routes.py", "..%2Froutes.py", "secret"):
        assert web.get(f"/ui/{name}").status_code == 404
    # Only the static page is open: the data behind it is not.
    assert web.post("/ui/app.js").status_code in (401, 405)
    assert '<script src="app.js" defer></script>' in page.text
    assert not re.search(r"<script>|\sstyle=|\son[a-z]+=", page.text), "nothing inline (CSP)"


# --- the browser -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(NO_CHROMIUM)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page_for(browser: Any) -> Iterator[Any]:
    """A function opening a fresh browser context (its own session storage) on a page."""
    contexts: list[Any] = []
    errors: list[str] = []

    def open_page(width: int = 1100, height: int = 720) -> Any:
        context = browser.new_context(viewport={"width": width, "height": height})
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("dialog", lambda dialog: dialog.accept())  # the page's confirmations
        return page

    yield open_page
    for context in contexts:
        context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def sign_in(page: Any, url: str, token: str) -> None:
    page.goto(f"{url}/ui/")
    field = page.get_by_label("Bearer token")
    field.fill(token)
    field.press("Enter")  # the keyboard is enough


def send(page: Any, text: str) -> Any:
    """Send a message with the keyboard; the answer's element once it is complete."""
    before = page.locator(".message.ai").count()
    box = page.get_by_role("textbox", name="Message")
    box.fill(text)
    box.press("Enter")
    answer = page.locator(".message.ai").nth(before)
    answer.locator("details.used").wait_for()
    return answer


@pytest.mark.browser
@needs_chromium
def test_the_pages_rendering_helpers(page_for: Any, running: Running) -> None:
    page = page_for()
    page.goto(f"{running.server.url}/ui/")
    got = page.evaluate(
        """() => {
        const ui = window.MemoryAgentUI;
        const evil = '<img src=x onerror="window.owned=1">';
        const node = ui.el('p', {}, evil);
        document.body.append(node);
        const sse = ui.parseSSE('event: custom\\ndata: {"event":"plan_ready"}\\n\\n' +
                                'event: messages\\ndata: [{"content":"Hi"},{}]\\n\\nevent: up');
        return {
          text: node.textContent, imgs: node.querySelectorAll('img').length,
          loaded: ui.progressText({event: 'memory_loaded', counts: {fact: 2}, memory_count: 2,
                                   ms: 3.14159, skipped: null}),
          skipped: ui.progressText({event: 'memory_loaded', skipped: 'anonymous'}),
          plan: ui.progressText({event: 'plan_ready', intent: 'recall', teams: ['memory']}),
          failed: ui.progressText({event: 'team_finished', team: 'web', ok: false, ms: 5000,
                                   error: 'timed out'}),
          saved: ui.progressText({event: 'memory_saved', memories: ['k1', 'k2'], skipped: null}),
          fallback: ui.progressText({event: 'model_fallback', purpose: 'intent', fallback: 'rules',
                                     error: 'not JSON'}),
          sse: sse, parts: ui.messageText([{type: 'text', text: 'a'}, 'b']),
          e401: ui.errorText(401, {detail: 'invalid token'}),
          e503: ui.errorText(503, {error: 'database_unavailable'}),
          e422: ui.errorText(422, {error: 'invalid_input', detail: 'text is required'}),
          run: ui.runErrorText({error: 'ModelError', message: 'rate limited'}),
          refused: ui.runErrorText({error: 'InvalidInputError', message: '422: too long'}),
          turn: ui.reportTurnLines({turn: 2, started_at: null, ms: 12.4, intent: 'question',
                                    question: 'Why?', memories: {load_ms: 1, counts: {fact: 1},
                                    items: [{}]}, teams: [{team: 'memory', ok: true, ms: 3}],
                                    saved: {conversation: true, memories: [], episodes: 1,
                                            skipped: null}}),
          owned: window.owned === 1,
        };
    }"""
    )
    assert got["text"] == '<img src=x onerror="window.owned=1">' and got["imgs"] == 0
    assert not got["owned"]
    assert got["loaded"] == "memory: loaded 2 (fact 2) in 3.1 ms"
    assert got["skipped"] == "memory: skipped (anonymous)"
    assert got["plan"] == "plan: recall (teams: memory)"
    assert got["failed"] == "team web: failed in 5000.0 ms (timed out)"
    assert got["saved"] == "saved: conversation + 2 memories"
    assert got["fallback"] == "model: intent by rules (not JSON)"
    assert got["sse"] == {
        "events": [
            {"event": "custom", "data": {"event": "plan_ready"}},
            {"event": "messages", "data": [{"content": "Hi"}, {}]},
        ],
        "rest": "event: up",
    }
    assert got["parts"] == "ab"
    assert got["e401"] == "Your token was refused: sign in again."
    assert got["e503"].startswith("The database is unavailable")
    assert got["e422"] == "text is required"
    assert got["run"] == "The model failed: rate limited"
    assert got["refused"] == "The message was refused: too long"
    assert got["turn"] == [
        "Turn 2 · time unknown · 12 ms · intent question",
        "Asked: Why?",
        "Memory: loaded 1 (fact 1) in 1.0 ms",
        "Team memory: done in 3 ms",
        "Saved: conversation, 1 episode(s)",
    ]


@pytest.mark.browser
@needs_chromium
def test_a_user_chats_sees_memories_and_manages_them(
    page_for: Any, running: Running, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    url = running.server.url
    page = page_for()
    sign_in(page, url, "not-a-token")
    page.get_by_text("That token was refused.").wait_for()
    sign_in(page, url, TOKENS["alice"])
    page.get_by_text(f"Signed in as {USERS['alice']}").wait_for()
    assert TOKENS["alice"] not in page.url
    assert page.evaluate("sessionStorage.getItem('memory_agent.token')") == TOKENS["alice"]

    # The answer streams in: the page appends it chunk by chunk as the tokens arrive.
    told = send(page, "My favourite colour is teal.")
    assert int(told.get_attribute("data-chunks")) > 2, "the answer arrived token by token"
    steps = told.locator("details.steps li").all_text_contents()
    assert steps[0].startswith("memory: loaded") and steps[1].startswith("plan: ")
    assert steps[-1].startswith("saved: conversation")
    assert page.locator("#progress").text_content().startswith("saved: conversation")

    page.get_by_role("button", name="New", exact=True).click()
    asked = send(page, "What is my favourite colour?")
    used = asked.locator("details.used")
    used.locator("summary").click()
    asked.locator("details.steps summary").click()
    assert "teal" in used.locator("ul.loaded").text_content()
    assert "teal" in asked.locator(".text").text_content()
    shot = SCREENSHOT if os.environ.get("MEMORY_AGENT_UPDATE_SCREENSHOT") else tmp_path / "a.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shot))

    # An old conversation: its messages, the memories each answer used, what happened.
    items = page.locator(".conversation .open")
    expect(items).to_have_count(2)
    assert items.nth(0).locator(".title").text_content() == "What is my favourite colour?"
    items.nth(1).click()
    page.locator(".message.human").get_by_text("My favourite colour is teal.").wait_for()
    assert page.locator("#chat-title").text_content() == "My favourite colour is teal."
    page.locator(".message.ai details.used").wait_for()
    page.get_by_role("button", name="What happened").click()
    report = page.locator("#report")
    report.get_by_text("What happened: 1 turn(s)").wait_for()
    assert "Asked: My favourite colour is teal." in report.text_content()
    assert "Saved: conversation" in report.text_content()

    # The memory page: list, search, history, edit, delete.
    page.get_by_role("button", name="Memory", exact=True).click()
    row = page.locator(".memory", has_text="teal")
    row.wait_for()
    page.get_by_label("Search memories").fill("colour")
    page.get_by_label("Search memories").press("Enter")
    page.get_by_text("result(s) for “colour”").wait_for()
    assert page.locator(".memory", has_text="teal").count() >= 1
    page.get_by_role("button", name="Show all").click()
    page.locator("#memory-caption", has_text=re.compile(r"^\d+ memor")).wait_for()
    row = page.locator(".memory", has_text="teal").first
    row.get_by_role("button", name="Edit").click()
    page.get_by_label("Corrected text").fill("The user's favourite colour is green.")
    page.get_by_role("button", name="Save").click()
    green = page.locator(".memory", has_text="green")
    green.wait_for()
    green.get_by_role("button", name="History").click()
    versions = green.locator("ol.history li")
    versions.nth(1).wait_for()
    assert (
        "teal" in versions.nth(0).text_content() and "superseded" in versions.nth(0).text_content()
    )
    assert "green" in versions.nth(1).text_content() and "current" in versions.nth(1).text_content()
    green.get_by_role("button", name="Delete").click()  # the confirmation is accepted
    green.wait_for(state="detached")
    assert page.locator(".memory", has_text="green").count() == 0

    # A reload keeps the session (sessionStorage); phone width has no sideways scrolling.
    page.set_viewport_size({"width": 390, "height": 800})
    page.reload()
    page.get_by_text(f"Signed in as {USERS['alice']}").wait_for()
    page.locator(".conversation").first.wait_for()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert page.get_by_role("textbox", name="Message").is_visible()
    page.screenshot(path=str(tmp_path / "phone.png"))


@pytest.mark.browser
@needs_chromium
def test_another_user_sees_none_of_it(page_for: Any, running: Running) -> None:
    carol_thread = sdk_turn(running, "carol", "My locker code is 4242.")
    page = page_for()
    sign_in(page, running.server.url, TOKENS["bob"])
    page.get_by_text(f"Signed in as {USERS['bob']}").wait_for()
    page.get_by_text("No conversations yet.").wait_for()
    page.get_by_role("button", name="Memory", exact=True).click()
    page.get_by_text("0 memories").wait_for()
    page.get_by_label("Search memories").fill("locker code")
    page.get_by_label("Search memories").press("Enter")
    page.get_by_text("0 result(s)").wait_for()
    assert "4242" not in page.content()
    # Even asked directly, the server answers Bob nothing of Carol's.
    status = page.evaluate(
        """async (id) => (await fetch(`/threads/${id}/state`, {headers: {Authorization:
            `Bearer ${sessionStorage.getItem('memory_agent.token')}`}})).status""",
        carol_thread,
    )
    assert status == 404


@pytest.mark.browser
@needs_chromium
def test_forget_me_asks_first_and_shows_the_receipt(page_for: Any, running: Running) -> None:
    sdk_turn(running, "erin", "I work at Initech.")
    page = page_for()
    sign_in(page, running.server.url, TOKENS["erin"])
    page.locator(".conversation").first.wait_for()
    page.get_by_role("button", name="Memory", exact=True).click()
    page.get_by_role("button", name="Forget me…").click()
    go = page.get_by_role("button", name="Forget me", exact=True)
    assert go.is_disabled()
    page.get_by_label("I understand").check()
    go.click()
    receipt = page.locator("#forget-receipt")
    receipt.get_by_text(f"Receipt: deleted for {USERS['erin']}").wait_for()
    terms = receipt.locator("dt").all_text_contents()
    counts = dict(zip(terms, receipt.locator("dd").all_text_contents(), strict=True))
    assert int(counts["threads"]) >= 1 and int(counts["facts"]) >= 1
    page.get_by_role("button", name="Close").click()
    page.get_by_text("0 memories").wait_for()
    page.get_by_role("button", name="Chat").click()
    page.get_by_text("No conversations yet.").wait_for()


@pytest.mark.browser
@needs_chromium
def test_a_long_conversation_list_pages(page_for: Any, running: Running, web: httpx.Client) -> None:
    from playwright.sync_api import expect

    async def seed() -> None:  # conversation records as turns leave them, without the turns
        async with open_agent(running.database_url, setup=False) as agent:
            service = memories(agent)
            for i in range(PAGE + 1):
                record: ConversationFields = {
                    "title": f"Paged {i:02d}",
                    "summary": "",
                    "last_message": f"message {i}",
                    "message_count": 2,
                }
                await service.save_turn(USERS["erin"], f"paged-{i:02d}", record, [])

    with ThreadPoolExecutor(1) as pool:  # Playwright's sync API holds this thread's loop
        pool.submit(asyncio.run, seed()).result()
    every = web.get("/me/conversations", params={"limit": 100}, headers=bearer("erin")).json()
    titles = [c["title"] for c in every["conversations"]]
    page = page_for()
    sign_in(page, running.server.url, TOKENS["erin"])
    listed = page.locator(".conversation .title")
    expect(listed).to_have_count(PAGE)
    more = page.get_by_role("button", name="Load more")
    while more.is_visible():
        shown = listed.count()
        more.focus()
        more.press("Enter")
        expect(listed).not_to_have_count(shown)
        page.wait_for_load_state("networkidle")
    assert listed.all_text_contents() == titles, "newest first, every one once"


@pytest.fixture(scope="module")
def open_server(e2e_pg: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    with dev_server(
        e2e_pg, tmp_path_factory, "ui-open", {"MEMORY_AGENT_AUTH_TOKENS": ""}
    ) as started:
        yield started.server


@pytest.mark.browser
@needs_chromium
def test_an_open_server_asks_who_is_talking_and_says_it_is_open(
    page_for: Any, open_server: DevServer
) -> None:
    assert httpx.get(f"{open_server.url}/me").json() == {"user_id": None, "auth": False}
    page = page_for()
    page.goto(f"{open_server.url}/ui/")
    page.get_by_text("This server is open:").wait_for()
    page.get_by_label("Who is talking? (user id)").fill("zoe")
    page.get_by_role("button", name="Start").click()
    page.locator(".badge", has_text="open server").wait_for()
    # A refused turn reads as a sentence, and the page goes on working.
    box = page.get_by_role("textbox", name="Message")
    box.fill("x" * 16_001)
    box.press("Enter")
    refused = page.locator(".message.error")
    refused.wait_for()
    assert refused.text_content() == (
        "The message was refused: the message is 16001 characters long; the limit is 16000"
    )
    # Text that looks like HTML is shown as text, never run.
    evil = '<img src=x onerror="window.owned=1">I live in Quito.'
    answer = send(page, evil)
    assert answer.locator(".text").text_content()
    assert page.locator(".message.human").last.text_content() == evil
    assert page.locator("#messages img").count() == 0
    assert page.evaluate("window.owned") is None
    page.get_by_role("button", name="Memory", exact=True).click()
    page.locator(".memory", has_text="Quito").wait_for()
    listed = httpx.get(f"{open_server.url}/me/memories", params={"user_id": "zoe"}).json()
    assert any("Quito" in m["text"] for m in listed["memories"])
