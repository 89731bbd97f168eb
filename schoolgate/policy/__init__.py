"""The pure heart of schoolgate: parse a policy text and decide requests against it.

Nothing in this package opens a file, reads the environment or the clock, or logs.
"""
