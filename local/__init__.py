"""Local stand-ins for AWS services that have no offline emulator (test harness, demo runner)."""
