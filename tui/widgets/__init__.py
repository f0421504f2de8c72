"""Widgets of the steer-tui app."""
