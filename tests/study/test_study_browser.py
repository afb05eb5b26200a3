"""End to end in real headless Chromium (Debian's chromium + chromedriver, via Selenium).

A participant arriving from Prolific gives consent, clicks through instructions (which say
where the references are), fails and then passes the practice, answers every trial with a
planned button while a progress bar advances and nothing needs scrolling at 1280×800 or
800×600, and is redirected to the completion URL — and the database holds exactly those
answers under their trial ids, scored right. Another browser presenting the same Prolific id
gets no token. A failed practice ends politely on the operator's page; declining consent
stores nothing; a too-small window is asked to grow. The plugin's simulate() is exercised too
(jsPsych.simulate in "visual" and "data-only" mode), ending on the default page with a
completion code.
"""

from __future__ import annotations

import sqlite3
import time

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from fvlab.study.trials import encode_response

WAIT_S = 20


def _click(driver, css: str) -> None:
    WebDriverWait(driver, WAIT_S).until(ec.element_to_be_clickable((By.CSS_SELECTOR, css))).click()


def _answer_trial(driver, trial: dict, button: int) -> None:
    """Wait until ``trial`` is on screen (by its left image), click ``button``, wait it leaves."""
    left = f'img.fvlab-option[src$="{trial["left"]}"]'
    WebDriverWait(driver, WAIT_S).until(ec.presence_of_element_located((By.CSS_SELECTOR, left)))
    query = driver.find_element(By.CSS_SELECTOR, "img.fvlab-query").get_attribute("src")
    assert query.endswith(trial["query"])
    target = driver.find_element(By.CSS_SELECTOR, f'button.fvlab-choice[data-choice="{button}"]')
    target.click()
    WebDriverWait(driver, WAIT_S).until(ec.staleness_of(target))


def _trial_by_screen(driver, key: dict) -> tuple[str, dict]:
    """(trial id, its key entry) of the trial on screen, found by its left image."""
    left = WebDriverWait(driver, WAIT_S).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, "img.fvlab-option"))
    )
    src = left.get_attribute("src")
    [(trial_id, entry)] = [(t, k) for t, k in key.items() if src.endswith(k["left"])]
    return trial_id, entry


def _fits(driver) -> dict:
    """Whether the page needs scrolling at the current window size."""
    return driver.execute_script(
        "const d = document.documentElement,"
        " e = document.querySelector('.jspsych-display-element');"
        "return {width: innerWidth, height: innerHeight,"
        " fits: d.scrollHeight <= innerHeight && d.scrollWidth <= innerWidth"
        "  && e.scrollHeight <= e.clientHeight + 1 && e.scrollWidth <= e.clientWidth + 1};"
    )


def _rows(db, sql: str, *args):
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute(sql, args)]


