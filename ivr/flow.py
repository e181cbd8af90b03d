"""The call flow: what the hotline says and does next at each step of a call.

Plain Python: no Flask, no Twilio, no database. It records what it learns through a CallDesk, which
the webhook side implements over the database and tests may implement however they like.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

from ivr import prompts
from ivr.events import CallEvent
from ivr.reply import Gather, Hangup, Pause, Record, Redirect, Reply, Say
from storage.references import PIN_LENGTH

CATEGORIES = {
    "1": "bribery-corruption",
    "2": "sexual-misconduct",
    "3": "domestic-abuse",
    "4": "discrimination",
    "5": "other",
}
MAX_ATTEMPTS = 3  # the first ask and two more, then a polite goodbye
MAX_UNLOCK_FAILURES_PER_CALL = 3
# Takes one call may record, deleted ones included: enough for a report told in parts or started
# again a few times (up to 50 minutes at the default 10 minutes a take), never an endless loop.
MAX_TAKES_PER_CALL = 5
MIN_PHONE_DIGITS, MAX_PHONE_DIGITS = 7, 15


@dataclass(frozen=True)
class UnlockOutcome:
    unlocked: bool
    failures_this_call: int


class CallDesk(Protocol):
    """Everything the flow needs remembered. Every method is safe to repeat with the same input,
    because Twilio retries webhooks."""

    def start_call(self, call_sid: str) -> None: ...

    def open_report(self, call_sid: str, anonymous: bool) -> None: ...

    def save_contact_number(self, call_sid: str, number: str, confirmed: bool) -> None: ...

    def confirm_contact_number(self, call_sid: str) -> None: ...

    def set_category(self, call_sid: str, category: str) -> None: ...

    def remember_reference(self, call_sid: str, reference: str) -> None: ...

    def unlock(self, call_sid: str, pin: str) -> UnlockOutcome: ...

    def take_recorded(self, call_sid: str, recording_sid: str, recording_url: str | None, duration: int | None) -> None: ...

    def discard_take(self, call_sid: str, recording_sid: str) -> None: ...

    def takes_recorded(self, call_sid: str) -> int: ...

    def is_adding_to_earlier_report(self, call_sid: str) -> bool: ...

    def reference_and_pin(self, call_sid: str) -> tuple[str, str] | None: ...


@dataclass(frozen=True)
class FlowOptions:
    max_recording_seconds: int = 600


class CallFlow:
    STEPS = (
        "voice", "welcome", "anonymity", "contact", "contact-number", "contact-confirm", "category",
        "recorded", "after-recording", "reference", "pin", "read-back",
    )

    def __init__(self, desk: CallDesk, options: FlowOptions | None = None):
        self.desk = desk
        self.options = options or FlowOptions()

    def handle(self, step: str, event: CallEvent) -> Reply:
        handler: Callable[[CallEvent], Reply] | None = {
            "voice": self.incoming_call,
            "welcome": self.welcome_choice,
            "anonymity": self.anonymity_choice,
            "contact": self.contact_choice,
            "contact-number": self.contact_number_entered,
            "contact-confirm": self.contact_confirmation,
            "category": self.category_choice,
            "recorded": self.take_finished,
            "after-recording": self.after_recording_choice,
            "reference": self.reference_entered,
            "pin": self.pin_entered,
            "read-back": self.read_back_choice,
        }.get(step)
        if handler is None:
            raise KeyError(step)
        return handler(event)

    # --- shared shapes -------------------------------------------------------------------------

    def _menu(self, step: str, *texts: str, attempt: int = 1, take: str | None = None, **gather) -> Reply:
        says = tuple(Say(text) for text in texts)
        return Reply.of(Gather(step, says, attempt=attempt, take=take, **gather), Redirect(step, attempt, take))

    def _ask_again(
        self,
        event: CallEvent,
        menu: Callable[[int], Reply],
        on_give_up: Callable[[], Reply] | None = None,
        wrong_entry: str = prompts.NOT_AN_OPTION,
    ) -> Reply:
        """No input or a wrong key: say so and ask again, at most MAX_ATTEMPTS times in all."""
        if event.attempt >= MAX_ATTEMPTS:
            return on_give_up() if on_give_up else Reply.of(Say(prompts.NO_INPUT_GOODBYE), Hangup())
        lead = prompts.NO_INPUT if event.digits is None else wrong_entry
        return Reply.of(Say(lead), *menu(event.attempt + 1).verbs)

    # --- welcome -------------------------------------------------------------------------------

    def incoming_call(self, event: CallEvent) -> Reply:
        self.desk.start_call(event.call_sid)
        return Reply.of(Say(prompts.WELCOME), *self._main_menu(1).verbs)

    def _main_menu(self, attempt: int) -> Reply:
        return self._menu("welcome", prompts.MAIN_MENU, attempt=attempt)

    def welcome_choice(self, event: CallEvent) -> Reply:
        if event.digits == "1":
            return self._anonymity_menu(1)
        if event.digits == "2":
            return self._reference_prompt(1)
        return self._ask_again(event, self._main_menu)

    # --- anonymity and contact details ---------------------------------------------------------

    def _anonymity_menu(self, attempt: int) -> Reply:
        return self._menu("anonymity", prompts.ANONYMITY_MENU, attempt=attempt)

    def anonymity_choice(self, event: CallEvent) -> Reply:
        # Silence means anonymous: a caller who cannot or dare not press a key is protected by default.
        if event.digits in (None, "1"):
            self.desk.open_report(event.call_sid, anonymous=True)
            return Reply.of(Say(prompts.ANONYMOUS_CONFIRMED), *self._category_menu(1).verbs)
        if event.digits == "2":
            self.desk.open_report(event.call_sid, anonymous=False)
            return self._contact_menu(event, 1)
        return self._ask_again(event, self._anonymity_menu)

    def _contact_menu(self, event: CallEvent, attempt: int) -> Reply:
        number = _dialable(event.caller_number)
        if number is None:
            return self._number_entry(1)
        text = prompts.CONTACT_USE_THIS_NUMBER.format(last_digits=prompts.last_digits(number))
        return self._menu("contact", text, attempt=attempt)

    def contact_choice(self, event: CallEvent) -> Reply:
        number = _dialable(event.caller_number)
        if event.digits == "1" and number is not None:
            self.desk.save_contact_number(event.call_sid, number, confirmed=True)
            return Reply.of(Say(prompts.CONTACT_SAVED), *self._category_menu(1).verbs)
        if event.digits == "2" or (event.digits == "1" and number is None):
            return self._number_entry(1)
        return self._ask_again(event, lambda attempt: self._contact_menu(event, attempt))

    def _number_entry(self, attempt: int) -> Reply:
        return self._menu(
            "contact-number", prompts.CONTACT_ENTER_NUMBER, attempt=attempt,
            num_digits=None, finish_on_key="#", timeout=10,
        )

    def contact_number_entered(self, event: CallEvent) -> Reply:
        digits = (event.digits or "").rstrip("#")
        if digits.isdigit() and MIN_PHONE_DIGITS <= len(digits) <= MAX_PHONE_DIGITS:
            # Sealed at once (unconfirmed); the flow never needs to read it back from storage.
            self.desk.save_contact_number(event.call_sid, digits, confirmed=False)
            readback = prompts.CONTACT_READ_BACK.format(number=" ".join(prompts.spoken_digits(digits, 3)))
            return Reply.of(Say(readback), *self._confirm_menu(1).verbs)
        return self._ask_again(
            event, self._number_entry, self._continue_without_contact, wrong_entry=prompts.CONTACT_NUMBER_INVALID
        )

    def _continue_without_contact(self) -> Reply:
        # The caller has already chosen to report; failing to key a number must not end their report.
        return self._category_menu(1)

    def _confirm_menu(self, attempt: int) -> Reply:
        return self._menu("contact-confirm", prompts.CONTACT_CONFIRM_MENU, attempt=attempt)

    def contact_confirmation(self, event: CallEvent) -> Reply:
        if event.digits == "1":
            self.desk.confirm_contact_number(event.call_sid)
            return Reply.of(Say(prompts.CONTACT_SAVED), *self._category_menu(1).verbs)
        if event.digits == "2":
            return self._number_entry(1)
        return self._ask_again(event, self._confirm_menu, self._continue_without_contact)

    # --- category and recording ----------------------------------------------------------------

    def _category_menu(self, attempt: int) -> Reply:
        return self._menu("category", prompts.CATEGORY_MENU, attempt=attempt)

    def category_choice(self, event: CallEvent) -> Reply:
        category = CATEGORIES.get(event.digits or "")
        if category is not None:
            self.desk.set_category(event.call_sid, category)
            return self._record(prompts.RECORD_INSTRUCTIONS.format(minutes=self._minutes()))
        # Nobody should be turned away for not choosing a box.
        return self._ask_again(event, self._category_menu, lambda: self._record_other(event))

    def _record_other(self, event: CallEvent) -> Reply:
        self.desk.set_category(event.call_sid, "other")
        return self._record(prompts.RECORD_INSTRUCTIONS.format(minutes=self._minutes()))

    def _minutes(self) -> int:
        return max(1, self.options.max_recording_seconds // 60)

    def _record(self, instructions: str, attempt: int = 1) -> Reply:
        # If the caller says nothing at all Twilio skips the action and falls through to the redirect.
        return Reply.of(
            Say(instructions),
            Record("recorded", max_length=self.options.max_recording_seconds, attempt=attempt),
            Redirect("recorded", attempt),
        )

    def take_finished(self, event: CallEvent) -> Reply:
        recording = event.recording
        if recording is None:
            if event.attempt >= MAX_ATTEMPTS:
                return Reply.of(Say(prompts.NO_INPUT_GOODBYE), Hangup())
            return Reply.of(Say(prompts.RECORD_NOTHING_HEARD), *self._record(prompts.RECORD_AGAIN_INSTRUCTIONS, event.attempt + 1).verbs)
        self.desk.take_recorded(event.call_sid, recording.recording_sid, recording.recording_url, recording.duration_seconds)
        if event.hung_up:
            return Reply.of(Hangup())  # Twilio ignores it; the take is kept
        return self._after_recording_menu(recording.recording_sid, 1, self._at_take_limit(event))

    def _at_take_limit(self, event: CallEvent) -> bool:
        return self.desk.takes_recorded(event.call_sid) >= MAX_TAKES_PER_CALL

    def _after_recording_menu(self, recording_sid: str | None, attempt: int, at_limit: bool = False) -> Reply:
        # The take being decided on travels in the action URL: it is Twilio's own id, nothing of the caller's.
        menu = prompts.TAKE_LIMIT_MENU if at_limit else prompts.AFTER_RECORDING_MENU
        return self._menu("after-recording", menu, attempt=attempt, take=recording_sid)

    def after_recording_choice(self, event: CallEvent) -> Reply:
        take = event.take
        at_limit = self._at_take_limit(event)
        if event.digits == "1":
            return self._finish(event)
        if event.digits == "2":
            if take:
                self.desk.discard_take(event.call_sid, take)
            if at_limit:
                return Reply.of(Say(prompts.TAKE_DISCARDED), Say(prompts.TAKE_LIMIT_REACHED), *self._finish(event).verbs)
            return Reply.of(Say(prompts.TAKE_DISCARDED), *self._record(prompts.RECORD_AGAIN_INSTRUCTIONS).verbs)
        if event.digits == "3" and not at_limit:
            return self._record(prompts.RECORD_MORE_INSTRUCTIONS)
        # Silence keeps what was said: a report is never lost for want of a key press.
        return self._ask_again(
            event, lambda attempt: self._after_recording_menu(take, attempt, at_limit), lambda: self._finish(event)
        )

    def _finish(self, event: CallEvent) -> Reply:
        if self.desk.is_adding_to_earlier_report(event.call_sid):
            return Reply.of(Say(prompts.ADDED_TO_CASE), Say(prompts.GOODBYE), Hangup())
        return self._read_back(event, first=True)

    def _read_back(self, event: CallEvent, first: bool) -> Reply:
        found = self.desk.reference_and_pin(event.call_sid)
        if found is None:
            return Reply.of(Say(prompts.SOMETHING_WENT_WRONG), Hangup())
        reference, pin = found
        spoken = [Say(prompts.REFERENCE_INTRO)] if first else []
        spoken += [Say(prompts.REFERENCE_IS.format(reference=" ".join(prompts.spoken_digits(reference)))), Pause(1),
                   Say(prompts.PIN_IS.format(pin=prompts.spoken_pin(pin))), Pause(1),
                   Say(prompts.READ_BACK_MENU)]
        return Reply.of(Gather("read-back", tuple(spoken), timeout=5), Say(prompts.GOODBYE), Hangup())

    def read_back_choice(self, event: CallEvent) -> Reply:
        if event.digits == "1":
            return self._read_back(event, first=False)
        return Reply.of(Say(prompts.GOODBYE), Hangup())

    # --- adding to an earlier report -----------------------------------------------------------

    def _reference_prompt(self, attempt: int) -> Reply:
        return self._menu("reference", prompts.ENTER_REFERENCE, attempt=attempt, num_digits=8, timeout=10)

    def reference_entered(self, event: CallEvent) -> Reply:
        if event.digits is None:
            return self._ask_again(event, self._reference_prompt)
        # Whatever was keyed in, ask for the PIN: saying the reference was wrong would tell a guesser too much.
        self.desk.remember_reference(event.call_sid, event.digits[:8])
        return self._pin_prompt(1)

    def _pin_prompt(self, attempt: int) -> Reply:
        # Six keys end it; a 4-digit PIN (a case from before 6-digit PINs) ends on the hash key or the pause.
        return self._menu("pin", prompts.ENTER_PIN, attempt=attempt, num_digits=PIN_LENGTH, finish_on_key="#",
                          timeout=10)

    def pin_entered(self, event: CallEvent) -> Reply:
        if event.digits is None:
            return self._ask_again(event, self._pin_prompt)
        outcome = self.desk.unlock(event.call_sid, event.digits)
        if outcome.unlocked:
            return Reply.of(Say(prompts.UNLOCKED), *self._record(prompts.RECORD_MORE_INSTRUCTIONS).verbs)
        if outcome.failures_this_call >= MAX_UNLOCK_FAILURES_PER_CALL:
            return Reply.of(Say(prompts.UNLOCK_GIVE_UP), Hangup())
        return Reply.of(Say(prompts.UNLOCK_FAILED), *self._reference_prompt(1).verbs)


def _dialable(number: str | None) -> str | None:
    """The caller's own number if Twilio gave a real one (withheld numbers arrive as words or junk)."""
    if not number:
        return None
    digits = number[1:] if number.startswith("+") else number
    if not digits.isdigit() or not MIN_PHONE_DIGITS <= len(digits) <= MAX_PHONE_DIGITS:
        return None
    return number
