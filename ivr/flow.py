"""The call flow: what the hotline says and does next at each step of a call.

Plain Python: no Flask, no Twilio, no database. It records what it learns through a CallDesk, which
the webhook side implements over the database and tests may implement however they like.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

from ivr import prompts
from ivr.events import CallEvent
from ivr.handover import Clock, Handover, utc_now
from ivr.reply import Dial, Gather, Hangup, Pause, Play, Record, Redirect, Reply, Say
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
# The quick exit: this key ends the call at once from any menu or keyed entry, and ends a take too
# (which is kept). Every <Gather> submits it as a digit; every <Record> finishes on it.
QUICK_EXIT_KEY = "*"
RECORD_FINISH_KEYS = "#" + QUICK_EXIT_KEY


@dataclass(frozen=True)
class UnlockOutcome:
    unlocked: bool
    failures_this_call: int


@dataclass(frozen=True)
class AskedQuestion:
    """A handler's question as the call puts it: its text (opened for this webhook only; None when an
    offline voice speaks it) and the path of that voice's audio on the line."""

    text: str | None
    audio_path: str


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

    # Questions: only on a call that unlocked its case with reference and PIN (storage/questions.py).
    def next_question(self, call_sid: str, with_text: bool) -> AskedQuestion | None: ...

    def current_question(self, call_sid: str, with_text: bool) -> AskedQuestion | None: ...

    def answer_recorded(self, call_sid: str, recording_sid: str, recording_url: str | None, duration: int | None) -> None: ...


@dataclass(frozen=True)
class FlowOptions:
    max_recording_seconds: int = 600
    question_voice: str = "say"  # a handler's question: Twilio's <Say>, or "espeak" (audio from the line)
    # Help on the line: the services the help branch reads, and the live handover (None: not offered).
    support_services: tuple[tuple[str, str], ...] = prompts.SUPPORT_SERVICES
    handover: Handover | None = None
    clock: Clock = utc_now  # when the handover's opening hours are checked

    @classmethod
    def from_settings(cls, settings, clock: Clock | None = None) -> "FlowOptions":
        return cls(
            max_recording_seconds=settings.max_recording_seconds,
            question_voice=settings.question_voice,
            support_services=settings.support_services or prompts.SUPPORT_SERVICES,
            handover=settings.handover,
            clock=clock or utc_now,
        )


