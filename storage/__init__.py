"""Persistence: the models, encryption of everything sensitive, and where sealed bytes are kept."""