def test_participant_completes_study_by_clicking(
    browser, tiny_study, tmp_path, server_factory, free_port
):
    port = free_port
    done_url = f"http://127.0.0.1:{port}/complete?cc=E2E-CODE"
    db = tmp_path / "e2e.sqlite"
    server = server_factory(
        tiny_study,
        db,
        "--main",
        "5",
        "--catch",
        "2",
        "--practice",
        "2",
        "--feedback-ms",
        "300",
        "--redirect-delay-ms",
        "300",
        "--completion-url",
        done_url,
        port=port,
    )
    browser.get(f"{server.url}/?PROLIFIC_PID=e2e-pid&STUDY_ID=study-1&SESSION_ID=sess-9")
    assert browser.find_element(By.CSS_SELECTOR, "link[rel=icon]").get_attribute("href")
    _click(browser, "#fvlab-agree")
    pages = []
    for _ in range(4):
        pages.append(
            WebDriverWait(browser, WAIT_S)
            .until(ec.presence_of_element_located((By.ID, "jspsych-instructions-next")))
            .find_element(By.XPATH, "//*[@id='jspsych-content']")
            .text
        )
        _click(browser, "#jspsych-instructions-next")
    assert any("On the left of each screen" in page for page in pages)
    assert not any("top of each screen" in page for page in pages)
    # Another browser with the same Prolific id gets neither the enrolment nor the token.
    stolen = httpx.post(
        f"{server.url}/api/participants",
        json={"prolific_pid": "e2e-pid", "study_id": "study-1", "session_id": "sess-9"},
    )
    assert stolen.status_code == 409 and "token" not in stolen.json()
    key = httpx.get(
        f"{server.url}/api/participants/p00001/key",
        headers=server.admin,
    ).json()
    practice = [(t, k) for t, k in key.items() if "-p" in t]
    trials = sorted(
        ((t, k) for t, k in key.items() if "-p" not in t), key=lambda x: x[1]["position"]
    )
    assert len(practice) == 2 and len(trials) == 7
    other = {"left": "right", "right": "left"}

    # Practice round 1: first answer wrong → feedback → the practice repeats.
    _click(browser, "#jspsych-html-button-response-btngroup button")
    first_wrong, entry = _trial_by_screen(browser, key)
    wrong = encode_response(other[entry["correct_side"]], 3)
    browser.find_element(By.CSS_SELECTOR, f'button.fvlab-choice[data-choice="{wrong}"]').click()
    feedback = WebDriverWait(browser, WAIT_S).until(
        ec.visibility_of_element_located((By.CSS_SELECTOR, "#fvlab-feedback.fvlab-wrong-answer"))
    )
    assert "Wrong" in feedback.text
    WebDriverWait(browser, WAIT_S).until(ec.staleness_of(feedback))
    second, entry = _trial_by_screen(browser, key)
    _answer_trial(browser, entry, encode_response(entry["correct_side"], 2))
    WebDriverWait(browser, WAIT_S).until(
        ec.text_to_be_present_in_element((By.ID, "jspsych-content"), "try the practice again")
    )
    _click(browser, "#jspsych-html-button-response-btngroup button")
    # Practice round 2: both right.
    _click(browser, "#jspsych-html-button-response-btngroup button")
    for _ in practice:
        _, entry = _trial_by_screen(browser, key)
        _answer_trial(browser, entry, encode_response(entry["correct_side"], 3))
    WebDriverWait(browser, WAIT_S).until(
        ec.text_to_be_present_in_element((By.ID, "jspsych-content"), "All practice answers")
    )
    _click(browser, "#jspsych-html-button-response-btngroup button")
    _click(browser, "#jspsych-html-button-response-btngroup button")  # "Start" the main part

    planned, sizes = {}, {}
    for i, (trial_id, entry) in enumerate(trials):
        assert _trial_by_screen(browser, key)[0] == trial_id  # shown in stored order
        if i in (1, 2):  # nothing to scroll at the two window sizes of the issue
            for width, height in ((1280, 800), (800, 600)):
                browser.set_window_size(width, height)
                sizes[(width, height, i)] = _fits(browser)
            browser.set_window_size(1200, 1100)
        progress = browser.execute_script(
            "return document.querySelector('#jspsych-progressbar-inner').style.width"
        )
        assert progress == f"{100 * i / len(trials):g}%" or i == 0, progress
        truth = entry["correct_side"]
        side = truth if i % 3 else other[truth]  # trials 0, 3, 6 answered wrong
        confidence = 1 + i % 3
        planned[trial_id] = (side, confidence, side == truth)
        _answer_trial(browser, entry, encode_response(side, confidence))
    print("window sizes and fit:", sizes)
    assert all(v["fits"] for v in sizes.values()), sizes

    WebDriverWait(browser, WAIT_S).until(ec.url_to_be(done_url))
    assert "Thank you" in browser.page_source

    stored = _rows(db, "SELECT * FROM responses WHERE participant_id = 'p00001'")
    scored = {r["trial_id"]: r for r in stored if r["kind"] != "practice"}
    assert set(scored) == set(planned) == {t for t in key if "-p" not in t}
    for trial_id, (side, confidence, correct) in planned.items():
        row = scored[trial_id]
        assert (row["chosen_side"], row["confidence"], bool(row["correct"])) == (
            side,
            confidence,
            correct,
        )
        assert row["correct_side"] == key[trial_id]["correct_side"]
        assert row["kind"] == key[trial_id]["kind"] and row["attempt"] == 1
    practice_rows = sorted(
        (r["attempt"], r["trial_id"], bool(r["correct"])) for r in stored if r["kind"] == "practice"
    )
    ids = sorted(t for t, _ in practice)
    assert second != first_wrong
    assert practice_rows == sorted(
        [(1, t, t != first_wrong) for t in ids] + [(2, t, True) for t in ids]
    )
    [person] = _rows(db, "SELECT * FROM participants")
    assert (person["prolific_pid"], person["study_id"], person["session_id"]) == (
        "e2e-pid",
        "study-1",
        "sess-9",
    )
    assert person["practice_attempts"] == 2 and person["practice_passed"] == 1
    assert person["instructions_ms"] > 0 and person["total_ms"] > person["instructions_ms"]
    assert '"jspsych_data"' in person["submission_json"]
    # Reloading the page after completing does not start the study again.
    browser.get(f"{server.url}/?PROLIFIC_PID=e2e-pid&STUDY_ID=study-1&SESSION_ID=sess-9")
    _click(browser, "#fvlab-agree")
    message = WebDriverWait(browser, WAIT_S).until(
        ec.presence_of_element_located((By.ID, "fvlab-error"))
    )
    assert "already completed" in message.text
    # The strict Content-Security-Policy breaks nothing on the page.
    console = [entry["message"] for entry in browser.get_log("browser")]
    assert not [m for m in console if "Content Security Policy" in m], console
    assert len(_rows(db, "SELECT * FROM responses")) == len(stored)


