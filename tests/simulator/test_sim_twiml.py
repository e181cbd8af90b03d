import pytest

from simulator import TwimlError, parse_twiml


def doc(*verbs: str) -> str:
    return '<?xml version="1.0" encoding="UTF-8"?><Response>' + "".join(verbs) + "</Response>"


def test_parses_verbs_attributes_text_and_nesting():
    document = parse_twiml(doc(
        '<Gather numDigits="1" action="/ivr/menu"><Say voice="alice" language="en-GB">Press 1.</Say><Pause length="2"/></Gather>',
        '<Say loop="2">Bye <break time="1s"/> now</Say>',
        '<Record maxLength="60" finishOnKey="#*" recordingStatusCallbackEvent="completed absent" trim="do-not-trim"/>',
        "<Redirect method=\"GET\">/ivr/voice?x=1</Redirect>",
        "<Hangup/>",
    ), url="https://h.example/ivr/voice")
    assert document.names() == ["Gather", "Say", "Record", "Redirect", "Hangup"]
    assert [path for path, _ in document.walk()] == [
        "Response/Gather", "Response/Gather/Say", "Response/Gather/Pause",
        "Response/Say", "Response/Record", "Response/Redirect", "Response/Hangup",
    ]
    gather = document.verbs[0]
    assert gather.attributes == {"numDigits": "1", "action": "/ivr/menu"}
    assert gather.children[0].text == "Press 1."
    assert document.verbs[1].text == "Bye now"
    assert document.verbs[3].text == "/ivr/voice?x=1" and document.verbs[3].method() == "GET"
    assert document.said == ["Press 1.", "Bye now"]
    assert document.url == "https://h.example/ivr/voice"


def test_empty_response_is_valid():
    assert parse_twiml("<Response/>").verbs == ()


@pytest.mark.parametrize(
    "body, message",
    [
        ("", "empty response"),
        ("Thank you", "not well-formed XML"),
        ("<Response><Say>unclosed</Response>", "not well-formed XML"),
        ("<Reply><Say>Hi</Say></Reply>", "root element must be <Response>"),
        ('<Response version="1"/>', "takes no attributes"),
        (doc("<Speak>Hi</Speak>"), "unknown TwiML verb <Speak>"),
        (doc("<say>Hi</say>"), "unknown TwiML verb <say>"),
        (doc("<Enqueue>support</Enqueue>"), "does not support"),
        (doc("<Dial><Client>handler</Client></Dial>"), "noun the simulator does not support"),
        (doc("<Dial><Number>+441632960001</Number><Number>+441632960002</Number></Dial>"), "several at once"),
        (doc("<Dial/>"), "needs one thing to dial"),
        (doc("<Dial>the duty phone</Dial>"), "not a phone number"),
        (doc('<Dial callerId="hotline">+441632960001</Dial>'), "callerId='hotline'"),
        (doc('<Dial timeout="2">+441632960001</Dial>'), "timeout='2'"),
        (doc("<Number>+441632960001</Number>"), "noun of <Dial>"),
        (doc("<Gather><Record/></Gather>"), "<Record> may not be nested in <Gather>"),
        (doc("<Gather><Gather/></Gather>"), "<Gather> may not be nested in <Gather>"),
        (doc("<Say><Play>https://x.example/a.mp3</Play></Say>"), "may not be nested in <Say>"),
        (doc("<Record><Say>Hi</Say></Record>"), "may not be nested in <Record>"),
        (doc('<Gather numdigits="1"/>'), "no attribute 'numdigits'"),
        (doc('<Hangup reason="x"/>'), "no attribute 'reason'"),
        (doc('<Gather numDigits="0"/>'), "numDigits='0'"),
        (doc('<Gather timeout="soon"/>'), "timeout='soon'"),
        (doc('<Gather method="PUT"/>'), "method='PUT'"),
        (doc('<Gather finishOnKey="##"/>'), "finishOnKey='##'"),
        (doc('<Gather input="voice"/>'), "input='voice'"),
        (doc('<Gather actionOnEmptyResult="yes"/>'), "actionOnEmptyResult='yes'"),
        (doc('<Record recordingStatusCallbackEvent="done"/>'), "recordingStatusCallbackEvent='done'"),
        (doc('<Record recordingStatusCallbackEvent="completed,absent"/>'), "recordingStatusCallbackEvent="),
        (doc('<Record trim="yes"/>'), "trim='yes'"),
        (doc('<Record finishOnKey="A"/>'), "finishOnKey='A'"),
        (doc('<Say language="english">Hi</Say>'), "language='english'"),
        (doc("<Say></Say>"), "nothing to say"),
        (doc("<Pause>3</Pause>"), "<Pause> takes no text"),
        (doc("<Redirect/>"), "needs text"),
        (doc("<Play/>"), "needs a URL"),
        (doc("Welcome<Hangup/>"), "stray text"),
        (doc("<Hangup/>and more"), "stray text"),
        (doc("<Gather>Press 1</Gather>"), "<Gather> takes no text"),
        ('<!DOCTYPE r [<!ENTITY a "x">]><Response/>', "DOCTYPE"),
    ],
)
def test_rejects_what_twilio_rejects(body, message):
    with pytest.raises(TwimlError, match=message.replace("(", r"\(").replace("[", r"\[")):
        parse_twiml(body)


def test_boolean_and_method_values_are_case_insensitive_like_twilio():
    document = parse_twiml(doc('<Gather method="get" actionOnEmptyResult="True"/>'))
    assert document.verbs[0].method() == "GET" and document.verbs[0].flag("actionOnEmptyResult")
