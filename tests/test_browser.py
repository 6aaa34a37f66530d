"""A real browser (Debian's Chromium, driven by Playwright) against the app on localhost.

Chats, clicks the thumbs-up under the reply (Gradio's own `.like` path), and opens the dashboard
after a round; saves screenshots (to $SCREENSHOT_DIR too, when set, for the README).
"""

import os
import shutil
import time
from pathlib import Path

import pytest

from trainer.runtime import Runtime

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is not installed "
                                "(bash setup.sh --dev installs it)")


@pytest.fixture
def served(settings, tiny_base, launch):
    settings.gate.enabled = True
    settings.chat.max_new_tokens = 12
    runtime = Runtime(settings, tiny_base)
    return runtime, launch(runtime)


@pytest.fixture
def page():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--disable-quic"])
        yield browser.new_page(viewport={"width": 1280, "height": 1400})
        browser.close()


def save(page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=True)
    if os.environ.get("SCREENSHOT_DIR"):
        shutil.copy(path, Path(os.environ["SCREENSHOT_DIR"]) / name)
    return path


def test_chat_like_in_the_browser_and_dashboard(served, page, tmp_path):
    runtime, url = served
    page.goto(url)
    box = page.get_by_placeholder("Paste a title and abstract…")
    for i in range(4):
        box.fill(f"Title: Paper {i}. Abstract: We beat a 2016 baseline by 0.{i} points.")
        box.press("Enter")
        page.wait_for_function(f"document.querySelectorAll('[data-testid=\"bot\"]').length >= {i + 2}",
                               timeout=60_000)
        page.wait_for_timeout(1500)
    deadline = time.monotonic() + 60
    while runtime.server.generating and time.monotonic() < deadline:
        time.sleep(0.2)
    # Handles taken before any click: a clicked thumb changes its label, which would shift a locator.
    likes = page.get_by_label("Like", exact=True).element_handles()
    dislikes = page.get_by_label("Dislike", exact=True).element_handles()
    assert len(likes) == len(dislikes) >= 4, "every stored reply should offer thumbs"
    for i in range(4):  # the four replies (the greeting row, if it has thumbs, comes first)
        (likes if i % 2 == 0 else dislikes)[len(likes) - 4 + i].click()
        page.wait_for_timeout(300)
    deadline = time.monotonic() + 30
    while runtime.votes.total_counts() != (2, 2) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert runtime.votes.total_counts() == (2, 2), "clicks on the thumbs must reach the vote store"
    likes[len(likes) - 4].click()  # the same thumb again retracts
    deadline = time.monotonic() + 30
    while runtime.votes.total_counts() != (1, 2) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert runtime.votes.total_counts() == (1, 2), "a second click on the same thumb must retract the vote"
    likes[len(likes) - 4].click()
    while runtime.votes.total_counts() != (2, 2) and time.monotonic() < deadline:
        time.sleep(0.2)
    save(page, tmp_path, "chat.png")

    assert runtime.loop.run_round() is not None
    page.get_by_role("tab", name="Dashboard").click()
    page.wait_for_function("document.body.innerText.includes('v0001')", timeout=30_000)
    page.wait_for_timeout(2000)
    shot = save(page, tmp_path, "dashboard.png")
    text = page.inner_text("body")
    assert "Versions" in text and "held-out AUC" in text and "v0001" in text
    assert shot.stat().st_size > 30_000
