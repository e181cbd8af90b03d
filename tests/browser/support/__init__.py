"""What the browser tests stand on: live servers, a headless Chromium, and the people using it."""
