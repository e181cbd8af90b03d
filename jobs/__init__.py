"""Background work: fetching, sealing (and transcribing) recordings, and removing Twilio's copies."""
