"""The Textual app `steer-tui`: browse, run and review feature explanations."""
