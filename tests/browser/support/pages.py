"""The console as a person uses it in a browser: what they click and type, and what they see.

Each method is one thing a person does or looks at, so the story reads as the handler lives it:
`admin.invites("hana", role="handler")`, `hana.opens_case(reference).take(1).plays()`. Only element
ids and classes from the console contract are used; every wait names what it waited for, so a
failure says which step of the story broke.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import pyotp
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser.support.chromium import Browser

WAIT_SECONDS = 10


def wait_for(driver: WebDriver, what: str, condition, timeout: float = WAIT_SECONDS):
    """condition(driver) until it returns something truthy; fails naming `what` and the page it was on.
    An element from the page before a form's reload is no proof of anything: look again."""
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.05,
                             ignored_exceptions=(StaleElementReferenceException,)).until(lambda d: condition(d))
    except TimeoutException:
        raise AssertionError(f"waited {timeout} s for {what}; the browser is at {driver.current_url} "
                             f"showing {_page_summary(driver)!r}") from None


def _page_summary(driver: WebDriver) -> str:
    try:
        return " ".join(driver.find_element(By.TAG_NAME, "main").text.split())[:300]
    except Exception:
        return driver.title


def element(driver: WebDriver, css: str, timeout: float = WAIT_SECONDS) -> WebElement:
    def visible(d):
        found = d.find_elements(By.CSS_SELECTOR, css)
        return found[0] if found and found[0].is_displayed() else None

    return wait_for(driver, f"the element {css!r}", visible, timeout)


def fill(field_element: WebElement, value: str) -> None:
    field_element.clear()
    field_element.send_keys(value)


def submit(inside_form: WebElement) -> None:
    """Presses the submit button of the form that holds `inside_form` (or is it), as a person would."""
    form = inside_form if inside_form.tag_name == "form" else inside_form.find_element(By.XPATH, "./ancestor::form")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()