class CallFlow:
    STEPS = (
        "voice", "welcome", "anonymity", "contact", "contact-number", "contact-confirm", "category",
        "recorded", "after-recording", "reference", "pin", "read-back",
        "question", "answer-recorded", "after-answer", "after-questions",
        "help", "handover-ended",
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
            "question": self.question_choice,
            "answer-recorded": self.answer_finished,
            "after-answer": self.after_answer_choice,
            "after-questions": self.after_questions_choice,
            "help": self.help_choice,
            "handover-ended": self.handover_ended,
        }.get(step)
        if handler is None:
            raise KeyError(step)
        if QUICK_EXIT_KEY in (event.digits or ""):
            return self.quick_exit(handler, event)
        return handler(event)

    def quick_exit(self, handler: Callable[[CallEvent], Reply], event: CallEvent) -> Reply:
        """The star key: hang up at once, without a word (someone may have walked in). A take that
        the key ended is still handed to its step first, so it is kept like any other."""
        if event.recording is not None:
            handler(event)
        return Reply.of(Hangup())

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
        return Reply.of(Say(prompts.WELCOME), *self._main_menu(1, prompts.QUICK_EXIT).verbs)

    def _main_menu(self, attempt: int, *lead: str) -> Reply:
        offer = (prompts.HANDOVER_OFFER,) if self._handover_open() else ()
        return self._menu("welcome", *lead, prompts.MAIN_MENU, *offer, attempt=attempt)

    def welcome_choice(self, event: CallEvent) -> Reply:
        if event.digits == "1":
            return self._anonymity_menu(1)
        if event.digits == "2":
            return self._reference_prompt(1)
        if event.digits == "3":
            return self._help(1)
        if event.digits == "0" and self._handover_open():
            return self._hand_over()
        return self._ask_again(event, self._main_menu)

    # --- help and support, and the live handover -----------------------------------------------

    def _help(self, attempt: int) -> Reply:
        """The support services, one at a time, digit by digit, with a pause after each; a key
        pressed while they are read goes straight to the choice."""
        spoken: list[Say | Pause] = [Say(prompts.HELP_INTRO), Pause(1)]
        for name, number in self.options.support_services:
            spoken += [Say(prompts.SUPPORT_SERVICE.format(name=name, number=prompts.spoken_number(number))), Pause(2)]
        spoken.append(Say(prompts.HELP_MENU))
        return Reply.of(Gather("help", tuple(spoken), attempt=attempt), Redirect("help", attempt))

    def _help_menu(self, attempt: int) -> Reply:
        return self._menu("help", prompts.HELP_MENU, attempt=attempt)

    def help_choice(self, event: CallEvent) -> Reply:
        if event.digits == "1":
            return self._help(1)
        if event.digits == "2":
            return self._anonymity_menu(1)
        return self._ask_again(event, self._help_menu)

    def _handover_open(self) -> bool:
        handover = self.options.handover
        return handover is not None and handover.is_open(self.options.clock())

    def _hand_over(self) -> Reply:
        # Nothing of the caller goes with the call: the handler's phone shows the hotline's number,
        # and no reference, no From and no whisper is passed on.
        handover = self.options.handover
        assert handover is not None
        return Reply.of(
            Say(prompts.HANDOVER_CONNECTING),
            Dial(handover.number, caller_id=handover.caller_id, timeout=handover.ring_seconds, step="handover-ended"),
        )

    def handover_ended(self, event: CallEvent) -> Reply:
        """After the <Dial>: the handler hung up (the caller hears this), or nobody answered. Either
        way the caller can still make a report. A caller who hung up hears nothing (Twilio ignores it)."""
        answered = event.dial_status is not None and event.dial_status.was_answered
        lead = prompts.HANDOVER_ENDED if answered else prompts.HANDOVER_NO_ANSWER
        return Reply.of(Say(lead), *self._main_menu(1).verbs)

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
            Record("recorded", max_length=self.options.max_recording_seconds, finish_on_key=RECORD_FINISH_KEYS,
                   attempt=attempt),
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
        if event.digits == "1":
            return self._finish(event)
        at_limit = self._at_take_limit(event)
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
            question = self.desk.next_question(event.call_sid, self._question_text_needed)
            if question is not None:
                return Reply.of(Say(prompts.UNLOCKED), Say(prompts.QUESTION_WAITING),
                                *self._question_menu(question, 1).verbs)
            return Reply.of(Say(prompts.UNLOCKED), *self._record(prompts.RECORD_MORE_INSTRUCTIONS).verbs)
        if outcome.failures_this_call >= MAX_UNLOCK_FAILURES_PER_CALL:
            return Reply.of(Say(prompts.UNLOCK_GIVE_UP), Hangup())
        return Reply.of(Say(prompts.UNLOCK_FAILED), *self._reference_prompt(1).verbs)

    # --- a handler's questions, after the caller unlocked their report --------------------------

    @property
    def _question_text_needed(self) -> bool:
        # With the offline voice the webhook never opens the question: only the audio endpoint does.
        return self.options.question_voice != "espeak"

    def _spoken_question(self, question: AskedQuestion) -> tuple[Say | Pause | Play, ...]:
        if not self._question_text_needed:
            return (Play(question.audio_path),)
        # Slowly: a sentence at a time, with a pause after each.
        spoken: list[Say | Pause | Play] = []
        for sentence in prompts.sentences(question.text or ""):
            spoken += [Say(sentence), Pause(1)]
        return tuple(spoken)

    def _question_menu(self, question: AskedQuestion | None, attempt: int) -> Reply:
        """The question then its options; asked again after no key or a wrong one, the options only."""
        spoken = (Say(prompts.QUESTION_IS), Pause(1), *self._spoken_question(question)) if question else ()
        says = (*spoken, Say(prompts.QUESTION_MENU))
        return Reply.of(Gather("question", says, attempt=attempt), Redirect("question", attempt))

    def question_choice(self, event: CallEvent) -> Reply:
        if self.desk.current_question(event.call_sid, with_text=False) is None:
            return self._next_question(event, Say(prompts.QUESTION_GONE))
        if event.digits == "1":
            return self._question_menu(self.desk.current_question(event.call_sid, self._question_text_needed), 1)
        if event.digits == "2":
            if self._at_take_limit(event):
                return self._after_questions(Say(prompts.TAKE_LIMIT_REACHED))
            return self._record_answer(prompts.QUESTION_ANSWER_INSTRUCTIONS)
        # No key, three times: the question waits for the next call-back (it stays open).
        return self._ask_again(event, lambda attempt: self._question_menu(None, attempt),
                               lambda: self._next_question(event, Say(prompts.QUESTION_LEFT_FOR_LATER)))

    def _record_answer(self, instructions: str, attempt: int = 1) -> Reply:
        return Reply.of(
            Say(instructions),
            Record("answer-recorded", max_length=self.options.max_recording_seconds,
                   finish_on_key=RECORD_FINISH_KEYS, attempt=attempt),
            Redirect("answer-recorded", attempt),
        )

    def answer_finished(self, event: CallEvent) -> Reply:
        recording = event.recording
        if recording is None:
            if event.attempt >= MAX_ATTEMPTS:
                return self._next_question(event, Say(prompts.QUESTION_LEFT_FOR_LATER))
            return Reply.of(Say(prompts.RECORD_NOTHING_HEARD),
                            *self._record_answer(prompts.QUESTION_ANSWER_INSTRUCTIONS, event.attempt + 1).verbs)
        self.desk.answer_recorded(event.call_sid, recording.recording_sid, recording.recording_url,
                                  recording.duration_seconds)
        if event.hung_up:
            return Reply.of(Hangup())  # the answer is kept
        return self._after_answer_menu(recording.recording_sid, 1, self._at_take_limit(event))

    def _after_answer_menu(self, recording_sid: str | None, attempt: int, at_limit: bool) -> Reply:
        menu = prompts.QUESTION_AFTER_ANSWER_AT_LIMIT if at_limit else prompts.QUESTION_AFTER_ANSWER_MENU
        return self._menu("after-answer", menu, attempt=attempt, take=recording_sid)

    def after_answer_choice(self, event: CallEvent) -> Reply:
        at_limit = self._at_take_limit(event)
        if event.digits == "2" and not at_limit:
            if event.take:
                self.desk.discard_take(event.call_sid, event.take)
            return Reply.of(Say(prompts.QUESTION_ANSWER_DISCARDED),
                            *self._record_answer(prompts.QUESTION_ANSWER_INSTRUCTIONS).verbs)
        if event.digits == "1":
            return self._next_question(event, Say(prompts.QUESTION_ANSWER_SAVED))
        # Silence keeps the answer, as it keeps a take.
        return self._ask_again(event, lambda attempt: self._after_answer_menu(event.take, attempt, at_limit),
                               lambda: self._next_question(event, Say(prompts.QUESTION_ANSWER_SAVED)))

    def _next_question(self, event: CallEvent, lead: Say) -> Reply:
        question = self.desk.next_question(event.call_sid, self._question_text_needed)
        if question is None:
            return self._after_questions(lead)
        return Reply.of(lead, Say(prompts.QUESTION_ANOTHER), *self._question_menu(question, 1).verbs)

    def _after_questions(self, lead: Say, attempt: int = 1) -> Reply:
        menu = Gather("after-questions", (Say(prompts.QUESTION_AFTER_QUESTIONS_MENU),), attempt=attempt)
        return Reply.of(lead, menu, Say(prompts.GOODBYE), Hangup())

    def after_questions_choice(self, event: CallEvent) -> Reply:
        if event.digits == "1":
            return self._record(prompts.RECORD_MORE_INSTRUCTIONS)
        return Reply.of(Say(prompts.GOODBYE), Hangup())


def _dialable(number: str | None) -> str | None:
    """The caller's own number if Twilio gave a real one (withheld numbers arrive as words or junk)."""
    if not number:
        return None
    digits = number[1:] if number.startswith("+") else number
    if not digits.isdigit() or not MIN_PHONE_DIGITS <= len(digits) <= MAX_PHONE_DIGITS:
        return None
    return number
