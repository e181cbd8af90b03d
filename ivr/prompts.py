"""Everything the hotline says, in one place, in British English. Calm, short sentences: many callers
are frightened, some are on a bad line, and every prompt may be heard more than once."""
from __future__ import annotations

import re

VOICE = "Polly.Amy"  # pinned: one consistent British voice on every prompt
LANGUAGE = "en-GB"

WELCOME = (
    "Thank you for calling the police misconduct reporting line. This free line is run by an independent "
    "charity, not by the police. You can tell us about a police officer or member of police staff who is "
    "corrupt or abuses their position. "
    "If you or someone else is in immediate danger, hang up now and call 999. "
    "What you tell us will be recorded and encrypted. Only our trained call handlers can listen to it, and "
    "they use it to decide how to take your report forward."
)
MAIN_MENU = (
    "To make a new report, press 1. To add information to a report you have already made, press 2. "
    "To hear about other places where you can get help and support, press 3."
)

ANONYMITY_MENU = (
    "You can stay anonymous. If you do, we will not keep your phone number or anything else that could "
    "identify you. To stay anonymous, press 1, or just wait. "
    "If you would like us to be able to contact you, press 2."
)
ANONYMOUS_CONFIRMED = "You are anonymous. We will not keep your phone number."

CONTACT_USE_THIS_NUMBER = (
    "You are calling from a number ending in {last_digits}. To let us contact you on this number, press 1. "
    "To give us a different number, press 2."
)
CONTACT_ENTER_NUMBER = "Please key in the phone number we can contact you on, then press the hash key."
CONTACT_NUMBER_INVALID = "Sorry, that does not look like a phone number."
CONTACT_READ_BACK = "You entered {number}"
CONTACT_CONFIRM_MENU = "If that is right, press 1. To key it in again, press 2."
CONTACT_SAVED = "Thank you. Your contact number has been saved securely."

CATEGORY_MENU = (
    "What is your report about? "
    "For taking money or favours, bribery or corruption, press 1. "
    "For using police powers for a sexual purpose, press 2. "
    "For abusing a partner or family member, press 3. "
    "For racism, homophobia, misogyny or other discrimination, press 4. "
    "For something else, press 5."
)

RECORD_INSTRUCTIONS = (
    "After the tone, please tell us what happened, in your own words. Take your time. If you can, say who "
    "was involved, where and when it happened, and anything that could help us check it. "
    "You have up to {minutes} minutes. When you have finished, press the hash key, or simply hang up."
)
RECORD_AGAIN_INSTRUCTIONS = "After the tone, please tell us what happened. When you have finished, press the hash key."
RECORD_MORE_INSTRUCTIONS = "After the tone, please add what you would like to say. When you have finished, press the hash key."
RECORD_NOTHING_HEARD = "Sorry, we did not hear anything."

AFTER_RECORDING_MENU = (
    "Thank you. To keep your report, press 1. To delete it and record it again, press 2. "
    "To keep it and add more, press 3."
)
TAKE_DISCARDED = "That recording has been deleted."
TAKE_LIMIT_MENU = (
    "Thank you. That is as much as we can record on one call. To keep your report, press 1. "
    "To delete this last recording, press 2."
)
TAKE_LIMIT_REACHED = "We cannot record any more on this call. You can add to your report by calling again."

REFERENCE_INTRO = "Please write down your case reference and PIN. You will need them to add to your report."
REFERENCE_IS = "Your case reference is {reference}"
PIN_IS = "Your PIN is {pin}"
READ_BACK_MENU = "To hear them again, press 1."
ADDED_TO_CASE = "Thank you. What you said has been added to your report."

ENTER_REFERENCE = "Please key in your 8 digit case reference."
# 6 digits end the keying by themselves; a case from before 6-digit PINs has 4, ended by the hash key (or
# the pause after them). No hash after 6 digits: it would land on the recording that follows.
ENTER_PIN = "Now please key in your PIN. If your PIN has 4 digits, press the hash key after it."
UNLOCK_FAILED = "Sorry, we could not find a report with those details."
UNLOCK_GIVE_UP = (
    "Sorry, we still could not find a report with those details. You can make a new report instead; "
    "please call again and press 1."
)
UNLOCKED = "Thank you. We have found your report."

NOT_AN_OPTION = "Sorry, that is not one of the options."
NO_INPUT = "Sorry, we did not get your choice."
GOODBYE = "Thank you for calling. Goodbye."
NO_INPUT_GOODBYE = "We have not heard from you, so we will end the call now. Please call again at any time. Goodbye."
SOMETHING_WENT_WRONG = (
    "Sorry, something went wrong on our side. Anything you have already recorded is safe. "
    "Please call again later. Goodbye."
)

