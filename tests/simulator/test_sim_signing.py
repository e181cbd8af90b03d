from twilio.request_validator import RequestValidator

from simulator.signing import SIGNATURE_HEADER, sign, signed_headers

TOKEN = "12345678901234567890123456789012"


def test_signature_validates_with_twilios_validator_for_post():
    url = "https://hotline.example.org/ivr/menu?step=2"
    params = {"Digits": "1", "CallSid": "CA" + "0" * 32, "From": "+447700900123"}
    assert RequestValidator(TOKEN).validate(url, params, sign(TOKEN, url, params))


def test_signature_covers_url_and_every_param():
    url = "https://hotline.example.org/ivr/menu"
    params = {"Digits": "1"}
    signature = sign(TOKEN, url, params)
    validator = RequestValidator(TOKEN)
    assert not validator.validate(url, {"Digits": "2"}, signature)
    assert not validator.validate("https://evil.example.org/ivr/menu", params, signature)
    assert not RequestValidator("x" * 32).validate(url, params, signature)


def test_get_requests_are_signed_over_the_query_string_only():
    url = "https://hotline.example.org/ivr/about?lang=en&Digits=2"
    assert RequestValidator(TOKEN).validate(url, {}, sign(TOKEN, url))


def test_signature_of_a_url_with_a_port_validates():
    url = "http://127.0.0.1:5000/ivr/voice"
    assert RequestValidator(TOKEN).validate(url, {"A": "b"}, sign(TOKEN, url, {"A": "b"}))


def test_signed_headers_carry_signature_and_idempotency_token():
    headers = signed_headers(TOKEN, "https://h.example/x", {"A": "1"}, idempotency_token="tok-1")
    assert headers[SIGNATURE_HEADER] == sign(TOKEN, "https://h.example/x", {"A": "1"})
    assert headers["I-Twilio-Idempotency-Token"] == "tok-1"
    assert headers["User-Agent"].startswith("TwilioProxy")
