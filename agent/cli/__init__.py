"""The `steer-agent` command line: argv -> argparse -> typed requests; nothing below agent/cli/ sees argparse."""