@dataclass
class ConsoleUser:
    """One person at the console, in a browser of their own."""

    browser: Browser
    base_url: str
    username: str
    password: str | None = None
    totp_secret: str | None = None
    _last_totp_step: int = field(default=-1, init=False)

    @property
    def driver(self) -> WebDriver:
        return self.browser.driver

    # ------------------------------------------------------------------ getting around

    def visits(self, path: str) -> None:
        self.driver.get(self.base_url + path)

    @property
    def path(self) -> str:
        return self.driver.current_url.removeprefix(self.base_url).split("?")[0]

    def is_at(self, path: str, timeout: float = WAIT_SECONDS) -> bool:
        wait_for(self.driver, f"the page {path}", lambda d: self.path == path, timeout)
        return True

    def sees(self, text: str, timeout: float = WAIT_SECONDS) -> bool:
        wait_for(self.driver, f"the text {text!r} on the page",
                 lambda d: text in d.find_element(By.TAG_NAME, "body").text, timeout)
        return True

    def is_in_inbox(self) -> bool:
        return self.is_at("/inbox")

    def screenshot(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        assert self.driver.save_screenshot(str(path)), f"Chromium could not save {path}"

    # ------------------------------------------------------------------ signing in and out

    def totp_code(self) -> str:
        """A code for a step not used yet: the console refuses a code twice, so wait for the next one."""
        assert self.totp_secret, f"{self.username} has no TOTP secret"
        step = int(time.time() // 30)
        while step <= self._last_totp_step:
            time.sleep(0.2)
            step = int(time.time() // 30)
        self._last_totp_step = step
        return pyotp.TOTP(self.totp_secret).at(step * 30)

    def enters_password(self, password: str | None = None) -> None:
        self.visits("/sign-in")
        fill(element(self.driver, "input[name=username]"), self.username)
        box = element(self.driver, "input[name=password]")
        fill(box, password or self.password)
        submit(box)

    def enters_totp_code(self) -> None:
        self.is_at("/sign-in/second-factor")
        code = element(self.driver, "input[name=code]")
        fill(code, self.totp_code())
        submit(code)

    def signs_in(self) -> None:
        """Password, then a TOTP code: the way a handler without a security key signs in."""
        self.enters_password()
        self.enters_totp_code()
        self.is_in_inbox()

    def signs_in_with_security_key(self) -> None:
        self.enters_password()
        self.is_at("/sign-in/second-factor")
        element(self.driver, "#use-security-key").click()
        self.is_in_inbox()

    def signs_out(self) -> None:
        element(self.driver, "form[action='/sign-out'] button").click()
        wait_for(self.driver, "the signed-out page or sign-in",
                 lambda d: self.path in ("/sign-in", "/sign-out") and not d.find_elements(By.CSS_SELECTOR, ".mainnav"))

    # ------------------------------------------------------------------ enrolment

    def enrols(self, link: str, password: str) -> None:
        """Opens the one-time link, chooses a password, sets up TOTP from the secret shown, and is in."""
        assert link.startswith(self.base_url + "/enrol/"), f"not an enrolment link: {link!r}"
        self.password = password
        self.driver.get(link)
        boxes = wait_for(self.driver, "the enrolment form's password fields",
                         lambda d: [box for box in d.find_elements(By.CSS_SELECTOR, "input[type=password]") if box.is_displayed()])
        for box in boxes:  # the password, and its repetition
            fill(box, password)
        submit(boxes[-1])
        self.totp_secret = "".join(element(self.driver, "#totp-secret").text.split())
        code = element(self.driver, "input[name=code]")
        fill(code, self.totp_code())
        submit(code)
        self.is_in_inbox()

    # ------------------------------------------------------------------ an admin's work

    def invites(self, username: str, *, role: str = "handler", name: str | None = None) -> str:
        """Invites a new account on /accounts/ and returns the enrolment link the page shows once."""
        self.visits("/accounts/")
        form = element(self.driver, "form[action='/accounts/invite']")
        fill(form.find_element(By.CSS_SELECTOR, "input[name=username]"), username)
        fill(form.find_element(By.CSS_SELECTOR, "input[name=display_name]"), name or username.title())
        Select(form.find_element(By.CSS_SELECTOR, "select[name=role]")).select_by_value(role)
        submit(form)
        return element(self.driver, "#enrolment-link").text.strip()

    # ------------------------------------------------------------------ cases

    def inbox_references(self) -> list[str]:
        self.visits("/inbox")
        self.is_in_inbox()
        return [row.get_attribute("data-reference") for row in self.driver.find_elements(By.CSS_SELECTOR, "#inbox tr.case-row")]

    def opens_case(self, reference: str) -> "CasePage":
        self.visits("/inbox")
        element(self.driver, f"a[href='/cases/{reference}']").click()
        self.is_at(f"/cases/{reference}")
        return CasePage(self, reference)

    def searches_for(self, words: str) -> list[str]:
        """Runs a search (a POST: the terms never appear in a URL); returns the references found."""
        self.visits("/search")
        fill(element(self.driver, "#q"), words)
        element(self.driver, "#run-search").click()
        element(self.driver, "#search-summary")
        assert words not in self.driver.current_url, "the search terms went into the URL"
        return [row.get_attribute("data-reference") for row in self.driver.find_elements(By.CSS_SELECTOR, "tr.search-result")]

    # ------------------------------------------------------------------ security keys

    def adds_security_key(self, label: str) -> None:
        self.visits("/account")
        fill(element(self.driver, "#security-key-label"), label)
        element(self.driver, "#add-security-key").click()
        self.sees(label)


@dataclass
class CasePage:
    user: ConsoleUser
    reference: str

    @property
    def driver(self) -> WebDriver:
        return self.user.driver

    def take(self, number: int = 1) -> "TakePlayer":
        players = wait_for(self.driver, f"take {number}'s player",
                           lambda d: d.find_elements(By.CSS_SELECTOR, ".player[data-recording-id]")[number - 1:number])
        return TakePlayer(self, players[0])

    def timeline(self) -> str:
        return element(self.driver, "#timeline").text

    def adds_note(self, text: str) -> None:
        fill(element(self.driver, "#note-text"), text)
        element(self.driver, "#add-note").click()
        wait_for(self.driver, "the note in the timeline", lambda d: text in self.timeline())

    def sets_status(self, label: str) -> None:
        """Moves the case on to the status shown as `label` (e.g. "In review")."""
        Select(element(self.driver, "#status")).select_by_visible_text(label)
        element(self.driver, "#change-status").click()
        wait_for(self.driver, f"the status {label!r} to be shown", lambda d: self.status() == label)

    def status(self) -> str:
        return element(self.driver, "#case-status").text.strip()


@dataclass
class TakePlayer:
    page: CasePage
    root: WebElement

    @property
    def driver(self) -> WebDriver:
        return self.page.driver

    @property
    def audio(self) -> WebElement:
        return self.root.find_element(By.CSS_SELECTOR, "audio.take-audio")

    def words(self) -> list[WebElement]:
        return wait_for(self.driver, "the transcript's words", lambda d: self.root.find_elements(By.CSS_SELECTOR, ".word"))

    def word_texts(self) -> list[str]:
        return [word.text.strip() for word in self.words()]

    def is_ready(self) -> bool:
        """The audio has loaded enough to play (it is streamed from memory with Range requests)."""
        wait_for(self.driver, "the take's audio to load",
                 lambda d: d.execute_script("return arguments[0].readyState >= 2 && !arguments[0].error", self.audio))
        return True

    def current_time(self) -> float:
        return float(self.driver.execute_script("return arguments[0].currentTime", self.audio))

    def is_playing(self) -> bool:
        return bool(self.driver.execute_script("return !arguments[0].paused && !arguments[0].ended", self.audio))

    def highlighted_word(self) -> WebElement | None:
        found = self.root.find_elements(By.CSS_SELECTOR, ".word.now")
        return found[0] if found else None

    def highlighted_start(self) -> float | None:
        word = self.highlighted_word()
        return float(word.get_attribute("data-start")) if word is not None else None

    def scrolls_into_view(self) -> None:
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", self.root)

    def plays(self) -> None:
        """Presses the play button of the audio's own controls."""
        self.is_ready()
        self._presses_play_button()
        wait_for(self.driver, "the audio to start playing", lambda d: self.is_playing() and self.current_time() > 0)

    def pauses(self) -> None:
        self._presses_play_button()
        wait_for(self.driver, "the audio to pause", lambda d: not self.is_playing())

    def _presses_play_button(self) -> None:
        # Chromium draws its play/pause button at the left end of the controls.
        audio = self.audio
        ActionChains(self.driver).move_to_element_with_offset(audio, -audio.size["width"] // 2 + 18, 0).click().perform()

    def presses(self, key: str) -> None:
        """A key on the keyboard (the player's: k play/pause, j back 5 s, n next unsure word)."""
        ActionChains(self.driver).send_keys(key).perform()

    def clicks_word(self, word: WebElement) -> float:
        """Clicks a word in the transcript; returns that word's start time in seconds."""
        word.click()
        return float(word.get_attribute("data-start"))

    def corrects(self, word: WebElement, new_text: str) -> None:
        """Selects a word (a double-click), opens the correction box, types the right word and saves."""
        ActionChains(self.driver).double_click(word).perform()
        wait_for(self.driver, "the word to be chosen for correction", lambda d: "selected" in word.get_attribute("class"))
        self.root.find_element(By.CSS_SELECTOR, ".correct-selection").click()
        box = element(self.driver, f"#correction-text-{self.recording_id}")
        fill(box, new_text)
        self.root.find_element(By.CSS_SELECTOR, ".save-correction").click()

    @property
    def recording_id(self) -> int:
        return int(self.root.get_attribute("data-recording-id"))

    def version(self) -> str:
        return self.root.find_element(By.CSS_SELECTOR, ".transcript-version").text.strip()
