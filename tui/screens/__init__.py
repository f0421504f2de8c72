"""Screens of the steer-tui app."""
