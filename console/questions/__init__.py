"""Questions to the caller, asked on their next call-back."""
