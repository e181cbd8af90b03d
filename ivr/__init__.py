"""The voice menu: Twilio's webhooks (views), the call flow, its spoken prompts and TwiML."""
