"""What a finished (or running) study gives a user: its trials read back, the report, the export and its card.

It reads studies through Optuna's public API only, so it works on any storage a search wrote to.
"""
