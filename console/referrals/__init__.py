"""Referral packages for professional standards: redacted PDF, optional disguised audio."""