# --- help and support ---
# Said after the welcome, inside the main menu so the star key works from the first moment.
QUICK_EXIT = (
    "You can hang up at any moment. It is safe to do so, and anything you have already recorded is kept. "
    "To end the call straight away, press the star key at any time."
)
HANDOVER_OFFER = "To speak to one of our call handlers now, press 0."
# The handler's phone shows the hotline's own number; saying so helps a caller who fears being traced.
HANDOVER_CONNECTING = "Putting you through to a call handler. They will not see your phone number. Please hold."
HANDOVER_NO_ANSWER = (
    "Sorry, none of our call handlers could answer just now. You can still make a report, "
    "and a call handler will listen to it."
)
HANDOVER_ENDED = "Your call with our call handler has ended. You can make a report now if you would like to."
HELP_INTRO = (
    "Here are other places where you can get help and support. We will read each number slowly, "
    "and you can hear them again."
)
SUPPORT_SERVICE = "For {name}, call {number}"  # the number ends with its own full stop
HELP_MENU = "To hear these numbers again, press 1. To make a report now, press 2."
# The default list (HOTLINE_SUPPORT_SERVICES replaces it): (name, number in the groups it is read in).
SUPPORT_SERVICES = (
    ("help if you or someone else is in danger now", "999"),
    ("the National Domestic Abuse Helpline, free, at any time", "0808 2000 247"),
    ("Victim Support, free, at any time", "0808 168 9111"),
    ("Samaritans, free, at any time", "116 123"),
)


def spoken_number(number: str) -> str:
    """A phone number digit by digit, in the groups it is written in: "0808 2000 247" is
    "0, 8, 0, 8. 2, 0, 0, 0. 2, 4, 7.", with a pause at each full stop."""
    return " ".join(", ".join(group) + "." for group in number.split())


# --- limits ---
# A call over the per-caller limit (ivr/limits.py). It names neither the number nor the limit: the same
# words serve a withheld caller, and an abuser learns nothing to tune against.
LIMIT_REACHED = (
    "Thank you for calling. We have had a lot of calls from this phone in a short time, so we cannot "
    "take this call now. Please call again later. "
    "If you or someone else is in immediate danger, hang up now and call 999. Goodbye."
)


# --- questions ---
# A handler's question, put to a caller who rang back with their reference and PIN (ivr/flow.py).
QUESTION_WAITING = "A call handler has a question for you."
QUESTION_ANOTHER = "A call handler has another question for you."
QUESTION_IS = "Here is the question."
QUESTION_MENU = "To hear the question again, press 1. To record your answer, press 2."
QUESTION_ANSWER_INSTRUCTIONS = (
    "After the tone, please give your answer. When you have finished, press the hash key."
)
QUESTION_AFTER_ANSWER_MENU = "To keep your answer, press 1. To delete it and answer again, press 2."
QUESTION_AFTER_ANSWER_AT_LIMIT = "To keep your answer, press 1."
QUESTION_ANSWER_SAVED = "Thank you. Your answer has been added to your report."
QUESTION_ANSWER_DISCARDED = "That answer has been deleted."
QUESTION_LEFT_FOR_LATER = "We will ask you that question again next time you call."
QUESTION_GONE = "Sorry, that question is no longer available."
QUESTION_AFTER_QUESTIONS_MENU = (
    "To add anything else to your report, press 1. Otherwise you can hang up now: what you said is kept."
)


def sentences(text: str) -> list[str]:
    """A question a sentence at a time, so the voice can pause between them ("9.30" stays whole)."""
    return [part for part in re.split(r"(?<=[.?!])\s+", " ".join(text.split())) if part]


def spoken_digits(digits: str, group: int = 4) -> list[str]:
    """Digits in groups, each digit separated, so a text-to-speech voice reads them one by one slowly."""
    groups = [digits[i : i + group] for i in range(0, len(digits), group)]
    return [", ".join(g) + "." for g in groups]


def spoken_pin(pin: str) -> str:
    """A 6-digit PIN in two groups of three ("4, 0, 7. 1, 9, 2."); an older 4-digit one in one group."""
    return " ".join(spoken_digits(pin, 3 if len(pin) == 6 else 4))


def last_digits(number: str, count: int = 3) -> str:
    tail = "".join(ch for ch in number if ch.isdigit())[-count:]
    return ", ".join(tail)