@pytest.mark.parametrize("mode", ["visual", "data-only"])
def test_plugin_simulate_runs_the_whole_experiment(
    browser, tiny_study, tmp_path, server_factory, mode
):
    db = tmp_path / f"sim-{mode}.sqlite"
    server = server_factory(
        tiny_study,
        db,
        "--main",
        "3",
        "--catch",
        "1",
        "--practice",
        "1",
        "--feedback-ms",
        "100",
        "--redirect-delay-ms",
        "100",
        "--max-practice-attempts",
        "3",
    )
    started = time.monotonic()
    browser.get(f"{server.url}/?simulate={mode}&sim_rt_ms=150&PROLIFIC_PID=sim-{mode}")
    WebDriverWait(browser, 60).until(ec.url_contains("/complete"))
    assert browser.find_element(By.ID, "fvlab-code").text.startswith("FV")  # the default page
    [person] = _rows(db, "SELECT * FROM participants")
    stored = _rows(db, "SELECT * FROM responses")
    scored = [r for r in stored if r["kind"] != "practice"]
    assert len(scored) == 4 and {r["attempt"] for r in scored} == {1}
    practice = [r for r in stored if r["kind"] == "practice"]
    assert len(practice) == person["practice_attempts"] >= 1
    # The plugin's simulated answers are scored by the server like any other.
    for r in stored:
        assert bool(r["correct"]) == (r["chosen_side"] == r["correct_side"])
    rts = [r["rt_ms"] for r in stored]
    if mode == "data-only":
        assert set(rts) == {150}  # the simulated response time asked for in the URL
    else:  # visual mode really renders, waits 150 ms and clicks: the page measures the delay
        assert all(150 <= rt < 1000 for rt in rts), rts
        assert time.monotonic() - started > 0.15 * len(stored)


def test_failed_practice_declined_consent_and_small_window(
    browser, tiny_study, tmp_path, server_factory
):
    db = tmp_path / "polite.sqlite"
    server = server_factory(
        tiny_study,
        db,
        "--practice",
        "1",
        "--max-practice-attempts",
        "1",
        "--feedback-ms",
        "100",
        "--redirect-delay-ms",
        "100",
        "--practice-failed-url",
        "/ended?reason=practice",
    )
    # Too small a window: asked to enlarge it; the study starts once it fits.
    browser.set_window_size(640, 480)
    browser.get(f"{server.url}/?PROLIFIC_PID=small")
    message = WebDriverWait(browser, WAIT_S).until(
        ec.presence_of_element_located((By.ID, "fvlab-window"))
    )
    assert "larger" in message.text
    browser.set_window_size(1200, 1100)
    # Declining consent ends the study and stores nothing.
    _click(browser, "#fvlab-decline")
    WebDriverWait(browser, WAIT_S).until(ec.presence_of_element_located((By.ID, "fvlab-declined")))
    assert _rows(db, "SELECT * FROM participants") == []
    # A failed practice ends politely on the operator's page, the practice answer saved.
    browser.get(f"{server.url}/?PROLIFIC_PID=fails")
    _click(browser, "#fvlab-agree")
    WebDriverWait(browser, WAIT_S).until(
        ec.presence_of_element_located((By.ID, "jspsych-instructions-next"))
    )
    browser.refresh()  # a reload in the same browser resumes (the token cookie)
    _click(browser, "#fvlab-agree")
    WebDriverWait(browser, WAIT_S).until(
        ec.presence_of_element_located((By.ID, "jspsych-instructions-next"))
    )
    assert len(_rows(db, "SELECT * FROM participants")) == 1
    for _ in range(4):
        _click(browser, "#jspsych-instructions-next")
    _click(browser, "#jspsych-html-button-response-btngroup button")
    key = httpx.get(f"{server.url}/api/participants/p00001/key", headers=server.admin).json()
    _, entry = _trial_by_screen(browser, key)
    wrong = {"left": "right", "right": "left"}[entry["correct_side"]]
    _answer_trial(browser, entry, encode_response(wrong, 1))
    WebDriverWait(browser, WAIT_S).until(
        ec.presence_of_element_located((By.ID, "fvlab-practice-failed"))
    )
    _click(browser, "#jspsych-html-button-response-btngroup button")
    WebDriverWait(browser, WAIT_S).until(ec.url_contains("/ended?reason=practice"))
    assert "practice rounds were not passed" in browser.page_source
    [person] = _rows(db, "SELECT * FROM participants")
    assert person["submitted_unix"] and not person["practice_passed"]
    assert [r["kind"] for r in _rows(db, "SELECT * FROM responses")] == ["practice"]
