"""The loopback servers the tests drive the real clients against."""
