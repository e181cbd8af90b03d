"""Errors the simulator raises. Every one names what went wrong in terms of the call."""


class SimulatorError(Exception):
    """The call cannot go on as scripted: the caller did something the TwiML does not allow,
    the app answered in a way Twilio would reject, or the simulator was misused."""


class TwimlError(SimulatorError):
    """The app returned TwiML that Twilio would refuse (not XML, unknown verb, bad nesting,
    unknown attribute or bad attribute value)."""


class AppResponseError(SimulatorError):
    """The app answered a webhook with something other than what Twilio expects
    (a non-200 status for TwiML, a non-2xx status for a callback, a wrong content type)."""

    def __init__(self, message: str, exchange=None):
        super().__init__(message)
        self.exchange = exchange
